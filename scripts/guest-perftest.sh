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
# Usage: guest-perftest.sh [first TAP number]

set -u
n=${1:-1}
log=$(mktemp -d)
port=18515	# perftest's default, for the rdma_cm listener (siw: -R)

tap() {	# tap STATUS NAME [DIRECTIVE]
	echo "$1 $n $2${3:+ # $3}"
	n=$((n + 1))
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

# unreported NAME DEV: the run NAME on DEV that has no result line to
# judge, because a side could not calibrate its clock (clock_abort). It
# is good if the other side exited 0, or 1 because it could not read from
# its vanished peer; neither side reported an error completion, on the
# traffic or on its exchange channel (there a flush, status 5, is what
# the vanished peer leaves); and the device's counters (before the run in
# $log/NAME.c0, after it in NAME.c1) show the traffic: rxe sent and
# received packets (and, for sends, completed receives) with none of its
# error counters grown, and sodp served the ODP MRs, faulting their pages
# in. Prints what it found.
unreported() {
	local name=$1 dev=$2 side who st f aborted='' bad='' d

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
	d=$(awk 'NR == FNR { c[$1] = $2; next } { print $1, $2 - c[$1] }' \
		"$log/$name.c0" "$log/$name.c1")
	echo "# $name on $dev: could not calibrate its clock:$aborted;" \
		"counters grown:$(echo "$d" | awk '$2 { printf " %s+%d", $1, $2 }')"
	[ -z "$bad" ] || { echo "# but failed:$bad"; return 1; }
	echo "$d" | awk -v verb="${name#ib_}" '
		{ c[$1] = $2 }
		END {
			ok = c["sodp_page_faults"] > 0 && c["sodp_cache_hits"] > 0
			if ("sent_pkts" in c) {
				ok = ok && c["sent_pkts"] > 0 && c["rcvd_pkts"] > 0
				if (verb ~ /^send/)
					ok = ok && c["rdma_recvs"] > 0
				ok = ok && !c["retry_exceeded_err"] &&
				     !c["retry_rnr_exceeded_err"] &&
				     !c["send_err"] && !c["link_downed"]
			}
			exit !ok
		}' && return 0
	echo "# but the counters do not show good traffic with ODP faults"
	return 1
}

for dev in rxe0 siw0; do
	case $dev in
	rxe0) addr=$SODP_RXE_ADDR; pt="-x 1"; cm= ;;
	siw0) addr=$SODP_SIW_ADDR; pt="-R"; cm="$dev $port" ;;
	esac
	if ! ibv_devinfo -v -d $dev | grep -q 'ODP_SUPPORT$'; then
		for t in pingpong ib_write_bw ib_read_bw ib_send_bw ib_atomic_bw; do
			tap ok "perftest.$dev.${t}_odp" "SKIP $dev has no ODP"
		done
		continue
	fi

	if [ $dev = rxe0 ]; then
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
		counters $dev >"$log/$t.c0"
		# shellcheck disable=SC2086
		pair $t "$t -d $dev $pt --odp -D 1" \
			"$t -d $dev $pt --odp -D 1 $addr" $cm >"$log/$t.why"
		rc=$?
		counters $dev >"$log/$t.c1"
		if grep -q 'ODP does not support ATOMICS' "$log/$t.cli"; then
			tap ok "perftest.$dev.${t}_odp" "SKIP perftest 4.5 itself refuses --odp with atomics (see ib_atomic_bw_unpinned and the odp_atomic selftests)"
		elif [ $rc = 0 ] && awk '/^ *[0-9]+ +[0-9]+ / { ok = $2 > 0 }
					END { exit !ok }' "$log/$t.cli"; then
			tap ok "perftest.$dev.${t}_odp"
		elif unreported $t $dev >"$log/$t.oracle"; then
			cat "$log/$t.oracle"
			tap ok "perftest.$dev.${t}_odp"
		else
			cat "$log/$t.oracle"
			cat "$log/$t.why"
			# Both exited 0 but no result line counted iterations:
			# pair printed nothing, so show what perftest said.
			if [ $rc = 0 ]; then
				sed 's/^/# client: /' "$log/$t.cli"
				sed 's/^/# server: /' "$log/$t.srv"
			fi
			tap "not ok" "perftest.$dev.${t}_odp"
		fi
	done

	# perftest refuses --odp atomics, but with pin_mode=all its plain
	# MRs are served by sodp with nothing pinned: the atomics must then
	# go through sodp's leases (cache_hits grows).
	if [ $dev = siw0 ]; then
		tap ok "perftest.$dev.ib_atomic_bw_unpinned" "SKIP iWARP (siw) has no atomics"
		continue
	fi
	dbg=/sys/kernel/debug/sodp
	mode=$(cat /sys/module/sodp/parameters/pin_mode)
	hits0=$(cat $dbg/cache_hits)
	echo all >/sys/module/sodp/parameters/pin_mode
	# shellcheck disable=SC2086
	pair atomic_all "ib_atomic_bw -d $dev $pt -D 1" \
		"ib_atomic_bw -d $dev $pt -D 1 $addr" >"$log/atomic_all.why"
	rc=$?
	echo "$mode" >/sys/module/sodp/parameters/pin_mode
	hits1=$(cat $dbg/cache_hits)
	if [ $rc = 0 ] && [ "$hits1" -gt "$hits0" ] &&
	   awk '/^ *[0-9]+ +[0-9]+ / { ok = $2 > 0 } END { exit !ok }' \
		"$log/atomic_all.cli"; then
		tap ok "perftest.$dev.ib_atomic_bw_unpinned"
	else
		cat "$log/atomic_all.why"
		if [ $rc = 0 ]; then
			sed 's/^/# client: /' "$log/atomic_all.cli"
			sed 's/^/# server: /' "$log/atomic_all.srv"
		fi
		echo "# sodp cache_hits $hits0 -> $hits1"
		tap "not ok" "perftest.$dev.ib_atomic_bw_unpinned"
	fi
done
rm -rf "$log"
