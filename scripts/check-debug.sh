#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check-debug: build (or take from the cache) the debug kernel
# (scripts/debug-kernel.sh: KASAN, lockdep, DEBUG_VM, kmemleak, fault
# injection), build our modules against it, and run in one guest booted
# with it: the fault-injection pass, the whole selftest suite on rxe0 and
# siw0, and a kmemleak scan (scripts/guest-debug.sh). Any KASAN, lockdep,
# BUG, WARN or hung-task report fails the run and is printed. Ends with
# "N passed, N failed, N skipped"; logs go to build/debug/check/.

set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}/debug
logs=$BUILD/check
# shellcheck source=scripts/check-lib.sh
source "$top/scripts/check-lib.sh"

start=$(date +%s)
rm -rf "$logs"
mkdir -p "$logs"

echo "== debug kernel"
t=$(date +%s)
if ! kdir=$("$top/scripts/debug-kernel.sh" 2>"$logs/kernel.log"); then
	tail -n 30 "$logs/kernel.log"
	fail "debug kernel"
	finish
fi
pass
echo "$(cat "$kdir/kver") in $kdir ($(( $(date +%s) - t )) s)"

echo "== build against it"
if { SODP_KERNEL=$kdir BUILD=$BUILD "$top/scripts/build.sh" modules &&
     BUILD=$BUILD "$top/scripts/build.sh" selftests; } >"$logs/build.log" 2>&1; then
	pass
else
	cat "$logs/build.log"
	fail "build"
	finish
fi

echo "== fault injection, selftests and kmemleak in a debug guest (rxe0, siw0)"
t=$(date +%s)
# KASAN (inline), lockdep and DEBUG_VM under TCG run the same work several
# times slower, and the test process itself goes unscheduled for seconds
# (polls 5 s apart in the first run): a completion deadline is scaled to
# the machine (SODP_TIMEOUT_MS, 10 s in make check), never a retry.
SODP_KERNEL=$kdir SODP_MODULES=$BUILD/modules SODP_SELFTESTS=$BUILD/selftests \
	SODP_TOOLS=$BUILD/tools \
	SODP_PROG_TIMEOUT=${SODP_PROG_TIMEOUT:-2400} \
	SODP_TIMEOUT_MS=${SODP_TIMEOUT_MS:-60000} \
	"$top/scripts/vm-run" -q --pmem --numa 2 --timeout 7200 \
	--share "$logs/guest" -- "$top/scripts/guest-debug.sh" \
	>"$logs/selftests.log" 2>&1
count_tap "$logs/guest/output" "$logs/selftests.log" $? "debug guest run"
echo "guest run: $(( $(date +%s) - t )) s"

echo "== done in $(( $(date +%s) - start )) s; logs in $logs"
finish
