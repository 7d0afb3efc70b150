#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The demo, run inside a guest after guest-setup: a ping-pong and an RDMA
# WRITE bandwidth loopback on rxe0 and siw0, then a short summary.
# rxe (RoCE) uses ibv_rc_pingpong; siw (iWARP) cannot connect QPs without
# rdma_cm, so its ping-pong is rping and perftest runs with -R.

set -u
log=$(mktemp -d)
declare -A result

# wait_listen PID: until the server PID (or its child) listens on a TCP
# port (perftest and pingpong exchange their parameters over TCP first),
# an rdma_cm id listens (rping has no socket of its own), the server
# exits, or 15 s passed.
wait_listen() {
	local p end=$((SECONDS + 15))
	while [ $SECONDS -lt $end ] && kill -0 "$1" 2>/dev/null; do
		for p in $1 $(pgrep -P "$1"); do
			ss -ltnp 2>/dev/null | grep -q "pid=$p," && return 0
		done
		rdma resource show cm_id 2>/dev/null |
			grep -q "state LISTEN" && return 0
		sleep 0.1
	done
}

# run_pair NAME SERVER_CMD CLIENT_CMD: server in the background, client in
# the foreground; both must succeed.
run_pair() {
	local name=$1 srv=$2 cli=$3 spid rc src
	$srv >"$log/$name.server" 2>&1 &
	spid=$!
	wait_listen $spid
	timeout 60 $cli >"$log/$name.client" 2>&1
	rc=$?
	wait $spid
	src=$?
	if [ $rc != 0 ] || [ $src != 0 ]; then
		echo "demo: $name failed (client $rc, server $src)"
		sed 's/^/  client: /' "$log/$name.client"
		sed 's/^/  server: /' "$log/$name.server"
		return 1
	fi
	return 0
}

bw_of() { awk '/^ *65536 /{ print $4 }' "$log/$1.client"; }

fail=0
echo "== rxe0: ibv_rc_pingpong (RC, 4 KiB, 1000 iterations)"
if run_pair pp-rxe "ibv_rc_pingpong -d rxe0 -g 1 -n 1000" \
		  "ibv_rc_pingpong -d rxe0 -g 1 -n 1000 $SODP_RXE_ADDR"; then
	cat "$log/pp-rxe.client"
	result[pp-rxe]=$(awk '/usec\/iter/ { print $7 " usec/iter" }' "$log/pp-rxe.client")
else
	fail=1
fi

echo "== siw0: rping (rdma_cm ping-pong, 1000 iterations)"
if run_pair pp-siw "rping -s -a $SODP_SIW_ADDR -C 1000" \
		  "rping -c -a $SODP_SIW_ADDR -C 1000 -v"; then
	tail -n 2 "$log/pp-siw.client"
	result[pp-siw]="rping 1000 iterations ok"
else
	fail=1
fi

echo "== rxe0: ib_write_bw 64 KiB, 3 s"
if run_pair bw-rxe "ib_write_bw -d rxe0 -x 1 -s 65536 -D 3" \
		  "ib_write_bw -d rxe0 -x 1 -s 65536 -D 3 $SODP_RXE_ADDR"; then
	tail -n 4 "$log/bw-rxe.client"
	result[bw-rxe]="$(bw_of bw-rxe) MB/s"
else
	fail=1
fi

echo "== siw0: ib_write_bw -R 64 KiB, 3 s"
if run_pair bw-siw "ib_write_bw -d siw0 -R -s 65536 -D 3" \
		  "ib_write_bw -d siw0 -R -s 65536 -D 3 $SODP_SIW_ADDR"; then
	tail -n 4 "$log/bw-siw.client"
	result[bw-siw]="$(bw_of bw-siw) MB/s"
else
	fail=1
fi

echo
echo "== sodp demo summary (TCG guest: absolute numbers are emulation speed)"
printf '  %-6s %-28s %s\n' device "ping-pong" "RDMA WRITE 64 KiB"
printf '  %-6s %-28s %s\n' rxe0 "${result[pp-rxe]:-FAILED}" "${result[bw-rxe]:-FAILED}"
printf '  %-6s %-28s %s\n' siw0 "${result[pp-siw]:-FAILED}" "${result[bw-siw]:-FAILED}"
# Out-of-tree modules are tainted "O": proof that rxe and siw are ours.
printf '  modules: %s\n' "$(for m in sodp rdma_rxe siw; do
	printf '%s(taint %s) ' $m "$(cat /sys/module/$m/taint 2>/dev/null)"; done)"
rm -rf "$log"
exit $fail
