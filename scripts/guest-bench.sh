#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a guest after guest-setup: the ODP benchmarks, in one guest
# run so that the ratios compare like with like (TCG timings swing 2-3x
# between runs).
#  1. perftest 64 KiB WRITE/READ/SEND, pinned vs --odp, alternated ROUNDS
#     times (the order flips every round); the median of each gives
#     warm ODP / pinned (goal >= 0.97).
#  2. sodp_bench: first touch of cold ODP memory vs the same pages warm
#     (goal >= 0.5), with pinned for reference.
# Devices without ODP are reported and skipped; SODP_DEVICES picks devices.

set -u
rounds=${SODP_BENCH_ROUNDS:-5}
secs=${SODP_BENCH_SECS:-3}
bin=${SODP_TOOLS:-$SODP_TOP/build/tools}
log=$(mktemp -d)

# bw DEV TOOL EXTRA: one loopback run, prints the average MB/s.
bw() {
	local dev=$1 t=$2 extra=$3 addr pt spid i
	case $dev in
	rxe0) addr=$SODP_RXE_ADDR; pt="-x 1" ;;
	siw0) addr=$SODP_SIW_ADDR; pt="-R" ;;
	esac
	# shellcheck disable=SC2086
	timeout 120 $t -d $dev $pt -s 65536 -D $secs $extra >/dev/null 2>&1 &
	spid=$!
	for i in $(seq 150); do
		ss -ltn | grep -q ':18515 ' && break
		sleep 0.1
	done
	# shellcheck disable=SC2086
	timeout 120 $t -d $dev $pt -s 65536 -D $secs $extra $addr >"$log/out" 2>&1
	wait $spid
	awk '/^ *65536 +[0-9]+ / { print $4 }' "$log/out"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : 0) }'; }

for dev in ${SODP_DEVICES:-rxe0 siw0}; do
	if ! ibv_devinfo -v -d $dev | grep -q 'ODP_SUPPORT$'; then
		echo "$dev: no ODP, skipped"
		continue
	fi
	for t in ib_write_bw ib_read_bw ib_send_bw; do
		: >"$log/pin"
		: >"$log/odp"
		# Alternate which goes first, so drift within the run
		# (other load, page cache, timers) does not favour one side.
		for r in $(seq "$rounds"); do
			if [ $((r % 2)) = 1 ]; then
				bw $dev $t "" >>"$log/pin"
				bw $dev $t "--odp" >>"$log/odp"
			else
				bw $dev $t "--odp" >>"$log/odp"
				bw $dev $t "" >>"$log/pin"
			fi
		done
		p=$(median <"$log/pin")
		o=$(median <"$log/odp")
		# The spread of the per-round ratios shows how noisy it was.
		spread=$(paste "$log/odp" "$log/pin" | awk '$2 > 0 {
			r = $1 / $2; if (!n++ || r < lo) lo = r; if (r > hi) hi = r }
			END { printf "%.2f..%.2f", lo, hi }')
		awk -v d=$dev -v t=$t -v p="$p" -v o="$o" -v n="$rounds" \
		    -v s="$spread" 'BEGIN {
			printf "%s %-11s 64 KiB: pinned %8.2f MB/s, warm ODP %8.2f MB/s (median of %d): ODP/pinned %.3f (rounds %s)\n",
			       d, t, p, o, n, (p > 0 ? o / p : 0), s }'
	done
	for op in write read; do
		SODP_DEVICE=$dev "$bin/sodp_bench" $op 64 64
	done
done
rm -rf "$log"
