#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a guest after guest-setup: the same selftest programs on the
# same device SODP_LOOP_N times in a row (default 20), counting runs with
# a failure. Each failing run's failed cases and stall dumps are kept as
# comments (with vm-run --share, each failing run's whole output is
# copied there as loop.N.out); the last line says "loop: N runs, N failed".
#
# SODP_LOOP_TESTS (default "sodp_odp sodp_siw_defer"), SODP_LOOP_DEVICE
# (default siw0); arguments are passed to every program. siw's messages
# for a failed work request and a failed deferred fault are switched on
# (dynamic debug; cheap, they print only on failure) and a failing run's
# share of them is kept too: followed as they come (dmesg -W), because
# the deferral messages of a run overflow the kernel's log buffer and a
# failed case's own messages were gone by the end of the run.

set -u
dir=${SODP_SELFTESTS:-$SODP_TOP/build/selftests}
n=${SODP_LOOP_N:-20}
dev=${SODP_LOOP_DEVICE:-siw0}
progs=${SODP_LOOP_TESTS:-sodp_odp sodp_siw_defer}
export SODP_STALL_CMD=${SODP_STALL_CMD-$SODP_TOP/scripts/guest-stall-dump.sh}
bad=0

ctl=/sys/kernel/debug/dynamic_debug/control
for f in 'processing failed' 'SQ task failed' 'deferred fault' \
	 'unable to process RX'; do
	echo "module siw format \"$f\" +p" >$ctl 2>/dev/null
done

for i in $(seq "$n"); do
	t=$(date +%s)
	out=/tmp/loop.$i
	klog=/tmp/loop.$i.dmesg
	dmesg -W >"$klog" 2>&1 &
	kpid=$!
	for p in $progs; do
		SODP_DEVICE=$dev timeout "${SODP_PROG_TIMEOUT:-900}" "$dir/$p" "$@"
		[ $? = 124 ] && echo "not ok 999 $p.$dev # timed out"
	done >"$out" 2>&1
	sleep 0.5
	kill $kpid 2>/dev/null
	wait $kpid 2>/dev/null
	f=$(grep -c '^not ok' "$out")
	if [ "$f" != 0 ]; then
		bad=$((bad + 1))
		echo "# run $i: $f failed ($(( $(date +%s) - t )) s)"
		# The whole output, for a dump longer than what is shown here.
		[ -n "${SODP_SHARE:-}" ] &&
			cp "$out" "$SODP_SHARE/loop.$i.out" &&
			cp "$klog" "$SODP_SHARE/loop.$i.dmesg"
		grep -E '^not ok|^# (stall|----)|^#  [A-Za-z_]+\.c:[0-9]+:' "$out" | head -40
		grep -E -A60 '^# ---- stall dump' "$out" | head -120
		grep -E 'siw|sodp' "$klog" | grep -v -E 'deferred fault at .*, err = 0$' |
			tail -40 | sed 's/^/# dmesg: /'
	else
		echo "# run $i: ok ($(( $(date +%s) - t )) s)"
	fi
	rm -f "$klog"
done
echo "loop: $n runs, $bad failed"
[ "$bad" = 0 ]
