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
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /dev/pts /dev/shm /dev/hugepages
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t hugetlbfs hugetlbfs /dev/hugepages 2>/dev/null
hostname sodp-guest
ip link set lo up

job=/sodp-job
mkdir -p $job
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 sodpjob $job; then
	echo "SODP-GUEST: cannot mount the job directory"
	echo o >/proc/sysrq-trigger
	sleep 30
fi

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
