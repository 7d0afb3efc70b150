/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sodp_test.h - the first include of every sodp selftest program: the
 * C library headers they all use, the kselftest harness (with the one
 * warning its signal handler causes under -Wextra switched off) and
 * sodp_lib. Defines _GNU_SOURCE, so it must come before any other header.
 */
#ifndef SODP_TEST_H
#define SODP_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The harness's own signal handler leaves a parameter unused. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop

#include "sodp_lib.h"

#endif /* SODP_TEST_H */
