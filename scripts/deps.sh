#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what sodp needs on a Debian 12 machine, idempotently, as root:
# the newest Linux 6.12 image, headers and source that apt offers (the same
# 6.12.y for all three), QEMU, busybox, rdma-core userspace and the checkers.
# Extracts the source tree once into the cache and records the version.
#
# Prints nothing but progress to stderr; writes $SODP_CACHE/kver
# (e.g. "6.12.117+deb12-amd64") and $SODP_CACHE/ksrc (the extracted tree).
#
# deps.sh --dkms [KVER] installs only what a DKMS build for kernel KVER
# (default: the running one) needs: dkms, linux-source-6.12 and KVER's
# headers (scripts/dkms.sh, on a machine that is not a build machine).
#
# deps.sh --bench installs only what make bench needs beyond the build:
# gnuplot-nox for the plots (scripts/bench.sh).

set -euo pipefail

SODP_CACHE=${SODP_CACHE:-/var/cache/sodp}
export DEBIAN_FRONTEND=noninteractive

log() { echo "deps: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	log "must run as root (apt-get install, module builds, QEMU)"
	exit 1
fi

TOOLS_PKGS="qemu-system-x86 busybox-static kmod xz-utils cpio iproute2
	rdma-core ibverbs-utils ibverbs-providers libibverbs-dev librdmacm-dev
	rdmacm-utils perftest python3-pyverbs xfsprogs e2fsprogs ndctl numactl
	libnuma-dev sparse coccinelle gcc make bc flex bison libelf-dev
	libssl-dev patch perl python3 dkms dmsetup"

apt_updated=0
apt_update() {
	if [ "$apt_updated" = 0 ]; then
		log "apt-get update"
		apt-get update -qq >&2
		apt_updated=1
	fi
}

# installed PKG: dpkg has PKG installed.
installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"
}

if [ "${1:-}" = --bench ]; then
	if ! installed gnuplot-nox; then
		log "installing: gnuplot-nox"
		apt_update
		apt-get install -y -qq --no-install-recommends gnuplot-nox >&2
	fi
	exit 0
fi

if [ "${1:-}" = --dkms ]; then
	missing=""
	for p in dkms linux-source-6.12 "linux-headers-${2:-$(uname -r)}" \
		 patch xz-utils; do
		installed "$p" || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		log "installing:$missing"
		apt_update
		# shellcheck disable=SC2086
		apt-get install -y -qq --no-install-recommends $missing >&2
	fi
	exit 0
fi

# The newest linux-source-6.12 that apt offers decides the version; the image
# and headers must be the same upstream version.
pick_version() {
	local cand
	cand=$(apt-cache policy linux-source-6.12 2>/dev/null |
		awk '/Candidate:/ { print $2 }')
	if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
		return 1
	fi
	echo "$cand"
}

srcver=$(pick_version) || { apt_update; srcver=$(pick_version); } || {
	log "apt offers no linux-source-6.12"
	exit 1
}
upver=${srcver%%-*}		# 6.12.117
abi=$(apt-cache search --names-only "^linux-image-${upver//./\\.}\\+deb[0-9]+-amd64\$" |
	awk '{ print $1 }' | sed 's/^linux-image-//' | sort -V | tail -n1)
if [ -z "$abi" ]; then
	apt_update
	abi=$(apt-cache search --names-only "^linux-image-${upver//./\\.}\\+deb[0-9]+-amd64\$" |
		awk '{ print $1 }' | sed 's/^linux-image-//' | sort -V | tail -n1)
fi
if [ -z "$abi" ]; then
	log "apt offers linux-source-6.12 $srcver but no matching amd64 image"
	exit 1
fi

KPKGS="linux-image-$abi linux-headers-$abi linux-source-6.12=$srcver"

missing=""
for p in $TOOLS_PKGS linux-image-$abi linux-headers-$abi; do
	installed "$p" || missing="$missing $p"
done
if [ "$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null)" != "$srcver" ]; then
	missing="$missing linux-source-6.12"
fi

if [ -n "$missing" ]; then
	log "installing:$missing"
	apt_update
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $TOOLS_PKGS $KPKGS >&2
fi

mkdir -p "$SODP_CACHE"
ksrc="$SODP_CACHE/linux-source-$upver"
if [ ! -f "$ksrc/.sodp-extracted" ]; then
	log "extracting /usr/src/linux-source-6.12.tar.xz into $ksrc"
	rm -rf "$ksrc" "$SODP_CACHE/linux-source-6.12"
	tar -C "$SODP_CACHE" -xf /usr/src/linux-source-6.12.tar.xz
	mv "$SODP_CACHE/linux-source-6.12" "$ksrc"
	sub=$(sed -n 's/^SUBLEVEL = //p' "$ksrc/Makefile")
	if [ "6.12.$sub" != "$upver" ]; then
		log "source tree is 6.12.$sub, expected $upver"
		exit 1
	fi
	touch "$ksrc/.sodp-extracted"
fi

echo "$abi" >"$SODP_CACHE/kver"
echo "$ksrc" >"$SODP_CACHE/ksrc"
log "kernel $abi, source $ksrc"
