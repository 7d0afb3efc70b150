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

# pair NAME SERVER CLIENT [DEV PORT]: both must exit 0; keeps the output
# in $log. The client starts once the server listens (wait_listen; DEV and
# PORT for an rdma_cm one) or has exited (the client then says why it
# cannot connect), never while it is still getting there.
pair() {
	local name=$1 srv=$2 cli=$3 spid rc src
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
	# A client that gave up leaves its server waiting: give it 5 s.
	reap $spid 50
	src=$?
	[ $rc = 0 ] && [ $src = 0 ] && return 0
	sed 's/^/# client: /' "$log/$name.cli"
	sed 's/^/# server: /' "$log/$name.srv"
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
		# shellcheck disable=SC2086
		pair $t "$t -d $dev $pt --odp -D 1" \
			"$t -d $dev $pt --odp -D 1 $addr" $cm >"$log/$t.why"
		rc=$?
		if grep -q 'ODP does not support ATOMICS' "$log/$t.cli"; then
			tap ok "perftest.$dev.${t}_odp" "SKIP perftest 4.5 itself refuses --odp with atomics (see ib_atomic_bw_unpinned and the odp_atomic selftests)"
		elif [ $rc = 0 ] && awk '/^ *[0-9]+ +[0-9]+ / { ok = $2 > 0 }
					END { exit !ok }' "$log/$t.cli"; then
			tap ok "perftest.$dev.${t}_odp"
		else
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
