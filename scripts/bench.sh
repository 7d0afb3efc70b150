#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: build, boot one guest with sodp and run scripts/guest-bench.sh
# on rxe0 and siw0 (pinned, ODP warm, plain MRs under pin_mode=all, data
# verified, first touch), then boot the newest Debian backports kernel and
# run the same cases on its stock rdma_rxe (upstream ODP). Each guest
# writes its CSV rows into its vm-run share; this script joins them into
#
#   $BUILD/bench/<UTC timestamp>/results.csv   one row per measurement
#   $BUILD/bench/<UTC timestamp>/results.md    the tables (bench-report.py)
#   $BUILD/bench/<UTC timestamp>/*.png         the ratio plots (gnuplot)
#
# and prints the directory at the end. The guests have two (fake) NUMA
# nodes, for the move_pages() case. A benchmark, not a test: nothing here
# asserts a speed. The defaults (SODP_BENCH_ROUNDS=7, SODP_BENCH_MIB=8 per
# bandwidth run, SODP_BENCH_ITERS=300 per latency run) aim at under 25
# minutes on a quiet 2-core machine; Documentation/sodp/bench.rst has the
# budget.
# SODP_BENCH_UPSTREAM=0 skips the upstream kernel; every SODP_BENCH_* and
# SODP_DEVICES goes through to the guests (scripts/guest-bench.sh).

set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
"$top/scripts/build.sh" all
"$top/scripts/deps.sh" --bench
dir=$BUILD/bench/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$dir/sodp" "$dir/upstream"
start=$(date +%s)

# follow SHARE: show the guest's progress lines as they come (vm-run -q
# holds its output back until the end); unfollow stops it.
follow() {
	: >"$1/progress"
	tail -n +1 -F "$1/progress" 2>/dev/null &
	tail_pid=$!
}
unfollow() { kill "$tail_pid" 2>/dev/null; wait "$tail_pid" 2>/dev/null || true; }

echo "== sodp on Debian 12's $(cat "${SODP_CACHE:-/var/cache/sodp}/kver")"
follow "$dir/sodp"
"$top/scripts/vm-run" -q --numa 2 --timeout 2400 --share "$dir/sodp" -- \
	"$top/scripts/guest-bench.sh" >"$dir/sodp/vm-run.log" 2>&1 ||
	{ echo "bench: the sodp guest run failed ($?)"; tail -n 40 "$dir/sodp/vm-run.log"; }
unfollow
echo "sodp kernel $(cat "${SODP_CACHE:-/var/cache/sodp}/kver")" >"$dir/kernels.txt"
echo "== sodp guest done after $(( $(date +%s) - start )) s"

if [ "${SODP_BENCH_UPSTREAM:-1}" != 0 ]; then
	# The same cases on upstream rxe ODP (the newest backports kernel's
	# stock rdma_rxe). The kernels differ: compare ODP/pinned ratios.
	kdir=$("$top/scripts/upstream-kernel.sh")
	echo "== upstream rxe ODP on $(cat "$kdir/kver")"
	follow "$dir/upstream"
	SODP_BENCH_KERNEL=upstream SODP_KERNEL=$kdir "$top/scripts/vm-run" -q \
		--no-setup --numa 2 --timeout 1800 --share "$dir/upstream" -- \
		"$top/scripts/guest-upstream.sh" "$top/scripts/guest-bench.sh" \
		>"$dir/upstream/vm-run.log" 2>&1 ||
		{ echo "bench: the upstream guest run failed ($?)"; tail -n 40 "$dir/upstream/vm-run.log"; }
	unfollow
	echo "upstream kernel $(cat "$kdir/kver"), stock rdma_rxe" >>"$dir/kernels.txt"
	echo "== upstream guest done after $(( $(date +%s) - start )) s"
fi

# One header, then every guest's rows.
first=1
for f in "$dir"/sodp/bench.csv "$dir"/upstream/bench.csv; do
	[ -s "$f" ] || continue
	if [ $first = 1 ]; then
		cat "$f"
		first=0
	else
		tail -n +2 "$f"
	fi
done >"$dir/results.csv"
"$top/scripts/bench-report.py" "$dir"
cat "$dir/results.md"
echo "== bench done in $(( $(date +%s) - start )) s; results in $dir"
