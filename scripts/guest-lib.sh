# SPDX-License-Identifier: GPL-2.0
#
# Sourced by the guest scripts that run a server and a client of an
# rdma-core tool (perftest, rping) in one guest.

# wait_listen PID: until the server PID (or its child) listens on a TCP
# port, exits, or 15 s passed (perftest, pingpong and rping all exchange
# their parameters over TCP first).
wait_listen() {
	local p end=$((SECONDS + 15))

	while [ $SECONDS -lt $end ] && kill -0 "$1" 2>/dev/null; do
		for p in $1 $(pgrep -P "$1"); do
			ss -ltnp 2>/dev/null | grep -q "pid=$p," && return 0
		done
		sleep 0.1
	done
}

# reap PID TENTHS: give the server PID TENTHS tenths of a second to end
# (its client is done), then kill it; returns its exit status.
reap() {
	local _

	for _ in $(seq "$2"); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill "$1" 2>/dev/null
	wait "$1"
}
