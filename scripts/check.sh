#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: build, kernel checkers on our code and series, sparse on our
# code, then the selftests on rxe0 and siw0 inside a guest (with an FS-DAX
# pmem region). Ends with "N passed, N failed[, N skipped]" and exits
# non-zero on any failure. Logs go to build/check/.

set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
logs=$BUILD/check
passed=0 failed=0 skipped=0

pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAILED: $*"; }

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
vrc=$?
tap=$logs/guest/output
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
	tail -n 80 "$logs/selftests.log"
	fail "guest run (vm-run exit $vrc)"
fi

echo "== done in $(( $(date +%s) - start )) s; logs in $logs"
finish
