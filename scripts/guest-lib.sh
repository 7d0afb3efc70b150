# SPDX-License-Identifier: GPL-2.0
#
# Sourced by the guest scripts that run a server and a client of an
# rdma-core tool (perftest, rping) in one guest.

# cm_listening PID DEV PORT: PID has an rdma_cm id in LISTEN on DEV for
# PORT, and the device listens for it: an iWARP device (siw) through a
# kernel TCP socket, which "ss -p" shows with no process, and which siw
# opens after the id shows LISTEN; an IB-CM device (rxe) in the id itself.
cm_listening() {
	rdma resource show cm_id 2>/dev/null |
		grep -q "^link $2/[^ ]* .* state LISTEN .* pid $1 .*:$3 " ||
		return 1
	case "$(cat "/sys/class/infiniband/$2/node_type" 2>/dev/null)" in
	*RNIC*) [ -n "$(ss -Hltn "sport = :$3" 2>/dev/null)" ] ;;
	esac
}

# wait_listen PID [DEV PORT]: until the server PID (or its child) listens,
# exits, or 15 s passed; fails unless it listens. It listens when it has a
# TCP socket listening (perftest's and pingpong's parameter exchange) or,
# given DEV and PORT, an rdma_cm listener on DEV (cm_listening: rping, and
# perftest -R, which exchange through rdma_cm and have no socket of their
# own).
wait_listen() {
	local p end=$((SECONDS + 15))

	while [ $SECONDS -lt $end ] && kill -0 "$1" 2>/dev/null; do
		for p in $1 $(pgrep -P "$1"); do
			ss -ltnp 2>/dev/null | grep -q "pid=$p," && return 0
			[ $# -lt 3 ] || ! cm_listening "$p" "$2" "$3" || return 0
		done
		sleep 0.1
	done
	return 1
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
