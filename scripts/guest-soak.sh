#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a guest after guest-setup (vm-run --numa 2): sodp_soak on
# every device of SODP_DEVICES (default rxe0 siw0) at once, for
# SODP_SOAK_SECS seconds (default 600), with sodp.pin_mode=all so that the
# plain-MR stream goes through sodp too (restored afterwards). Prints each
# device's summary and one TAP line per device; exits non-zero if any
# device saw a mismatch, a lost or duplicated completion, or an error.
# SODP_SOAK_SELFCHECK=1 first runs a short soak on the first device with
# one byte of the model corrupted (SODP_SOAK_CORRUPT) and expects it to fail.
# With a hot-pluggable DIMM (vm-run --dimm, as make soak boots it), a
# cycler meanwhile onlines a DIMM memory block to ZONE_MOVABLE, where the
# soak's new pages go first, and offlines it again, over and over: every
# offline must complete within 60 s (nothing is pinned under pin_mode=all),
# one TAP line (soak.memory_offline) says so.

set -u
secs=${SODP_SOAK_SECS:-600}
devices=${SODP_DEVICES:-rxe0 siw0}
bin=${SODP_TOOLS:-$SODP_TOP/build/tools}
param=/sys/module/sodp/parameters/pin_mode
log=$(mktemp -d)
rc=0 n=0

if [ "${SODP_SOAK_SELFCHECK:-0}" = 1 ]; then
	dev=${devices%% *}
	n=$((n + 1))
	if SODP_DEVICE=$dev SODP_SOAK_CORRUPT=1 timeout 120 \
		"$bin/sodp_soak" 5 >"$log/self" 2>&1; then
		cat "$log/self"
		echo "not ok $n soak.$dev.detects_mismatch # a corrupted model passed"
		rc=1
	# One model byte, compared with local, remote and read-back: 3.
	elif grep -q ' soak .* 3 mismatches, 0 lost, 0 duplicated: FAILED$' \
		"$log/self"; then
		echo "ok $n soak.$dev.detects_mismatch"
	else
		cat "$log/self"
		echo "not ok $n soak.$dev.detects_mismatch # not failed by exactly 3 mismatches"
		rc=1
	fi
fi

old=
if [ -w $param ]; then
	old=$(cat $param)
	echo all >$param
	echo "# pin_mode: $old -> $(cat $param)"
else
	echo "# no writable $param: the plain-MR stream is pinned"
fi

# cycle_block BLOCK STOPFILE: online_movable, let the soak allocate, offline;
# prints "N onlined, N offlined, N failed" when STOPFILE appears.
cycle_block() {
	local st=/sys/devices/system/memory/memory$1/state on=0 off=0 bad=0

	while [ ! -e "$2" ]; do
		if echo online_movable >"$st" 2>/dev/null; then
			on=$((on + 1))
		else
			bad=$((bad + 1))
			echo "# memory$1: online_movable failed"
			break
		fi
		sleep 2
		# SIGINT ends the kernel's migration retries with EINTR.
		if timeout -s INT 60 sh -c "echo offline >$st" 2>/dev/null; then
			off=$((off + 1))
		else
			bad=$((bad + 1))
			echo "# memory$1: offline did not complete in 60 s"
			grep -q online "$st" && echo offline >"$st" 2>/dev/null
			break
		fi
		sleep 1
	done
	echo "$on onlined, $off offlined, $bad failed"
}

blk=
for f in /sys/devices/system/memory/memory*/state; do
	if [ "$(cat "$f")" = offline ]; then
		blk=${f%/state}
		blk=${blk##*/memory}
		break
	fi
done
if [ -n "$blk" ]; then
	cycle_block "$blk" "$log/stop" >"$log/memhp" &
	cpid=$!
fi

declare -A pid
for dev in $devices; do
	SODP_DEVICE=$dev timeout $((secs + 120)) "$bin/sodp_soak" "$secs" \
		>"$log/$dev" 2>&1 &
	pid[$dev]=$!
done
for dev in $devices; do
	wait "${pid[$dev]}"
	r=$?
	n=$((n + 1))
	sed 's/^/# /' "$log/$dev"
	if [ $r = 0 ]; then
		echo "ok $n soak.$dev"
	else
		[ $r = 124 ] && echo "# $dev: timed out"
		echo "not ok $n soak.$dev # exit $r"
		rc=1
	fi
done

if [ -n "$blk" ]; then
	touch "$log/stop"
	wait "$cpid"
	n=$((n + 1))
	sed 's/^/# memory'"$blk"': /' "$log/memhp"
	if grep -q ' offlined, 0 failed$' "$log/memhp" &&
	   ! grep -q ' 0 offlined' "$log/memhp"; then
		echo "ok $n soak.memory_offline"
	else
		echo "not ok $n soak.memory_offline"
		rc=1
	fi
fi

[ -n "$old" ] && echo "$old" >$param
rm -rf "$log"
exit $rc
