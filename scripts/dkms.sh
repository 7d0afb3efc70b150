#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Register sodp.ko and the patched rdma_rxe.ko and siw.ko with Debian's DKMS
# for a 6.12 kernel, so that a kernel update rebuilds them (dkms.conf,
# scripts/dkms-build.sh). As root.
#
# Usage: dkms.sh stage DIR        the DKMS source tree as DIR/sodp-VERSION
#        dkms.sh build [KVER]     stage into the source tree, dkms add, build
#        dkms.sh install [KVER]   build, then dkms install (make dkms-install)
#        dkms.sh uninstall        dkms remove every sodp version, unstage
#                                 (make dkms-uninstall)
#
# KVER defaults to the running kernel. VERSION is git describe's, as the
# modules report it. Installs dkms, linux-source-6.12 and the kernel's
# headers if missing (scripts/deps.sh --dkms).
#
# SODP_DKMS_ROOT=DIR keeps the source tree (DIR/src), the DKMS tree
# (DIR/tree) and the signing key there instead of /usr/src and
# /var/lib/dkms: the test builds on the host into it and installs in a
# guest. SODP_DKMS_PREBUILT=1 makes install fail rather than build.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
kver=${2:-$(uname -r)}

die() { echo "dkms.sh: $*" >&2; exit 1; }

srctree=/usr/src
dkms=(dkms)
if [ -n "${SODP_DKMS_ROOT:-}" ]; then
	mkdir -p "$SODP_DKMS_ROOT/src" "$SODP_DKMS_ROOT/tree"
	root=$(cd "$SODP_DKMS_ROOT" && pwd)
	srctree=$root/src
	dkms=(dkms --sourcetree "$srctree" --dkmstree "$root/tree")
	export mok_signing_key=$root/mok.key mok_certificate=$root/mok.pub
fi

version() {
	if [ -f "$top/sodp-version" ]; then
		cat "$top/sodp-version"
	else
		git -C "$top" describe --always --dirty 2>/dev/null || echo 0
	fi
}

# stage DIR: what the DKMS build needs, and nothing of the repo else.
stage() {
	local d=$1/sodp-$ver

	rm -rf "$d"
	mkdir -p "$d/scripts"
	cp -r "$top/Kbuild" "$top/include" "$top/drivers" "$d/"
	cp "$top/scripts/prepare-tree.sh" "$top/scripts/dkms-build.sh" "$d/scripts/"
	echo "$ver" >"$d/sodp-version"
	sed "s/@VERSION@/$ver/" "$top/dkms.conf" >"$d/dkms.conf"
}

# The versions of sodp DKMS knows, one a line.
registered() {
	"${dkms[@]}" status -m sodp 2>/dev/null |
		sed -n 's/^sodp[/, ]\([^,:]*\)[,:].*/\1/p' | sort -u
}

# register: sodp/$ver added from a current source tree, every other version
# removed. A source tree that is still the same keeps its builds.
register() {
	local v new

	for v in $(registered); do
		[ "$v" = "$ver" ] && continue
		echo "dkms.sh: removing sodp/$v"
		"${dkms[@]}" remove -m sodp -v "$v" --all
		rm -rf "${srctree:?}/sodp-$v"
	done
	new=$(mktemp -d "${TMPDIR:-/tmp}/sodp-dkms-src.XXXXXX")
	stage "$new"
	if registered | grep -q -x -F "$ver" &&
	   diff -r -q "$new/sodp-$ver" "$srctree/sodp-$ver" >/dev/null 2>&1; then
		rm -rf "$new"
		return 0
	fi
	if registered | grep -q -x -F "$ver"; then
		"${dkms[@]}" remove -m sodp -v "$ver" --all
	fi
	rm -rf "${srctree:?}/sodp-$ver"
	mv "$new/sodp-$ver" "$srctree/"
	rmdir "$new"
	"${dkms[@]}" add -m sodp -v "$ver"
}

# prepare: the packages, and sodp/$ver registered for a 6.12 kernel.
prepare() {
	[ "$(id -u)" = 0 ] || die "must run as root"
	case "$kver" in 6.12.*) ;; *) die "kernel $kver is not a 6.12" ;; esac
	"$top/scripts/deps.sh" --dkms "$kver"
	register
}

# built: sodp/$ver is built (or installed) for $kver.
built() {
	"${dkms[@]}" status -m sodp -v "$ver" -k "$kver" 2>/dev/null |
		grep -q -E ': (built|installed)'
}

ver=$(version)
case "$cmd" in
stage)
	[ -n "${2:-}" ] || die "stage needs a directory"
	mkdir -p "$2"
	stage "$2"
	;;
build)
	prepare
	built || "${dkms[@]}" build -m sodp -v "$ver" -k "$kver"
	;;
install)
	prepare
	if [ -n "${SODP_DKMS_PREBUILT:-}" ] && ! built; then
		die "sodp/$ver is not built for $kver (SODP_DKMS_PREBUILT)"
	fi
	# Builds first unless built.
	"${dkms[@]}" install -m sodp -v "$ver" -k "$kver"
	for m in sodp rdma_rxe siw; do
		echo "dkms.sh: $m: $(modinfo -k "$kver" -n "$m")"
	done
	;;
uninstall)
	[ "$(id -u)" = 0 ] || die "must run as root"
	command -v dkms >/dev/null || die "dkms is not installed"
	for v in $(registered); do
		"${dkms[@]}" remove -m sodp -v "$v" --all
		rm -rf "${srctree:?}/sodp-$v"
	done
	;;
*)
	sed -n '/^# Usage/,/^$/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
