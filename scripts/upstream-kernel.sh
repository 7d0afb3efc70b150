#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Fetch the newest Debian kernel from trixie-backports, whose stock rdma_rxe
# has upstream's own ODP, for guests to boot beside sodp (bench, interop).
# Nothing is installed on this machine: a private sources list and lists
# directory under the cache, apt-get download, dpkg-deb -x, depmod -b.
#
# Prints the kernel directory on stdout, ready for SODP_KERNEL=DIR with
# scripts/vm-run: bzImage, kver, lib/modules/<kver> (modules.dep made) and
# a "modular" marker (vm-run then builds the initramfs from these modules).
# Progress goes to stderr. SODP_UPSTREAM_SUITE (default trixie-backports)
# and SODP_UPSTREAM_MIRROR (default http://deb.debian.org/debian) override
# where it comes from.

set -euo pipefail

SODP_CACHE=${SODP_CACHE:-/var/cache/sodp}
suite=${SODP_UPSTREAM_SUITE:-trixie-backports}
mirror=${SODP_UPSTREAM_MIRROR:-http://deb.debian.org/debian}
base=$SODP_CACHE/upstream
apt=$base/apt-$suite

log() { echo "upstream-kernel: $*" >&2; }

mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" \
	>"$apt/sources.list"
aptopts=(-o "Dir::Etc::SourceList=$apt/sources.list"
	 -o Dir::Etc::SourceParts=/dev/null
	 -o "Dir::State::Lists=$apt/lists"
	 -o "Dir::Cache=$apt/cache"
	 -o APT::Sandbox::User=root)

# The lists once a day: the suite moves, but not by the hour.
if [ -z "$(find "$apt/lists" -maxdepth 1 -name '*Packages*' -mtime -1)" ]; then
	log "apt-get update ($suite)"
	apt-get "${aptopts[@]}" update -qq >&2
fi

# The metapackage names the current image package, e.g.
# linux-image-7.3.4+deb13-amd64.
img=$(apt-cache "${aptopts[@]}" depends linux-image-amd64 2>/dev/null |
	sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1)
[ -n "$img" ] || { log "no linux-image-amd64 in $suite"; exit 1; }
kver=${img#linux-image-}
dir=$base/$kver
if [ -f "$dir/done" ]; then
	echo "$dir"
	exit 0
fi

# The image package may be split into base/binary/modules packages;
# take every linux-*-$kver it depends on, and the image itself.
pkgs="$img $(apt-cache "${aptopts[@]}" depends "$img" 2>/dev/null |
	sed -n "s/^ *Depends: \(linux-[a-z]*-$kver\)\$/\1/p" | sort -u | tr '\n' ' ')"
log "downloading $pkgs"
rm -rf "$dir"
mkdir -p "$dir/debs" "$dir/root"
# shellcheck disable=SC2086
(cd "$dir/debs" && apt-get "${aptopts[@]}" download $pkgs >&2)
for deb in "$dir"/debs/*.deb; do
	dpkg-deb -x "$deb" "$dir/root"
done

# Trixie keeps modules (and the kernel) in /usr/lib/modules, older
# releases in /lib/modules and /boot.
mods=$dir/root/usr/lib/modules/$kver
[ -d "$mods" ] || mods=$dir/root/lib/modules/$kver
[ -d "$mods" ] || { log "no modules for $kver in $pkgs"; exit 1; }
mkdir -p "$dir/lib/modules"
mv "$mods" "$dir/lib/modules/$kver"
if [ -f "$dir/lib/modules/$kver/vmlinuz" ]; then
	mv "$dir/lib/modules/$kver/vmlinuz" "$dir/bzImage"
else
	mv "$dir/root/boot/vmlinuz-$kver" "$dir/bzImage"
fi
depmod -b "$dir" "$kver"
rm -rf "$dir/root" "$dir/debs"
echo "$kver" >"$dir/kver"
: >"$dir/modular"
: >"$dir/done"
log "$kver in $dir"
echo "$dir"
