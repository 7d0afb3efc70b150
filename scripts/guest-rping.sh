#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a guest after guest-setup: librdmacm's own rping on rxe0 and
# siw0 with sodp.pin_mode=all, as TAP. rping has no ODP option: it
# registers plain MRs, which pin_mode=all makes the drivers mirror through
# sodp instead of pinning. To show that nothing is pinned, both rping
# processes run with RLIMIT_MEMLOCK 0 and without CAP_IPC_LOCK, where
# pinning is refused (ib_umem_get(): EPERM).
#
#   rping.DEV.pin_all      server and client exit 0; each printed COUNT
#                          ping lines, rdma-ping-0 on, in order, each with
#                          the whole payload rping sends (checked byte for
#                          byte; the client also validates with -V); the
#                          sodp totals show the MRs were mirrored at
#                          registration and the data went through sodp;
#                          afterwards no umem is left
#   rping.DEV.pin_refused  the control: under pin_mode=pin the same limits
#                          make the client's registration fail
#
# Usage: guest-rping.sh [first TAP number]

set -u
n=${1:-1}
log=$(mktemp -d)
# shellcheck source=scripts/guest-lib.sh
. "$SODP_TOP/scripts/guest-lib.sh"
param=/sys/module/sodp/parameters/pin_mode
dbg=/sys/kernel/debug/sodp
count=50
size=65535	# rping 44 refuses 65536 although its message allows it
port=7300
limits="prlimit --memlock=0:0 setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock"

tap() {	# tap STATUS NAME [DIRECTIVE]
	echo "$1 $n $2${3:+ # $3}"
	n=$((n + 1))
}

why() { echo "# $*"; }

# wait_cm_listen ADDR PORT PID: until an rdma_cm id listens on ADDR:PORT
# (rping listens through rdma_cm only: for rxe no socket at all, for siw a
# kernel one), PID exited, or 30 s passed.
wait_cm_listen() {
	local end=$((SECONDS + 30))
	while [ $SECONDS -lt $end ] && kill -0 "$3" 2>/dev/null; do
		rdma resource show cm_id 2>/dev/null |
			grep -q "state LISTEN .* src-addr $1:$2 " && return 0
		sleep 0.1
	done
	return 1
}

# check_pings FILE PREFIX: FILE has $count lines PREFIX"rdma-ping-K: ..."
# for K = 0, 1, ..., each holding rping's payload: size - 1 characters,
# "rdma-ping-K: " and then 'A' + K % 58, 'A' + K % 58 + 1, ... through
# 'z' and on from 'A' again.
check_pings() {
	awk -v pre="$2" -v n=$count -v len=$((size - 1)) '
	BEGIN {
		for (c = 65; c <= 122; c++)
			abc = abc sprintf("%c", c)
		rot = abc
		while (length(rot) < len + 58)
			rot = rot abc
		k = 0
	}
	index($0, pre) == 1 {
		p = "rdma-ping-" k ": "
		if ($0 != pre p substr(rot, k % 58 + 1, len - length(p))) {
			printf "# %s line %d: not the payload of ping %d\n",
				FILENAME, NR, k
			bad = 1
			exit
		}
		k++
	}
	END {
		if (!bad && k != n) {
			printf "# %s: %d of %d ping lines\n", FILENAME, k, n
			bad = 1
		}
		exit bad
	}' "$1"
}

total() { cat "$dbg/$1"; }

# rping_all DEV ADDR: the pin_all case; says why when it fails.
rping_all() {
	local dev=$1 addr=$2 spid rc src
	local pf0 pre0 acc0 um0 pf1 pre1 acc1 um1

	port=$((port + 1))
	pf0=$(total pages_faulted)
	pre0=$(total prefetches)
	acc0=$(($(total cache_hits) + $(total cache_misses)))
	um0=$(total umems)
	# shellcheck disable=SC2086
	timeout 120 $limits rping -s -a "$addr" -p $port -C $count -v \
		-S $size >"$log/srv.out" 2>"$log/srv.err" &
	spid=$!
	if ! wait_cm_listen "$addr" $port $spid; then
		why "$dev: the rping server did not listen"
		kill $spid 2>/dev/null
		wait $spid
		sed 's/^/# server: /' "$log/srv.err"
		return 1
	fi
	# shellcheck disable=SC2086
	timeout 120 $limits rping -c -a "$addr" -p $port -C $count -v -V \
		-S $size >"$log/cli.out" 2>"$log/cli.err"
	rc=$?
	# The server ends when the client disconnects; give it 10 s.
	reap $spid 100
	src=$?
	if [ $rc != 0 ] || [ $src != 0 ]; then
		why "$dev: rping client exit $rc, server exit $src"
		sed 's/^/# client: /' "$log/cli.err"
		sed 's/^/# server: /' "$log/srv.err"
		return 1
	fi
	check_pings "$log/srv.out" "server ping data: " || return 1
	check_pings "$log/cli.out" "ping data: " || return 1

	pf1=$(total pages_faulted)
	pre1=$(total prefetches)
	acc1=$(($(total cache_hits) + $(total cache_misses)))
	why "$dev: sodp totals: $((pre1 - pre0)) prefetches," \
		"$((pf1 - pf0)) pages faulted, $((acc1 - acc0)) page accesses"
	# Each process registered at least its 16-page RDMA buffer, each
	# plain MR is faulted in at registration, and each ping moves data.
	if [ $((pre1 - pre0)) -lt 2 ] || [ $((pf1 - pf0)) -lt 32 ] ||
	   [ $((acc1 - acc0)) -lt $count ]; then
		why "$dev: rping's MRs did not go through sodp"
		return 1
	fi
	# The MRs are gone with the processes (siw may release in a work item).
	for _ in $(seq 50); do
		um1=$(total umems)
		[ "$um1" = "$um0" ] && return 0
		sleep 0.1
	done
	why "$dev: $um0 sodp umems before rping, $um1 after"
	return 1
}

# rping_refused DEV ADDR: the control case.
rping_refused() {
	local dev=$1 addr=$2 rc

	port=$((port + 1))
	# shellcheck disable=SC2086
	timeout 60 $limits rping -c -a "$addr" -p $port -C 1 -S $size \
		>"$log/ctl.out" 2>"$log/ctl.err"
	rc=$?
	if [ $rc != 0 ] && grep -q 'reg_mr failed' "$log/ctl.err"; then
		return 0
	fi
	why "$dev: pinned registration under RLIMIT_MEMLOCK 0: exit $rc"
	sed 's/^/# client: /' "$log/ctl.err"
	return 1
}

skip=""
command -v rping >/dev/null || skip="no rping (rdmacm-utils)"
[ -w $param ] && [ -r $dbg/umems ] || skip="no sodp pin_mode or debugfs"
if [ -n "$skip" ]; then
	for dev in rxe0 siw0; do
		tap ok "rping.$dev.pin_all" "SKIP $skip"
		tap ok "rping.$dev.pin_refused" "SKIP $skip"
	done
	exit 0
fi

old=$(cat $param)
for dev in rxe0 siw0; do
	case $dev in
	rxe0) addr=$SODP_RXE_ADDR ;;
	siw0) addr=$SODP_SIW_ADDR ;;
	esac

	echo all >$param
	if rping_all $dev "$addr"; then
		tap ok "rping.$dev.pin_all"
	else
		tap "not ok" "rping.$dev.pin_all"
	fi

	echo pin >$param
	if rping_refused $dev "$addr"; then
		tap ok "rping.$dev.pin_refused"
	else
		tap "not ok" "rping.$dev.pin_refused"
	fi
done
echo "$old" >$param
rm -rf "$log"
