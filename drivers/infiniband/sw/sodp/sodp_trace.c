// SPDX-License-Identifier: GPL-2.0
/*
 * Instantiates the sodp tracepoints declared in sodp_trace.h.
 */
#define CREATE_TRACE_POINTS
#include "sodp_trace.h"
