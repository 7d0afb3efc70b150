#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: build, boot one guest and print the ODP benchmark ratios
# (warm ODP / pinned bandwidth, cold / warm first touch) measured in that
# one run, then boot the newest Debian backports kernel and measure its
# stock rdma_rxe (upstream ODP) the same way. A benchmark, not a test:
# nothing here asserts a speed.

set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/build.sh" all
echo "== sodp on Debian 12's $(cat "${SODP_CACHE:-/var/cache/sodp}/kver")"
"$top/scripts/vm-run" -q --timeout 1800 -- "$top/scripts/guest-bench.sh"
# The same perftest rounds on upstream rxe ODP (the newest backports
# kernel's stock rdma_rxe), for comparison. The kernels differ: compare
# ODP/pinned ratios, not MB/s.
kdir=$("$top/scripts/upstream-kernel.sh")
echo "== upstream rxe ODP on $(cat "$kdir/kver")"
SODP_KERNEL=$kdir exec "$top/scripts/vm-run" -q --no-setup --timeout 1800 -- \
	"$top/scripts/guest-upstream.sh" "$top/scripts/guest-bench.sh"
