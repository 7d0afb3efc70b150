#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: build, boot one guest and print the ODP benchmark ratios
# (warm ODP / pinned bandwidth, cold / warm first touch) measured in that
# one run. A benchmark, not a test: nothing here asserts a speed.

set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/build.sh" all
exec "$top/scripts/vm-run" -q --timeout 1800 -- "$top/scripts/guest-bench.sh"
