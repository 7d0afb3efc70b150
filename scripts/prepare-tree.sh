#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Stage the module build tree: upstream rxe and siw from the extracted
# linux-source-6.12 tree, our own files (Kbuild, include/, drivers/) and the
# patch series of each driver applied in order.
#
# Usage: prepare-tree.sh [--stock] KSRC OUTDIR
#
# --stock stages upstream siw alone, unpatched, under a Kbuild of its own:
# the stock peer of the interoperability test (Debian ships no siw.ko).
#
# OUTDIR keeps its object files between runs: a file is only rewritten when
# its content changed, so kbuild rebuilds what the series or our files touch.
# A patch that does not apply fails with its name.

set -euo pipefail

stock=0
if [ "${1:-}" = --stock ]; then
	stock=1
	shift
fi
ksrc=$1
out=$2
top=$(cd "$(dirname "$0")/.." && pwd)
stage=$(mktemp -d "${TMPDIR:-/tmp}/sodp-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT

die() { echo "prepare-tree: $*" >&2; exit 1; }

# Copy into OUTDIR only what changed, so kbuild's timestamps stay useful.
sync_out() {
	mkdir -p "$out"
	(cd "$stage" && find . -type f ! -name '.patch.log') | while read -r f; do
		if ! cmp -s "$stage/$f" "$out/$f"; then
			mkdir -p "$out/$(dirname "$f")"
			cp "$stage/$f" "$out/$f"
		fi
	done
}

[ -d "$ksrc/drivers/infiniband/sw/rxe" ] || die "no upstream tree at $ksrc"

if [ "$stock" = 1 ]; then
	d=drivers/infiniband/sw/siw
	mkdir -p "$stage/$d"
	cp "$ksrc/$d"/* "$stage/$d/"
	echo "obj-m += $d/" >"$stage/Kbuild"
	sync_out
	exit 0
fi

for drv in rxe siw; do
	d=drivers/infiniband/sw/$drv
	mkdir -p "$stage/$d"
	cp "$ksrc/$d"/* "$stage/$d/"
	# Our new files join the upstream ones; never shadow an upstream file.
	for f in "$top/$d"/*; do
		[ -f "$f" ] || continue
		n=$(basename "$f")
		[ ! -e "$stage/$d/$n" ] ||
			die "$d/$n has the name of an upstream file; change it through a patch"
		cp "$f" "$stage/$d/"
	done
done

cp "$top/Kbuild" "$stage/"
cp -r "$top/include" "$stage/"
mkdir -p "$stage/drivers/infiniband/sw/sodp"
cp "$top/drivers/infiniband/sw/sodp"/* "$stage/drivers/infiniband/sw/sodp/"

for drv in rxe siw; do
	pdir=$top/drivers/infiniband/sw/$drv/patches
	[ -f "$pdir/series" ] || continue
	while read -r p _; do
		case "$p" in ''|'#'*) continue ;; esac
		[ -f "$pdir/$p" ] || die "$drv: series names $p, which does not exist"
		if ! patch -p1 -d "$stage" --batch --forward --quiet \
			--no-backup-if-mismatch -r - <"$pdir/$p" >"$stage/.patch.log" 2>&1; then
			cat "$stage/.patch.log" >&2
			die "$drv: patch $p does not apply"
		fi
	done <"$pdir/series"
done

sync_out
