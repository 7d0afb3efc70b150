#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a guest by a selftest that waited in vain for a completion
# (SODP_STALL_CMD): print, as TAP comments, what the transport and sodp
# show at that moment, so that a stall seen once can be told apart (data
# left in a socket, a QP out of RTS, a deferral that is never resumed).

{
	echo "---- stall dump at $(cut -d' ' -f1 /proc/uptime) s"
	ss -tnmie 2>&1
	nstat -az 2>&1 | grep -E -i 'drop|prune|collapse|retrans|zerowindow|timeout|backlog' |
		grep -v ' 0 '
	rdma resource show qp 2>&1
	rdma statistic mr 2>&1
	for f in /sys/kernel/debug/sodp/*; do
		printf '%s: %s\n' "${f##*/}" "$(tr '\n' ' ' <"$f" | cut -c1-200)"
	done
	# Where the transmit threads and any blocked task are (not through
	# sysrq, whose traces would read as a splat in the kernel log).
	for t in /proc/[0-9]*; do
		comm=$(cat "$t/comm" 2>/dev/null) || continue
		state=$(awk '/^State:/ {print $2}' "$t/status" 2>/dev/null)
		case "$comm" in
		siw_tx*|kworker*|sodp*) ;;
		*) [ "$state" = D ] || continue ;;
		esac
		stack=$(cat "$t/stack" 2>/dev/null)
		if [ "$state" != D ] && [ "${comm#siw_tx}" = "$comm" ]; then
			echo "$stack" | grep -q -E '(siw|sodp|rxe|hmm)_' ||
				continue
		fi
		echo "task ${t#/proc/} $comm state $state"
		echo "$stack"
	done
	dmesg | tail -n 20
	echo "---- end of stall dump"
} 2>&1 | sed 's/^/# /'
