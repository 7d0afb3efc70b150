#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a guest after guest-setup (or guest-upstream.sh): the ODP
# benchmarks, in one guest run so that the ratios compare like with like
# (TCG timings swing 2-3x between runs). Writes one CSV row per
# measurement to $SODP_BENCH_OUT (default $SODP_SHARE/bench.csv):
#
#   kernel,device,case,size,mode,round,value,unit,verified
#
#  1. Steady state: perftest ib_{write,read,send}_bw at 4 KiB, 64 KiB and
#     1 MiB (MB/s, -D SODP_BENCH_SECS) and ib_{write,send}_lat at 8 B
#     (typical latency in us, -n SODP_BENCH_ITERS), each in the modes
#     pinned (plain MR, pin_mode=pin), odp (--odp) and, where sodp is
#     loaded, pinall (plain MR under sodp.pin_mode=all), alternated over
#     SODP_BENCH_ROUNDS rounds with the order of the modes rotated each
#     round, so that drift within the run favours no mode.
#  2. Data: perftest checks no bytes, so before the rounds sodp_verify runs
#     the same operation, size and MR mode once over a pattern and checks
#     every byte of the destination buffer: the "verified" column of all
#     the rounds ("yes", "no(bad=N)" or "error"). Then, per device, mode
#     and operation, small accesses at sub-page offsets (case
#     subpage_OP, value = wrong bytes).
#  3. First touch (sodp_bench, SODP_BENCH_FT_MIB MiB in 64 KiB WRITEs and
#     READs): cold ODP vs warm vs after a synchronous prefetch, pinned for
#     reference; each pass checks its data.
#
# SODP_DEVICES picks devices (default rxe0 siw0), SODP_BENCH_CASES the
# steady-state cases (TEST:SIZE, e.g. "write_bw:65536"), SODP_BENCH_MODES
# the modes, SODP_BENCH_FIRST_TOUCH=0 skips 3, SODP_BENCH_KERNEL names the
# kernel in the CSV (default sodp). Progress goes to stderr, with the
# wall-clock seconds of each perftest run (the per-run overhead is that
# minus -D). Devices without ODP are reported and skipped.

set -u
rounds=${SODP_BENCH_ROUNDS:-7}
secs=${SODP_BENCH_SECS:-1}
iters=${SODP_BENCH_ITERS:-2000}
cases=${SODP_BENCH_CASES:-write_bw:4096 write_bw:65536 write_bw:1048576
	read_bw:4096 read_bw:65536 read_bw:1048576
	send_bw:4096 send_bw:65536 send_bw:1048576 write_lat:8 send_lat:8}
kernel=${SODP_BENCH_KERNEL:-sodp}
ft_mib=${SODP_BENCH_FT_MIB:-64}
bin=${SODP_TOOLS:-$SODP_TOP/build/tools}
out=${SODP_BENCH_OUT:-${SODP_SHARE:-/tmp}/bench.csv}
param=/sys/module/sodp/parameters/pin_mode
log=$(mktemp -d)
# shellcheck source=scripts/guest-lib.sh
. "$SODP_TOP/scripts/guest-lib.sh"

if [ -w $param ]; then
	modes=${SODP_BENCH_MODES:-pinned odp pinall}
	old_pin_mode=$(sed 's/.*\[\(.*\)\].*/\1/' $param)
else
	modes=${SODP_BENCH_MODES:-pinned odp}
	modes=${modes//pinall/}
	old_pin_mode=
fi
[ -s "$out" ] || echo "kernel,device,case,size,mode,round,value,unit,verified" >"$out"

# Progress to stderr and, for the host to follow while the guest runs
# (vm-run -q shows the output only at the end), to $SODP_SHARE/progress.
progress() {
	echo "bench: $*" >&2
	[ -z "${SODP_SHARE:-}" ] || echo "bench: $*" >>"$SODP_SHARE/progress"
}

# pin_mode MODE: the policy for plain MRs that MODE needs (sodp only).
pin_mode() {
	[ -n "$old_pin_mode" ] || return 0
	case $1 in
	pinall) echo all >$param ;;
	*) echo pin >$param ;;
	esac
}

row() {	# row CASE SIZE MODE ROUND VALUE UNIT VERIFIED
	echo "$kernel,$dev,$1,$2,$3,$4,$5,$6,$7" >>"$out"
}

# perf TEST SIZE MODE: one loopback perftest run on $dev; prints the
# value (bw: average MB/s; lat: typical us), nothing if it failed.
perf() {
	local t=ib_$1 size=$2 extra spid t0 t1
	case $3 in
	odp) extra=--odp ;;
	*) extra= ;;
	esac
	case $1 in
	*_bw) extra="$extra -D $secs" ;;
	*_lat) extra="$extra -n $iters" ;;
	esac
	pin_mode "$3"
	t0=$(date +%s.%N)
	# shellcheck disable=SC2086
	timeout 120 $t -d $dev $pt -s $size $extra >"$log/srv" 2>&1 &
	spid=$!
	wait_listen $spid
	# shellcheck disable=SC2086
	timeout 120 $t -d $dev $pt -s $size $extra $addr >"$log/out" 2>&1
	reap $spid 50 >/dev/null
	t1=$(date +%s.%N)
	progress "$(awk -v t0="$t0" -v t1="$t1" -v what="$dev $1 $size $3" \
		'BEGIN { printf "%s %.1f s", what, t1 - t0 }')"
	case $1 in
	*_bw) awk -v s="$size" '$1 == s && $2 ~ /^[0-9]+$/ { print $4 }' "$log/out" ;;
	*_lat) awk -v s="$size" '$1 == s && $2 ~ /^[0-9]+$/ { print $5 }' "$log/out" ;;
	esac | tail -n 1
}

# verify OP SIZE MODE: sodp_verify once; prints yes, no(bad=N) or error.
verify() {
	local plain=plain bad
	[ "$3" = odp ] && plain=odp
	pin_mode "$3"
	SODP_DEVICE=$dev timeout 120 "$bin/sodp_verify" "$1" $plain "$2" \
		>"$log/verify" 2>&1
	case $? in
	0) echo yes ;;
	1) bad=$(sed -n 's/^verified .* bad=\([0-9]*\)$/\1/p' "$log/verify")
	   sed 's/^/# /' "$log/verify" >&2
	   echo "no(bad=$bad)" ;;
	*) sed 's/^/# /' "$log/verify" >&2
	   echo error ;;
	esac
}

for dev in ${SODP_DEVICES:-rxe0 siw0}; do
	case $dev in
	rxe0) addr=$SODP_RXE_ADDR; pt="-x 1" ;;
	siw0) addr=$SODP_SIW_ADDR; pt="-R" ;;
	esac
	if ! ibv_devinfo -v -d $dev | grep -q 'ODP_SUPPORT$'; then
		progress "$dev: no ODP, skipped"
		continue
	fi
	# The data pass: the verdict of every (operation, size, mode).
	declare -A ok=()
	for c in $cases; do
		t=${c%%:*}
		size=${c#*:}
		op=${t%_*}
		for m in $modes; do
			ok[$c:$m]=$(verify $op "$size" $m)
			progress "$dev $t $size $m: data verified ${ok[$c:$m]}"
		done
	done
	for op in write read send; do
		for m in $modes; do
			v=$(verify $op subpage $m)
			bad=$(sed -n 's/^verified .* bad=\([0-9]*\)$/\1/p' "$log/verify")
			row subpage_$op 8-512 $m 1 "${bad:-}" bad_bytes "$v"
			progress "$dev $op 8-512 B at sub-page offsets $m: data verified $v"
		done
	done

	# Steady state: all cases in one round, then the next round with the
	# modes' order rotated by one.
	set -- $modes
	nm=$#
	for r in $(seq "$rounds"); do
		progress "$dev round $r of $rounds"
		for c in $cases; do
			t=${c%%:*}
			size=${c#*:}
			unit=MB/s
			[ "${t#*_}" = lat ] && unit=us
			for i in $(seq 0 $((nm - 1))); do
				set -- $modes
				shift $(( (i + r) % nm ))
				m=$1
				v=$(perf "$t" "$size" $m)
				row "$t" "$size" $m "$r" "$v" $unit "${ok[$c:$m]}"
			done
		done
	done

	if [ "${SODP_BENCH_FIRST_TOUCH:-1}" != 0 ]; then
		pin_mode pinned
		for op in write read; do
			progress "$dev first touch $op, $ft_mib MiB"
			SODP_DEVICE=$dev timeout 600 "$bin/sodp_bench" $op "$ft_mib" 64 \
				>"$log/ft" 2>&1
			sed -n 's/^# //p' "$log/ft" >&2
			grep -v '^first_touch ' "$log/ft" | grep -v '^# ' >&2
			# first_touch OP MODE PASS MB/S BAD
			awk '$1 == "first_touch" { print $2, $3, $4, $5, $6 }' "$log/ft" |
			while read -r o m p v bad; do
				verified=yes
				[ "$bad" = 0 ] || verified="no(bad=$bad)"
				row "first_touch_$o" $((ft_mib << 20)) "$m-$p" 1 "$v" MB/s "$verified"
			done
		done
	fi
	unset ok
done
[ -z "$old_pin_mode" ] || echo "$old_pin_mode" >$param
rm -rf "$log"
