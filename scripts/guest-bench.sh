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
#     1 MiB (MB/s; -n so that one run moves SODP_BENCH_MIB MiB, at least
#     16 messages, or -D SODP_BENCH_SECS if that is set) and
#     ib_{write,send}_lat at 8 B (typical latency in us, -n
#     SODP_BENCH_ITERS), each in the modes
#     pinned (plain MR, pin_mode=pin), odp (--odp) and, where sodp is
#     loaded, pinall (plain MR under sodp.pin_mode=all), alternated over
#     SODP_BENCH_ROUNDS rounds with the order of the modes rotated each
#     round, so that drift within the run favours no mode.
#  2. Data: perftest checks no bytes, so before the rounds sodp_verify runs
#     the same operation, size and MR mode once over a pattern and checks
#     every byte of the destination buffer: the "verified" column of all
#     the rounds ("yes", "no(bad=N)" or "error"). Then, per device, mode
#     and operation of the cases, small accesses at sub-page offsets
#     (case subpage_OP, value = wrong bytes).
#  3. First touch (sodp_bench, SODP_BENCH_FT_MIB MiB in 64 KiB WRITEs and
#     READs): cold ODP vs warm vs after a synchronous prefetch, pinned for
#     reference; each pass checks its data.
#  4. Registration (sodp_regbench, SODP_BENCH_REG=0 skips it): register +
#     deregister 1 MiB .. SODP_BENCH_REG_MAX_GIB GiB, pinned vs ODP, with
#     the kernel memory the live MR holds (case reg, unit us; cases
#     reg_slab/reg_sunreclaim/reg_vmalloc, KiB per GiB), and the kernel memory per GiB
#     touched (case touch_slab/touch_sunreclaim/touch_vmalloc). It runs with an
#     RLIMIT_MEMLOCK of half the guest's RAM and without CAP_IPC_LOCK, so
#     that the kernel refuses to pin more than the guest has (verified
#     column "refused(ERRNO)") instead of the OOM killer ending the run.
#     Then invalidation: move_pages() to the other NUMA node and munmap()
#     of SODP_BENCH_INVAL_MIB MiB (default 1024) under a live, mirrored
#     ODP MR vs with no MR (cases move_pages, munmap; modes odp, none).
#  5. Fault cost (sodp_faultbench, sodp only, SODP_BENCH_FAULT=0 skips it):
#     median over N fresh 2 MiB chunks of a cold 8-byte READ minus the
#     same READ warm, per kind (page: a fresh 4 KiB page; window: a
#     fault-around window of present pages; huge: a THP), the kinds
#     taking turns in one run. Cases fault_KIND (us/fault, or "invalid"
#     unless sodp's MR counters prove one fault per chunk mirroring the
#     kind's pages), fault_KIND_faults, fault_KIND_pages and
#     fault_KIND_want (the counts and the pages the READs had to mirror),
#     fault_KIND_cold and fault_KIND_warm (median READs, us).
#  6. QP scaling (SODP_BENCH_QPS=0 skips it): ib_write_bw -q 1, 2, 4 at
#     SODP_BENCH_QSIZE (64 KiB), pinned and odp, cases write_bw_qN (MB/s)
#     and write_bw_qN_per_q1 (ratio to -q 1 of the same mode and run).
#
# SODP_DEVICES picks devices (default rxe0 siw0), SODP_BENCH_CASES the
# steady-state cases (TEST:SIZE, e.g. "write_bw:65536"), SODP_BENCH_MODES
# the modes, SODP_BENCH_FIRST_TOUCH=0 skips 3, SODP_BENCH_KERNEL names the
# kernel in the CSV (default sodp). Progress goes to stderr, with the
# wall-clock seconds of each perftest run (the per-run overhead is that
# minus -D). Devices without ODP are reported and skipped.

set -u
rounds=${SODP_BENCH_ROUNDS:-7}
secs=${SODP_BENCH_SECS:-}
mib=${SODP_BENCH_MIB:-8}
iters=${SODP_BENCH_ITERS:-300}
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
. "$SODP_TOP/scripts/guest-lib.sh"	# reap

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
	local t=ib_$1 size=$2 extra spid t0 t1 n
	case $3 in
	odp) extra=--odp ;;
	*) extra= ;;
	esac
	extra="$extra ${perf_extra:-}"
	case $1 in
	*_bw)
		if [ -n "$secs" ]; then
			extra="$extra -D $secs"
		else
			n=$(( (mib << 20) / size ))
			[ $n -ge 16 ] || n=16
			extra="$extra -n $n"
		fi ;;
	*_lat) extra="$extra -n $iters" ;;
	esac
	pin_mode "$3"
	t0=$(date +%s.%N)
	# shellcheck disable=SC2086
	timeout 120 $t -d $dev $pt -s $size $extra >"$log/srv" 2>&1 &
	spid=$!
	for _ in $(seq 750); do
		listening && break
		kill -0 $spid 2>/dev/null || break
		sleep 0.02
	done
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

# verify OP MODE SIZES: sodp_verify once for OP in MODE over the
# comma-separated SIZES (and "subpage"); sets ok[OP:SIZE:MODE] to yes,
# no(bad=N) or error and bad[OP:SIZE:MODE] to the wrong bytes.
verify() {
	local plain=plain o m sz rest
	[ "$2" = odp ] && plain=odp
	pin_mode "$2"
	SODP_DEVICE=$dev timeout 300 "$bin/sodp_verify" "$1" $plain "$3" \
		>"$log/verify" 2>&1
	for sz in ${3//,/ }; do
		ok[$1:$sz:$2]=error
		bad[$1:$sz:$2]=
	done
	# verified OP MODE SIZE accesses=A bad=N | verified OP MODE SIZE error
	while read -r _ o m sz rest; do
		case $rest in
		*bad=0) ok[$1:$sz:$2]=yes; bad[$1:$sz:$2]=0 ;;
		*bad=*) ok[$1:$sz:$2]="no(bad=${rest##*bad=})"
			bad[$1:$sz:$2]=${rest##*bad=} ;;
		esac
	done < <(grep '^verified ' "$log/verify")
	# Wrong bytes (where they landed) and errors, for the record.
	grep -v 'bad=0$' "$log/verify" | while read -r l; do
		progress "$dev: $l"
	done
	return 0
}

# listening: a TCP socket listens on perftest's port 18515 (0x4853), found
# without forking (a poll loop of ss or pgrep would take the CPU the
# starting server needs).
listening() {
	local l st
	while read -r _ l _ st _; do
		[ "$st" = 0A ] && [ "${l##*:}" = 4853 ] && return 0
	done </proc/net/tcp
	return 1
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
	# The data pass: the verdict of every (operation, size, mode), one
	# sodp_verify run per operation and mode.
	declare -A ok=() bad=()
	for op in write read send; do
		sizes=$(for c in $cases; do
			t=${c%%:*}
			[ "${t%_*}" = $op ] && echo "${c#*:}"
		done | sort -un | tr '\n' ,)
		[ -n "$sizes" ] || continue	# no case of $op
		sizes=${sizes}subpage
		for m in $modes; do
			verify $op $m "$sizes"
			for sz in ${sizes//,/ }; do
				progress "$dev $op $sz $m: data verified ${ok[$op:$sz:$m]}"
			done
			row subpage_$op 8-512 $m 1 "${bad[$op:subpage:$m]}" bad_bytes \
				"${ok[$op:subpage:$m]}"
		done
	done

	# Steady state: all cases in one round, then the next round with the
	# modes' order rotated by one.
	set -- $modes
	nm=$#
	t0=$SECONDS
	for r in $(seq "$rounds"); do
		[ "$r" = 1 ] ||
			progress "$dev round $r of $rounds; $((SECONDS - t0)) s so far, about $(( (SECONDS - t0) * (rounds - r + 1) / (r - 1) )) s to go"
		[ "$r" != 1 ] || progress "$dev round 1 of $rounds"
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
				row "$t" "$size" $m "$r" "$v" $unit \
					"${ok[${t%_*}:$size:$m]:-error}"
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
			while read -r o m p v nbad; do
				verified=yes
				[ "$nbad" = 0 ] || verified="no(bad=$nbad)"
				row "first_touch_$o" $((ft_mib << 20)) "$m-$p" 1 "$v" MB/s "$verified"
			done
		done
	fi
	if [ "${SODP_BENCH_REG:-1}" != 0 ]; then
		pin_mode pinned
		lim=$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) * 512 ))
		for what in reg touch inval; do
			progress "$dev registration: $what"
			# shellcheck disable=SC2086
			SODP_DEVICE=$dev timeout 600 prlimit --memlock=$lim:$lim \
				setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock \
				"$bin/sodp_regbench" $what >"$log/reg" 2>&1
			grep -v -E '^(reg|touch) ' "$log/reg" >&2
			# WHAT MODE BYTES US SLAB SUNRECLAIM VMALLOC ERRNO
			while read -r w m len us slab sunr vm err; do
				case $w in
				move_pages|munmap)
					v=n/a
					[ "$err" = 0 ] || { v="refused($err)"; us=; }
					row "$w" "$len" "$m" 1 "$us" us "$v"
					progress "$dev $w $m $len: ${us:-failed, errno $err} us"
					continue ;;
				esac
				[ "$w" = "$what" ] || continue
				v=n/a
				[ "$err" = 0 ] || { v="refused($err)"; us=; slab=; sunr=; vm=; }
				row "$w" "$len" "$m" 1 "$us" us "$v"
				row "${w}_slab" "$len" "$m" 1 "$slab" KiB/GiB "$v"
				row "${w}_sunreclaim" "$len" "$m" 1 "$sunr" KiB/GiB "$v"
				row "${w}_vmalloc" "$len" "$m" 1 "$vm" KiB/GiB "$v"
				progress "$dev $w $m $len: ${us:-refused, errno $err} us"
			done <"$log/reg"
		done
	fi
	# Fault cost (sodp_faultbench, all kinds in one run, taking turns):
	# the median of cold minus warm 8-byte READs, one pair per fresh
	# 2 MiB chunk; "invalid" unless sodp's MR counters saw exactly N
	# faults mirroring N x the kind's pages, and every byte was right.
	if [ "${SODP_BENCH_FAULT:-1}" != 0 ] && [ -d /sys/module/sodp ]; then
		pin_mode pinned
		kinds=${SODP_BENCH_FAULT_KINDS:-page window huge}
		progress "$dev fault cost: $kinds"
		# shellcheck disable=SC2086
		SODP_DEVICE=$dev timeout 600 "$bin/sodp_faultbench" $kinds \
			"${SODP_BENCH_FAULT_N:-256}" >"$log/fault" 2>&1
		sed -n 's/^# //p' "$log/fault" >&2
		grep -v -E '^(fault|#) ' "$log/fault" >&2
		# fault KIND N FAULTS PAGES WANT COLD_US WARM_US US_PER_FAULT BAD
		for k in $kinds; do
			awk -v k="$k" '$1 == "fault" && $2 == k' "$log/fault" |
			while read -r _ _ n nf np want cold warm us nbad; do
				verified=yes
				[ "$nbad" = 0 ] || verified="no(bad=$nbad)"
				row "fault_$k" "$n" odp 1 "$us" us/fault "$verified"
				row "fault_${k}_faults" "$n" odp 1 "$nf" faults "$verified"
				row "fault_${k}_pages" "$n" odp 1 "$np" pages "$verified"
				row "fault_${k}_want" "$n" odp 1 "$want" pages "$verified"
				row "fault_${k}_cold" "$n" odp 1 "$cold" us "$verified"
				row "fault_${k}_warm" "$n" odp 1 "$warm" us "$verified"
				progress "$dev fault $k: $us us/fault (median READ cold $cold, warm $warm us), $nf faults, $np pages (want $n, $want)"
			done
			grep -q "^fault $k " "$log/fault" ||
				row "fault_$k" "${SODP_BENCH_FAULT_N:-256}" odp 1 invalid \
					us/fault error
		done
	fi

	# Concurrency: write_bw on 1, 2, 4 QPs of one process (perftest -q N)
	# over one MR, ODP vs pinned, modes alternated. TCG timings swing
	# 2-3x between guest runs, so the figure is the ratio to the 1-QP run
	# of the same mode in this run (case write_bw_qN_per_q1; the MB/s are
	# rows write_bw_qN). perftest moves the data unverified, so verified
	# is the sodp_verify verdict for write of that size in that mode when
	# the data pass ran it, else n/a.
	if [ "${SODP_BENCH_QPS:-1 2 4}" != 0 ]; then
		qsize=${SODP_BENCH_QSIZE:-65536}
		declare -A qbw=()
		for q in ${SODP_BENCH_QPS:-1 2 4}; do
			for m in pinned odp; do
				perf_extra="-q $q"
				v=$(perf write_bw "$qsize" $m)
				perf_extra=
				qbw[$q:$m]=$v
				row "write_bw_q$q" "$qsize" $m 1 "$v" MB/s \
					"${ok[write:$qsize:$m]:-n/a}"
			done
		done
		for q in ${SODP_BENCH_QPS:-1 2 4}; do
			for m in pinned odp; do
				b=${qbw[1:$m]:-} v=${qbw[$q:$m]:-}
				r=
				[ -z "$b" ] || [ -z "$v" ] ||
					r=$(awk -v a="$v" -v b="$b" \
						'BEGIN { if (b > 0) printf "%.3f", a / b }')
				row "write_bw_q${q}_per_q1" "$qsize" $m 1 "$r" ratio \
					"${ok[write:$qsize:$m]:-n/a}"
				progress "$dev write_bw -q $q $m: ${v:-failed} MB/s, ${r:-no} x q1"
			done
		done
		unset qbw
	fi
	unset ok bad
done
[ -z "$old_pin_mode" ] || echo "$old_pin_mode" >$param
rm -rf "$log"
