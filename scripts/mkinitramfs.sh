#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the tiny initramfs that boots a guest into the host's root: static
# busybox plus the modules Debian builds as modules but the boot needs
# (9p over virtio and overlayfs). The modules are stored decompressed
# because busybox's insmod cannot read .ko.xz.
#
# Usage: mkinitramfs.sh [--built-in | --base DIR] KVER OUTPUT.cpio.gz
# --built-in: the kernel has them built in (the debug kernel); add none.
# --base DIR: take them from DIR/lib/modules/KVER, not the host's (a
# kernel scripts/upstream-kernel.sh fetched).

set -euo pipefail

mods="netfs 9pnet 9pnet_virtio 9p overlay"
modbase=/
case "$1" in
--built-in)	mods=""; shift ;;
--base)		modbase=$2; shift 2 ;;
esac
kver=$1
out=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/sodp-initramfs.XXXXXX")
trap 'rm -rf "$work"' EXIT

mkdir -p "$work"/{bin,dev,proc,sys,lower,rw,newroot,modules}
cp /bin/busybox "$work/bin/busybox"
for a in sh mount umount mkdir insmod switch_root sleep cat echo poweroff; do
	ln -s busybox "$work/bin/$a"
done

for m in $mods; do
	f=$(modinfo -b "$modbase" -k "$kver" -n "$m")
	case "$f" in
	*.xz)	xz -dc "$f" >"$work/modules/$m.ko" ;;
	*.zst)	zstd -qdc "$f" >"$work/modules/$m.ko" ;;
	*)	cp "$f" "$work/modules/$m.ko" ;;
	esac
done
echo "$mods" >"$work/modules/order"

cat >"$work/init" <<'INIT'
#!/bin/sh
# First stage: mount the host root read-only over 9p under a tmpfs overlay
# and continue in the second stage script, run by the host's bash.
fail() {
	echo "SODP-INITRAMFS-FAILED: $*"
	echo o >/proc/sysrq-trigger
	sleep 10
}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do
	insmod /modules/$m.ko || fail "insmod $m"
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose \
	hostroot /lower || fail "mount hostroot"
mount -t tmpfs -o mode=0755 tmpfs /rw || fail "mount tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay \
	-o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
	fail "mount overlay"
mount --move /dev /newroot/dev || fail "move /dev"
umount /sys
umount /proc
[ -n "$sodp_stage2" ] || fail "no sodp_stage2= on the kernel command line"
exec switch_root /newroot /bin/bash "$sodp_stage2"
INIT
chmod +x "$work/init"

(cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
