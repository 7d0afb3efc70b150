#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a guest after guest-setup: rdma-core's own tools against ODP
# memory on every device that advertises ODP (ibv_devinfo -v), as TAP:
# ibv_rc_pingpong -o (RoCE only: it needs no rdma_cm) and perftest's
# ib_{write,read,send,atomic}_bw --odp loopbacks, briefly, and
# ib_atomic_bw on plain MRs that sodp serves unpinned (pin_mode=all),
# because perftest refuses --odp with atomics. A device without ODP is a
# skip, not a pass.
#
# Each perftest run is a fixed number of operations ($iters, perftest's
# iteration mode -n), not a time window. perftest 4.5's -D 1 has no
# warm-up (its margin is duration / 4, i.e. 0 s) and counts only the
# completions it polls within that one second, and it polls only after
# posting its first tx_depth (128) requests. siw transmits a request
# posted to an idle send queue in the poster's system call, so those
# 128 writes of 64 KiB (8 MiB) are sent before the first poll: at the
# 2-5 MB/s of the debug kernel under TCG that takes longer than the
# window, and 3 of 4 ib_write_bw --odp -D 1 runs on siw0 reported 0
# iterations, both sides exiting 0, with the data moved (sodp leases
# grown by 1000-2800). In iteration mode a slow run is only slow, and a
# stall is a timeout. A run passes only if the client's result line
# counts all $iters and the device's counters show them moved (moved()).
#
# perftest times its traffic in CPU cycles and converts them with a
# clock rate it measures only afterwards, in its report: 200 samples of
# cycles against gettimeofday() must fit a line with r^2 >= 0.9. Under
# TCG a vCPU descheduled between the two clock reads spoils a sample,
# and a side then prints "Correlation coefficient r^2: R < 0.9" and
# "Can't produce a report" and exits 1 without a result line. It got
# there only when its traffic loop ended without an error completion;
# its peer, waiting to read the report or the closing message, loses it
# ("Unable to read ... socket/rdma_cm", through rdma_cm with a flushed
# receive, "Bad wc status ... 5") and may exit 1 as well. Such a run is
# judged by the device's counters instead (see unreported()), never by
# a retry.
#
# SODP_DEVICES limits the devices (default "rxe0 siw0"), SODP_PERFTEST_CASES
# the cases (default all: pingpong ib_write_bw ib_read_bw ib_send_bw
# ib_atomic_bw unpinned); a case left out is not reported.
#
# Usage: guest-perftest.sh [first TAP number]

set -u
n=${1:-1}
log=$(mktemp -d)
port=18515	# perftest's default, for the rdma_cm listener (siw: -R)
iters=200	# operations of a perftest run (at 64 KiB: 12.5 MiB)
devices=${SODP_DEVICES:-rxe0 siw0}
cases=${SODP_PERFTEST_CASES:-pingpong ib_write_bw ib_read_bw ib_send_bw ib_atomic_bw unpinned}

tap() {	# tap STATUS NAME [DIRECTIVE]
	echo "$1 $n $2${3:+ # $3}"
	n=$((n + 1))
}

# wanted CASE: CASE is one of $cases.
wanted() {
	local c

	for c in $cases; do
		[ "$c" = "$1" ] && return 0
	done
	return 1
}

# shellcheck source=scripts/guest-lib.sh
. "$SODP_TOP/scripts/guest-lib.sh"

# pair NAME SERVER CLIENT [DEV PORT]: both must exit 0 (their statuses
# are left in crc and src); keeps the output in $log. The client starts
# once the server listens (wait_listen; DEV and PORT for an rdma_cm one)
# or has exited (the client then says why it cannot connect), never while
# it is still getting there.
pair() {
	local name=$1 srv=$2 cli=$3 spid rc
	timeout 60 $srv >"$log/$name.srv" 2>&1 &
	spid=$!
	if wait_listen $spid ${4:+"$4" "$5"} || ! kill -0 $spid 2>/dev/null; then
		timeout 60 $cli >"$log/$name.cli" 2>&1
		rc=$?
	else
		echo "# the server did not listen within 15 s" |
			tee "$log/$name.cli"
		rc=1
	fi
	crc=$rc
	# A client that gave up leaves its server waiting: give it 5 s.
	reap $spid 50
	src=$?
	[ $crc = 0 ] && [ $src = 0 ] && return 0
	sed 's/^/# client: /' "$log/$name.cli"
	sed 's/^/# server: /' "$log/$name.srv"
	return 1
}

# counters DEV: the port counters of DEV, "name value" a line: rxe's own
# and the ones sodp keeps per device (all siw has).
counters() {
	rdma statistic show link "$1/1" |
		awk '{ for (i = 3; i < NF; i += 2) print $i, $(i + 1) }'
}

# clock_abort FILE: the perftest side whose output FILE is ended in its
# report, at the clock calibration, and reported no error completion.
clock_abort() {
	grep -q -F 'Correlation coefficient r^2: ' "$1" &&
		grep -q -x -F "Can't produce a report" "$1" &&
		! grep -q -E 'Completion with error|Failed status' "$1"
}

# counted NAME: the client of the run NAME reported all $iters operations.
counted() {
	awk -v n=$iters '/^ *[0-9]+ +[0-9]+ / { ok = $2 == n }
		END { exit !ok }' "$log/$1.cli"
}

# moved NAME DEV VERB SIZE ODP: the device's counters (before the run NAME
# in $log/NAME.c0, after it in NAME.c1) show its $iters operations of
# VERB (write, read, send, atomic) with SIZE bytes each moved through
# sodp, on MRs that are ODP (ODP 1) or plain ones sodp serves unpinned
# (ODP 0). Both MRs of an operation, the requester's and the responder's,
# are sodp's, and sodp counts a lease (a cache hit or miss) for every
# page (rxe: every packet) it copies to or from: at least 2 * $iters *
# the pages of SIZE, 2 * $iters for an atomic (its target and the
# requester's result). ODP MRs start empty, so they fault (page_faults);
# a plain MR is mirrored at registration instead (pages_faulted). rxe
# also counts packets: the requests of each operation, ceil(SIZE / MTU)
# of them (MTU the path MTU perftest printed), and for a read as many
# responses plus the request, for an atomic one request and one
# response; in loopback each is both sent and received. Its sends are
# completed (rdma_sends) and received (rdma_recvs) by the count. None of
# its error counters may grow. siw counts no packets. Prints what it
# found.
moved() {
	local name=$1 dev=$2 verb=$3 size=$4 odp=$5 mtu d

	mtu=$(sed -n 's/^ *Mtu *: *\([0-9]*\)\[B\].*/\1/p' "$log/$name.cli" |
		head -n 1)
	d=$(awk 'NR == FNR { c[$1] = $2; next } { print $1, $2 - c[$1] }' \
		"$log/$name.c0" "$log/$name.c1")
	echo "# $name on $dev, $iters x $size B of $verb, MTU ${mtu:-?}:" \
		"counters grown:$(echo "$d" | awk '$2 { printf " %s+%d", $1, $2 }')"
	echo "$d" | awk -v n=$iters -v verb="$verb" -v size="$size" -v odp="$odp" \
		-v mtu="$mtu" '
		function need(name, min) {
			if (c[name] < min) {
				printf "# %s grew by %d, expected at least %d\n",
				       name, c[name], min
				ok = 0
			}
		}
		function none(name) {
			if (c[name]) {
				printf "# error counter %s grew by %d\n",
				       name, c[name]
				ok = 0
			}
		}
		{ c[$1] = $2 }
		END {
			ok = 1
			pages = int((size + 4095) / 4096)
			c["leases"] = c["sodp_cache_hits"] + c["sodp_cache_misses"]
			need("leases", verb == "atomic" ? 2 * n : 2 * n * pages)
			need(odp ? "sodp_page_faults" : "sodp_pages_faulted", 1)
			if ("sent_pkts" in c) {
				if (mtu + 0 <= 0) {
					print "# no path MTU in the client output"
					exit 1
				}
				p = int((size + mtu - 1) / mtu)
				if (verb == "read")
					p++
				else if (verb == "atomic")
					p = 2
				need("sent_pkts", n * p)
				need("rcvd_pkts", n * p)
				if (verb == "send") {
					need("rdma_sends", n)
					need("rdma_recvs", n)
				}
				none("retry_exceeded_err")
				none("retry_rnr_exceeded_err")
				none("send_err")
				none("link_downed")
			}
			exit !ok
		}'
}

# unreported NAME DEV: the run NAME on DEV that has no result line to
# judge, because a side could not calibrate its clock (clock_abort). It
# is good if the other side exited 0, or 1 because it could not read from
# its vanished peer, and neither side reported an error completion, on the
# traffic or on its exchange channel (there a flush, status 5, is what
# the vanished peer leaves); moved() then judges the traffic. Prints what
# it found.
unreported() {
	local name=$1 dev=$2 side who st f aborted='' bad=''

	for side in cli srv; do
		f=$log/$name.$side
		if [ $side = cli ]; then
			st=$crc who=client
		else
			st=$src who=server
		fi
		if grep -q -E 'Completion with error|Failed status' "$f" ||
		   grep -F 'Bad wc status' "$f" |
			grep -q -v -E 'Bad wc status (-- )?5( |$)'; then
			bad="$bad $who (error completion)"
		elif [ "$st" = 1 ] && clock_abort "$f"; then
			aborted="$aborted $who"
		elif [ "$st" != 0 ] && { [ "$st" != 1 ] ||
		     ! grep -q -E 'Unable to read (to|from) socket/rdma_cm' "$f"; }; then
			bad="$bad $who (exit $st)"
		fi
	done
	[ -n "$aborted" ] || return 1
	echo "# $name on $dev: could not calibrate its clock:$aborted"
	[ -z "$bad" ] || { echo "# but failed:$bad"; return 1; }
}

# perf DEV NAME CASE VERB SIZE ODP SERVER CLIENT [DEV PORT]: run the
# perftest pair NAME (pair's SERVER, CLIENT, DEV and PORT) and report it
# as perftest.DEV.CASE: good if both sides exited 0 and the client counted
# all $iters operations, or the run is unreported() for a side's clock,
# and in both cases moved() finds the traffic (VERB, SIZE, ODP) in the
# counters.
perf() {
	local dev=$1 name=$2 case=$3 verb=$4 size=$5 odp=$6 rc v=''

	shift 6
	counters $dev >"$log/$name.c0"
	pair $name "$@" >"$log/$name.why"
	rc=$?
	counters $dev >"$log/$name.c1"
	if grep -q 'ODP does not support ATOMICS' "$log/$name.cli"; then
		tap ok "perftest.$dev.$case" "SKIP perftest 4.5 itself refuses --odp with atomics (see ib_atomic_bw_unpinned and the odp_atomic selftests)"
		return
	fi
	if [ $rc = 0 ] && counted $name; then
		v=counted
	elif unreported $name $dev >"$log/$name.oracle"; then
		v=unreported
	fi
	if [ -n "$v" ] &&
	   moved $name $dev $verb $size $odp >"$log/$name.moved"; then
		[ $v = counted ] || cat "$log/$name.oracle"
		cat "$log/$name.moved"
		tap ok "perftest.$dev.$case"
		return
	fi
	cat "$log/$name.why"
	[ -s "$log/$name.oracle" ] && cat "$log/$name.oracle"
	[ -n "$v" ] && cat "$log/$name.moved"
	# Both exited 0 but the result line did not count $iters: pair
	# printed nothing, so show what perftest said.
	if [ $rc = 0 ]; then
		sed 's/^/# client: /' "$log/$name.cli"
		sed 's/^/# server: /' "$log/$name.srv"
	fi
	tap "not ok" "perftest.$dev.$case"
}

for dev in $devices; do
	case $dev in
	rxe0) addr=$SODP_RXE_ADDR; pt="-x 1"; cm= ;;
	siw0) addr=$SODP_SIW_ADDR; pt="-R"; cm="$dev $port" ;;
	esac
	if ! ibv_devinfo -v -d $dev | grep -q 'ODP_SUPPORT$'; then
		for t in pingpong ib_write_bw ib_read_bw ib_send_bw ib_atomic_bw; do
			wanted $t && tap ok "perftest.$dev.${t}_odp" "SKIP $dev has no ODP"
		done
		continue
	fi

	if ! wanted pingpong; then
		:
	elif [ $dev = rxe0 ]; then
		if pair pp "ibv_rc_pingpong -d $dev -g 1 -n 200 -o" \
			   "ibv_rc_pingpong -d $dev -g 1 -n 200 -o $addr" &&
		   grep -q '200 iters' "$log/pp.cli"; then
			tap ok "perftest.$dev.pingpong_odp"
		else
			tap "not ok" "perftest.$dev.pingpong_odp"
		fi
	else
		tap ok "perftest.$dev.pingpong_odp" "SKIP ibv_rc_pingpong needs IB-style connection setup; iWARP needs rdma_cm"
	fi

	for t in ib_write_bw ib_read_bw ib_send_bw ib_atomic_bw; do
		wanted $t || continue
		verb=${t#ib_}
		verb=${verb%_bw}
		size=65536	# perftest's default for these
		[ $verb = atomic ] && size=8
		# shellcheck disable=SC2086
		perf $dev $t ${t}_odp $verb $size 1 \
			"$t -d $dev $pt --odp -n $iters" \
			"$t -d $dev $pt --odp -n $iters $addr" $cm
	done

	# perftest refuses --odp atomics, but with pin_mode=all its plain
	# MRs are served by sodp with nothing pinned: the atomics must then
	# go through sodp's leases (moved() counts them).
	wanted unpinned || continue
	if [ $dev = siw0 ]; then
		tap ok "perftest.$dev.ib_atomic_bw_unpinned" "SKIP iWARP (siw) has no atomics"
		continue
	fi
	mode=$(cat /sys/module/sodp/parameters/pin_mode)
	echo all >/sys/module/sodp/parameters/pin_mode
	# shellcheck disable=SC2086
	perf $dev atomic_all ib_atomic_bw_unpinned atomic 8 0 \
		"ib_atomic_bw -d $dev $pt -n $iters" \
		"ib_atomic_bw -d $dev $pt -n $iters $addr" $cm
	echo "$mode" >/sys/module/sodp/parameters/pin_mode
done
rm -rf "$log"
