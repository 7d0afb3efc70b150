#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Second stage of a sodp guest, run by the host's bash inside the guest
# (the root is the host's, read-only over 9p with a tmpfs overlay).
# Mounts the job directory, runs its command, stores the exit status and
# the kernel log there, and powers the guest off.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
# The debug kernel's modules live in its cache directory, not in /lib.
kdir=$(sed -n 's/.*sodp_kdir=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$kdir" ] && [ ! -d "/lib/modules/$(uname -r)" ]; then
	mkdir -p "/lib/modules/$(uname -r)"
	mount --bind "$kdir/lib/modules/$(uname -r)" "/lib/modules/$(uname -r)"
fi
job=/sodp-job
mkdir -p $job
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 sodpjob $job; then
	echo "SODP-GUEST: cannot mount the job directory"
	echo o >/proc/sysrq-trigger
	sleep 30
fi
# The guest gets a fresh /tmp. A checkout (or working directory) under the
# host's /tmp would vanish under it: keep the host's view of those two.
top=$(cd "$(dirname "$0")/.." && pwd)
cwd=$(cat $job/cwd 2>/dev/null)
keep=""
for d in "$top" "$cwd"; do
	case "$d/" in /tmp/*) keep="$keep $d" ;; esac
done
if [ -n "$keep" ]; then
	mkdir -p /run/sodp-host-tmp
	mount --bind /tmp /run/sodp-host-tmp
fi
mount -t tmpfs tmpfs /tmp
for d in $keep; do
	mkdir -p "$d"
	mount --bind "/run/sodp-host-tmp/${d#/tmp/}" "$d"
done
# What udev would add: bash's <(...) and dkms need /dev/fd.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
mkdir -p /dev/pts /dev/shm /dev/hugepages
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t hugetlbfs hugetlbfs /dev/hugepages 2>/dev/null
hostname sodp-guest
ip link set lo up


# The runner retries a guest that never got here.
echo started >$job/started
echo "SODP-GUEST: command starting"

cd "$(cat $job/cwd)" || cd /
bash $job/cmd
rc=$?

dmesg >$job/dmesg 2>&1
echo $rc >$job/rc
sync
echo "SODP-GUEST: command exited with status $rc"
echo o >/proc/sysrq-trigger
sleep 30
