#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a debug-kernel guest (make check-debug) after guest-setup:
# the fault-injection pass, then the whole selftest suite (which ends by
# unloading our modules), then a kmemleak scan. vm-run fails the run on
# any KASAN, lockdep, DEBUG_VM, BUG, WARN or hung-task report; this script
# adds, as TAP, the leaks kmemleak finds in RDMA code (ours, ib_core's on
# our behalf, or in a module since unloaded). Other kernel leaks are
# listed as comments: they are not ours to fix and would make every run
# fail on noise from the boot.

set -u
ml=/sys/kernel/debug/kmemleak

# What leaked during the boot is not the suite's.
[ -w $ml ] && echo clear >$ml

"$SODP_TOP/scripts/guest-failinject.sh"
"$SODP_TOP/scripts/guest-selftests.sh"

echo "# ==== kmemleak"
if [ ! -w $ml ]; then
	echo "ok 1 kmemleak # SKIP no kmemleak in this kernel"
	exit 0
fi
# Two scans: an object is reported once it stayed unreferenced for one.
echo scan >$ml
sleep 6
echo scan >$ml
cat $ml >/tmp/kmemleak.txt
ours=$(awk '/^unreferenced object/ { if (m) print o; o = $0; m = 0; next }
	    /\[</ && /sodp|rxe|siw|ib_|rdma|iw_|uverbs|\[<ffffffffc0/ {
		if (!m) o = o " <- " $0; m = 1 }
	    END { if (m) print o }' /tmp/kmemleak.txt)
total=$(grep -c '^unreferenced object' /tmp/kmemleak.txt)
if [ -z "$ours" ]; then
	echo "ok 1 kmemleak.rdma_clean # $total other kernel objects reported"
else
	echo "not ok 1 kmemleak.rdma_clean"
	echo "$ours" | sed 's/^/# /'
fi
grep -A14 '^unreferenced object' /tmp/kmemleak.txt | head -200 | sed 's/^/# /'
