#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# DKMS's MAKE step (dkms.conf), run in a copy of the DKMS source tree that
# scripts/dkms.sh staged: take upstream rxe and siw out of linux-source-6.12's
# tarball (the headers package has no driver sources), stage them with our
# files and series through scripts/prepare-tree.sh, and build the three
# modules into stage/ against the kernel DKMS builds for.
#
# Usage: dkms-build.sh KVER KDIR
# SODP_LINUX_SOURCE names another tarball (default
# /usr/src/linux-source-6.12.tar.xz).

set -euo pipefail

kver=$1
kdir=$2
top=$(cd "$(dirname "$0")/.." && pwd)
tarball=${SODP_LINUX_SOURCE:-/usr/src/linux-source-6.12.tar.xz}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sodp-dkms.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

[ -r "$tarball" ] || {
	echo "dkms-build: $tarball missing: apt-get install linux-source-6.12" >&2
	exit 1
}

# Only what the build needs: rxe, siw and the Makefile that names the
# release. xz still has to read the whole tarball once.
echo "dkms-build: extracting rxe and siw from $tarball"
tar -C "$tmp" -xf "$tarball" --wildcards \
	'linux-source-6.12/Makefile' \
	'linux-source-6.12/drivers/infiniband/sw/rxe/*' \
	'linux-source-6.12/drivers/infiniband/sw/siw/*'
ksrc=$tmp/linux-source-6.12

# A kernel update may come before its linux-source-6.12: the stable rxe and
# siw of one 6.12.y build against another's headers, but say so.
sub=$(sed -n 's/^SUBLEVEL = //p' "$ksrc/Makefile")
case "$kver" in
"6.12.$sub"|"6.12.$sub"[-+]*) ;;
*) echo "dkms-build: warning: rxe and siw from 6.12.$sub, kernel $kver;" \
	"install the matching linux-source-6.12 and rebuild" >&2 ;;
esac

"$top/scripts/prepare-tree.sh" "$ksrc" "$top/stage"
# Debian's 6.12 does not build siw; ask for it.
make -C "$kdir" M="$top/stage" CONFIG_RDMA_SIW=m -j"$(nproc)" modules
