#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a guest by a selftest that waited in vain for a completion
# (SODP_STALL_CMD): print, as TAP comments, what the transport and sodp
# show at that moment, so that a stall seen once can be told apart (data
# left in a socket, a QP out of RTS, a deferral that is never resumed, a
# fault that never returns).
#
# The selftest harness kills the whole process group of a case that runs
# past its timeout, this script included: so the output is not buffered
# (sed -u), the blocked tasks come first and every command that asks the
# kernel something is bounded (a command blocked on a lock a stuck fault
# holds would otherwise take the whole dump with it; it is named instead).

# Run "$@", bounded to 10 s; say so if it did not finish.
bounded() {
	timeout -s KILL 10 "$@"
	[ $? = 137 ] && echo "($* did not finish within 10 s)"
}

# Which functions of the transport modules and of sodp run during one
# second of the stall, with their call counts: tells a QP nobody schedules
# (nothing runs) from one that spins (a retransmit timer firing, a task
# rescheduling itself, a fault being retried). The function tracer adds no
# kernel log line; it is switched off again before this returns.
trace_sample() {
	local t=/sys/kernel/tracing m mods=

	[ -w $t/set_ftrace_filter ] || return
	for m in rdma_rxe siw sodp; do
		grep -q "^$m " /proc/modules && mods="$mods $m"
	done
	[ -n "$mods" ] || return
	echo 0 >$t/tracing_on
	echo nop >$t/current_tracer
	: >$t/trace
	: >$t/set_ftrace_filter
	for m in $mods; do
		echo ":mod:$m" >>$t/set_ftrace_filter
	done
	echo function >$t/current_tracer
	echo 1 >$t/tracing_on
	sleep 1
	echo 0 >$t/tracing_on
	echo "function calls in 1 s ($mods ):"
	sed -n 's/^.*: \([^ ]*\) <-\([^ ]*\)$/\1 <-\2/p' $t/trace |
		sort | uniq -c | sort -rn | head -n 30
	grep -v '^#' $t/trace | head -n 30
	echo nop >$t/current_tracer
	: >$t/set_ftrace_filter
	: >$t/trace
	echo 1 >$t/tracing_on
}

{
	echo "---- stall dump at $(cut -d' ' -f1 /proc/uptime) s, load $(cut -d' ' -f1-4 /proc/loadavg)"
	# Where the transmit threads and any blocked task are (not through
	# sysrq, whose traces would read as a splat in the kernel log). Only
	# builtins per task: a fork costs ~70 ms in a TCG guest.
	for t in /proc/[0-9]*; do
		read -r comm 2>/dev/null <"$t/comm" || continue
		state=
		while read -r key val _; do
			[ "$key" = State: ] && state=$val && break
		done 2>/dev/null <"$t/status"
		case "$comm" in
		siw_tx*|kworker*|sodp*) ;;
		*) [ "$state" = D ] || [ "$state" = R ] || continue ;;
		esac
		# A running task has no stack to show: name it and its time.
		if [ "$state" = R ]; then
			read -r -a st 2>/dev/null <"$t/stat"
			echo "task ${t#/proc/} $comm state R utime ${st[13]} stime ${st[14]}"
			continue
		fi
		stack=
		read -r -d "" stack 2>/dev/null <"$t/stack"
		if [ "$state" != D ] && [ "${comm#siw_tx}" = "$comm" ]; then
			[[ $stack =~ (siw|sodp|rxe|hmm)_ ]] || continue
		fi
		echo "task ${t#/proc/} $comm state $state"
		echo "$stack"
	done
	for f in /sys/kernel/debug/sodp/*; do
		v=
		read -r v 2>/dev/null <"$f"
		printf '%s: %s\n' "${f##*/}" "${v:0:200}"
	done
	bounded rdma resource show qp -d
	bounded rdma statistic mr
	for f in /sys/class/infiniband/*/ports/1/hw_counters/*; do
		v=0
		read -r v 2>/dev/null <"$f"
		d=${f#/sys/class/infiniband/}
		[ "${v:-0}" = 0 ] || printf '%s ' "${d%%/*}:${f##*/}=$v"
	done
	echo
	bounded ss -tnmie
	bounded nstat -az | grep -E -i 'drop|prune|collapse|retrans|zerowindow|timeout|backlog|probe' |
		grep -v ' 0 '
	dmesg | tail -n 20
	# Last: CI shows only the tail of a failed run's output.
	trace_sample
	echo "---- end of stall dump at $(cut -d' ' -f1 /proc/uptime) s"
} 2>&1 | sed -u 's/^/# /'
