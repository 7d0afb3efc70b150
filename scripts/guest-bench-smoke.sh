#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a guest after guest-setup (make check): proves that the make
# bench pipeline works, in a few seconds, as one TAP line. One case
# (ib_write_bw 4 KiB on rxe0), one round, pinned and ODP, no first touch,
# registration pass or QP scaling, the fault-cost pass of kind page only
# with 16 READs; then the host-side report (bench-report.py; the plots
# only if gnuplot is installed). Asserts no speed, only that
#   - the CSV has a row per mode with a number and verified=yes (the data
#     pass sodp_verify ran and every byte was right), and a sub-page row,
#   - sodp's MR counters saw the 16 fault-cost READs take 16 faults of
#     one page each, with the right bytes,
#   - results.md has the table rows of the case and of the fault cost.
#
# Usage: guest-bench-smoke.sh [TAP number]

set -u
n=${1:-1}
d=$(mktemp -d)
SODP_SHARE="" SODP_DEVICES=rxe0 SODP_BENCH_ROUNDS=1 \
	SODP_BENCH_CASES=write_bw:4096 SODP_BENCH_MODES="pinned odp" \
	SODP_BENCH_FIRST_TOUCH=0 SODP_BENCH_REG=0 SODP_BENCH_OUT=$d/bench.csv \
	SODP_BENCH_QPS=0 SODP_BENCH_FAULT_KINDS=page SODP_BENCH_FAULT_N=16 \
	"$SODP_TOP/scripts/guest-bench.sh" 2>"$d/progress"
why=""
for m in pinned odp; do
	grep -q -E "^sodp,rxe0,write_bw,4096,$m,1,[0-9.]+,MB/s,yes$" "$d/bench.csv" ||
		why="$why no verified $m row;"
done
grep -q -E '^sodp,rxe0,subpage_write,8-512,odp,1,0,bad_bytes,yes$' "$d/bench.csv" ||
	why="$why no verified sub-page row;"
for f in faults:16 pages:16 want:16; do
	grep -q -E "^sodp,rxe0,fault_page_${f%:*},16,odp,1,${f#*:},[a-z]+,yes$" \
		"$d/bench.csv" || why="$why fault_page_${f%:*} not ${f#*:};"
done
cp "$d/bench.csv" "$d/results.csv"
"$SODP_TOP/scripts/bench-report.py" "$d" 2>"$d/report.err" ||
	why="$why bench-report.py failed;"
grep -q '^| sodp | rxe0 | write_bw | 4 KiB | 1 | ' "$d/results.md" 2>/dev/null ||
	why="$why no table row in results.md;"
grep -q '^| sodp | rxe0 | page | 16 | 16 | 16 | 16 | ' "$d/results.md" 2>/dev/null ||
	why="$why no fault table row in results.md;"
if [ -z "$why" ]; then
	echo "ok $n bench.smoke"
else
	echo "#$why"
	sed 's/^/# /' "$d/bench.csv" "$d/progress" "$d/report.err" "$d/results.md" 2>/dev/null
	echo "not ok $n bench.smoke"
fi
rm -rf "$d"
