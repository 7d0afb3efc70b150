#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run every sodp selftest program once per RDMA device, with SODP_DEVICE
# naming the device. Exits 4 (skip) without root or without a device.
#
# Environment:
#   SODP_DEVICES   devices to test (default: all in /sys/class/infiniband)
#   SODP_PROGS     programs to run (default: every executable sodp_* here)
#   SODP_BIN_DIR   where the programs are (default: this script's directory)
#   SODP_ADDR, SODP_TIMEOUT_MS, SODP_DAX_DIR, SODP_EXT4_DIR, SODP_TMPFS_DIR
#                  are passed through to the programs.

ksft_skip=4

dir=$(dirname "$(readlink -f "$0")")
bindir=${SODP_BIN_DIR:-$dir}

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: $0 must be run as root"
	exit $ksft_skip
fi

devices=${SODP_DEVICES:-}
if [ -z "$devices" ]; then
	for d in /sys/class/infiniband/*; do
		[ -e "$d" ] && devices="$devices ${d##*/}"
	done
fi
if [ -z "$devices" ]; then
	echo "SKIP: no RDMA device (load rdma_rxe/siw and add a link)"
	exit $ksft_skip
fi

progs=${SODP_PROGS:-}
if [ -z "$progs" ]; then
	for p in "$bindir"/sodp_*; do
		[ -f "$p" ] && [ -x "$p" ] && progs="$progs ${p##*/}"
	done
fi
if [ -z "$progs" ]; then
	echo "FAIL: no sodp test programs in $bindir"
	exit 1
fi

pass=0
fail=0
skip=0
for dev in $devices; do
	for prog in $progs; do
		echo "# === $prog on $dev ==="
		SODP_DEVICE=$dev "$bindir/$prog"
		rc=$?
		case $rc in
		0) pass=$((pass + 1)) ;;
		"$ksft_skip") skip=$((skip + 1)) ;;
		*)
			echo "# $prog on $dev: exit $rc"
			fail=$((fail + 1))
			;;
		esac
	done
done

echo "# sodp: $pass passed, $fail failed, $skip skipped (program runs)"
[ $fail -gt 0 ] && exit 1
[ $pass -gt 0 ] && exit 0
exit $ksft_skip
