#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a debug-kernel guest after guest-setup: sodp's fault path,
# registration and prefetch with allocations failing. failslab and
# fail_page_alloc fail a share of the allocations that have sodp.ko in
# their call chain (the stack-trace filter), sleeping ones included,
# while a selection of the ODP selftests runs on each device. The cases'
# own verdicts are kept as comments: an injected failure may rightly fail
# a case. What is judged, as TAP:
#   - every error reached userspace as an errno or a completion status
#     (the kernel log shows no splat: vm-run judges that),
#   - with injection off again, sodp holds no page and no umem,
#   - the same cases then pass again on that device.
#
# SODP_FAIL_PROBABILITY (percent, default 5) sets the share.

set -u
dir=${SODP_SELFTESTS:-$SODP_TOP/build/selftests}
devices=${SODP_DEVICES:-rxe0 siw0}
prob=${SODP_FAIL_PROBABILITY:-5}
dbg=/sys/kernel/debug
cases=(-f odp_xfer -t munmap_remap -t implicit_write_read -t prefetch_write
       -t prefetch_write_implicit -t async_prefetch_dereg -t ext4_file
       -t move_pages_traffic -t exit_without_dereg)
n=0

tap() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n $2"
	else
		echo "not ok $n $2${3:+ # $3}"
	fi
}

# inject on|off: failslab and fail_page_alloc for callers inside sodp.ko.
inject() {
	local a base size

	# shellcheck disable=SC2046
	set -- "$1" $(awk '$1 == "sodp" { print $6, $2 }' /proc/modules)
	base=${2:-0} size=${3:-0}
	[ "$((base))" != 0 ] || return 1
	for a in failslab fail_page_alloc; do
		[ -d "$dbg/$a" ] || return 1
		echo 0 >"$dbg/$a/probability" || return 1
	done
	[ "$1" = off ] && return 0
	# Every knob is set before any probability: once one is on, a
	# write that allocates may fail itself. Module addresses are above
	# 2^63, where bash arithmetic is negative: print them unsigned.
	for a in failslab fail_page_alloc; do
		echo N >"$dbg/$a/task-filter" &&
		echo N >"$dbg/$a/ignore-gfp-wait" &&
		echo 0 >"$dbg/$a/verbose" &&
		echo -1 >"$dbg/$a/times" &&
		echo 0 >"$dbg/$a/space" &&
		echo 1 >"$dbg/$a/interval" &&
		printf '%u\n' "$((base))" >"$dbg/$a/require-start" &&
		printf '%u\n' "$((base + size))" >"$dbg/$a/require-end" ||
			return 1
	done
	if [ -f "$dbg/fail_page_alloc/ignore-gfp-highmem" ]; then
		echo N >"$dbg/fail_page_alloc/ignore-gfp-highmem" || return 1
	fi
	for a in failslab fail_page_alloc; do
		echo "$prob" >"$dbg/$a/probability" || return 1
	done
	return 0
}

if ! inject off; then
	echo "ok 1 failinject # SKIP no failslab/fail_page_alloc, or sodp.ko's address is hidden"
	exit 0
fi

for dev in $devices; do
	echo "# ==== failinject on $dev (${prob}% of sodp's allocations fail)"
	if ! inject on; then
		inject off
		tap 1 "failinject.$dev.setup" "the stack-trace filter could not be set"
		continue
	fi
	SODP_DEVICE=$dev SODP_STALL_CMD="" timeout "${SODP_PROG_TIMEOUT:-900}" \
		"$dir/sodp_odp" "${cases[@]}" 2>&1 | sed 's/^/# /'
	rc=${PIPESTATUS[0]}
	inject off
	tap "$([ "$rc" != 124 ] && echo 0 || echo 1)" "failinject.$dev.no_hang"

	# Leases age out by themselves; give the cache its drain interval.
	held="" umems=""
	for _ in $(seq 50); do
		held=$(cat /sys/kernel/debug/sodp/pages_held 2>/dev/null)
		umems=$(cat /sys/kernel/debug/sodp/umems 2>/dev/null)
		[ "$held" = 0 ] && [ "$umems" = 0 ] && break
		sleep 0.2
	done
	tap "$([ "$held" = 0 ] && [ "$umems" = 0 ] && echo 0 || echo 1)" \
		"failinject.$dev.nothing_held" "pages_held $held, umems $umems"

	SODP_DEVICE=$dev timeout "${SODP_PROG_TIMEOUT:-900}" \
		"$dir/sodp_odp" "${cases[@]}" >"/tmp/failinject.$dev.log" 2>&1
	rc=$?
	[ "$rc" = 0 ] || sed 's/^/# /' "/tmp/failinject.$dev.log" | grep -E '^# (not ok|#)' | head -40
	tap "$rc" "failinject.$dev.recovers"
done
