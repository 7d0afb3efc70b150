#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make demo: build everything, boot one guest, load our modules, run
# ping-pong and bandwidth loopbacks on rxe0 and siw0 and print a summary.

set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/build.sh" modules
exec "$top/scripts/vm-run" -q --timeout 600 -- "$top/scripts/guest-demo.sh"
