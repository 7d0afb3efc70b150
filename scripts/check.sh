#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: build, kernel checkers on our code and series, sparse on our
# code, then the selftests on rxe0 and siw0 inside a guest (with an FS-DAX
# pmem region), then rdma-core's tools between two guests, one with our
# modules and one with the stock drivers. Ends with "N passed, N failed[, N
# skipped]" and exits non-zero on any failure. Logs go to build/check/.

set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
logs=$BUILD/check
passed=0 failed=0 skipped=0

pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAILED: $*"; }

# count_tap TAP LOG VRC WHAT: add a guest's TAP results to the totals;
# VRC is vm-run's exit status, LOG its output.
count_tap() {
	local tap=$1 log=$2 vrc=$3 what=$4 p s f

	# The guest's TAP: "ok", "ok ... # SKIP", "not ok"; sub-results only.
	grep -E '^(not )?ok |^# ====|^# (Totals|FAIL|SKIP)|^#  RUN|^# +(OK|FAIL|SKIP)' \
		"$tap" 2>/dev/null | grep -v '^#  RUN' | grep -v '^# \+OK'
	p=$(grep -E '^ok ' "$tap" 2>/dev/null | grep -v -c '# SKIP')
	s=$(grep -E '^ok .*# SKIP' -c "$tap" 2>/dev/null)
	f=$(grep -E -c '^not ok ' "$tap" 2>/dev/null)
	passed=$((passed + p))
	skipped=$((skipped + s))
	failed=$((failed + f))
	if [ "$vrc" != 0 ] && [ "$f" = 0 ]; then
		# The guest itself failed (setup, splat, hang): show why.
		tail -n 80 "$log"
		fail "$what (vm-run exit $vrc)"
		grep -m1 '^vm-run: splat: ' "$log"
	fi
}

finish() {
	echo
	echo "$passed passed, $failed failed, $skipped skipped"
	[ "$failed" = 0 ]
	exit $?
}

start=$(date +%s)
mkdir -p "$BUILD"
rm -rf "$logs"
mkdir -p "$logs"

echo "== build"
if "$top/scripts/build.sh" all >"$logs/build.log" 2>&1; then
	pass
else
	cat "$logs/build.log"
	fail "build"
	finish
fi

echo "== checkpatch --strict / kernel-doc"
"$top/scripts/lint.sh" >"$logs/lint.log" 2>&1
p=$(grep -c '^PASS:' "$logs/lint.log")
f=$(grep -c '^FAIL:' "$logs/lint.log")
passed=$((passed + p))
failed=$((failed + f))
echo "$p passed, $f failed"
[ "$f" = 0 ] || sed -n '/^FAIL:/,/^PASS:/p' "$logs/lint.log" | grep -v '^PASS:'

echo "== sparse (C=2) on our code"
"$top/scripts/sparse.sh" >"$logs/sparse.log" 2>&1
if [ $? = 0 ]; then
	pass
	echo "clean"
else
	cat "$logs/sparse.log"
	fail "sparse"
fi

echo "== selftests in a guest (rxe0, siw0)"
"$top/scripts/vm-run" -q --pmem --numa 2 --timeout 2400 --share "$logs/guest" -- \
	"$top/scripts/guest-selftests.sh" >"$logs/selftests.log" 2>&1
count_tap "$logs/guest/output" "$logs/selftests.log" $? "guest run"

# Node 0 runs our modules, node 1 the stock ones, and prints the TAP.
echo "== interoperability with a stock peer (two guests: rxe0, siw0)"
SODP_STOCK_NODE=1 "$top/scripts/vm-run" -q --two -m 2G --timeout 1800 \
	--share "$logs/interop" -- "$top/scripts/guest-interop.sh" \
	>"$logs/interop.log" 2>&1
count_tap "$logs/interop/node0/output" "$logs/interop.log" $? "interop run"

echo "== done in $(( $(date +%s) - start )) s; logs in $logs"
finish
