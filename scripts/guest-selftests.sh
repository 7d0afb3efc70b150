#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a guest after guest-setup: every sodp selftest program once per
# device (rxe0, siw0), TAP on stdout, then rdma-core's tools (pingpong,
# perftest) on ODP memory, a smoke run of make bench's pipeline and rping
# on plain MRs under sodp.pin_mode=all, then the module-unload check (our
# modules must unload with every device removed: no MR, notifier or page
# reference left behind).
#
# SODP_TESTS limits the programs (space-separated names), SODP_DEVICES the
# devices; arguments are passed to every program (kselftest harness
# options, e.g. -t case_name); SODP_PROG_TIMEOUT bounds one program run
# (default 900 s). sodp_memhp needs hot-pluggable memory, so it runs only
# where named (check.sh boots a guest with a DIMM for it);
# SODP_PROGS_ONLY=1 runs only the programs and the module-unload check.
# Without arguments sodp_fs runs only the cases in SODP_FS_CASES (its
# whole matrix takes about 15 minutes per device); SODP_FS_CASES=all runs
# every case.

set -u
dir=${SODP_SELFTESTS:-$SODP_TOP/build/selftests}
devices=${SODP_DEVICES:-rxe0 siw0}
progs=${SODP_TESTS:-$(cd "$dir" && ls sodp_* 2>/dev/null | grep -v '\.' |
	grep -vx sodp_memhp)}

# sodp_fs in make check: every FS-DAX layout operation on ext4, the
# zero-range, reflink and writeback ones on xfs, one case for each other
# MR kind, page-cache writeback and a MAP_PRIVATE mapping (about two
# minutes per device under TCG).
fs_cases=${SODP_FS_CASES:-"
	fs.ext4_dax_odp.truncate fs.ext4_dax_odp.punch_hole
	fs.ext4_dax_odp.zero_range fs.ext4_dax_odp.collapse_range
	fs.ext4_dax_odp.insert_range
	fs.xfs_dax_odp.zero_range fs.xfs_dax_odp.clone_range
	fs.xfs_dax_odp.writeback
	fs.xfs_dax_plain.truncate fs.xfs_dax_implicit.collapse_range
	fs.ext4_odp.writeback fs.xfs_implicit.map_private"}

# The harness options a program runs with: "$@", or sodp_fs's subset.
prog_args() {
	local c

	args=("${@:2}")
	[ "$1" = sodp_fs ] && [ $# = 1 ] && [ "$fs_cases" != all ] || return 0
	for c in $fs_cases; do
		args+=(-r "$c")
	done
}

# A completion that never comes: show the sockets, QPs and sodp state.
export SODP_STALL_CMD=${SODP_STALL_CMD-$SODP_TOP/scripts/guest-stall-dump.sh}

if [ -z "$progs" ]; then
	echo "not ok 1 selftests # no programs in $dir"
	exit 1
fi

for dev in $devices; do
	for p in $progs; do
		echo "# ==== $p on $dev"
		prog_args "$p" "$@"
		SODP_DEVICE=$dev timeout "${SODP_PROG_TIMEOUT:-900}" "$dir/$p" \
			"${args[@]}"
		rc=$?
		[ $rc = 124 ] && echo "not ok 999 $p.$dev # timed out"
	done
done

# The tools, the load line and the soak smoke (not with SODP_PROGS_ONLY=1).
tools() {
	echo "# ==== rdma-core tools on ODP memory"
	"$SODP_TOP/scripts/guest-perftest.sh"

	echo "# ==== make bench smoke run (one case, one round, data verified)"
	"$SODP_TOP/scripts/guest-bench-smoke.sh"

	echo "# ==== rping on plain MRs served by sodp (pin_mode=all)"
	"$SODP_TOP/scripts/guest-rping.sh"

	echo "# ==== sodp load line"
	# The latest load (a test may have reloaded sodp) names the version that
	# modinfo and /sys/module/sodp/version report.
	line=$(dmesg | grep 'sodp: version [^ ]*, pin_mode ' | tail -n 1)
	ver=$(cat /sys/module/sodp/version 2>/dev/null)
	got=${line##*sodp: version }
	got=${got%%,*}
	if [ -n "$ver" ] && [ "$ver" != unknown ] && [ "$got" = "$ver" ]; then
		echo "ok 1 module.load_line"
	else
		echo "# load line '${line}', /sys/module/sodp/version '$ver'"
		echo "not ok 1 module.load_line"
	fi

	echo "# ==== soak smoke (sodp_soak, all devices at once, pin_mode=all)"
	SODP_SOAK_SECS=${SODP_SOAK_SMOKE_SECS:-20} SODP_SOAK_SELFCHECK=1 \
		"$SODP_TOP/scripts/guest-soak.sh"
}

[ "${SODP_PROGS_ONLY:-0}" = 1 ] || tools

echo "# ==== module unload"
rdma link delete rxe0 2>/dev/null
rdma link delete siw0 2>/dev/null
if rmmod siw && rmmod rdma_rxe && rmmod sodp; then
	echo "ok 1 teardown.modules_unload"
else
	echo "not ok 1 teardown.modules_unload"
	lsmod | grep -E 'sodp|rxe|siw'
fi
