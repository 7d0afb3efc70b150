#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Kernel checkers on our own code: checkpatch --strict and kernel-doc on
# every C file and header we wrote (the sodp core, our new rxe/siw files,
# include/), checkpatch --strict on every patch of the series. Upstream
# files are not ours and are not checked.
#
# Prints "PASS: <what>" or "FAIL: <what>" per check (details after a
# failure); exits non-zero if any failed.

set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
SODP_CACHE=${SODP_CACHE:-/var/cache/sodp}
ksrc=$(cat "$SODP_CACHE/ksrc")
cp="perl $ksrc/scripts/checkpatch.pl --no-tree --strict --quiet --show-types"
cp="$cp --ignore FILE_PATH_CHANGES"
kd="perl $ksrc/scripts/kernel-doc -none -Wall"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
failed=0

report() {
	local what=$1 status=$2
	if [ "$status" = 0 ] && [ ! -s "$out" ]; then
		echo "PASS: $what"
	else
		echo "FAIL: $what"
		sed 's/^/    /' "$out"
		failed=1
	fi
}

cd "$top" || exit 1
# Kernel code: checkpatch --strict and kernel-doc (warnings count).
for f in $(git ls-files -co --exclude-standard 'drivers/*.c' 'drivers/*.h' 'include/*.h'); do
	$cp -f "$f" >"$out" 2>&1
	report "checkpatch $f" $?
	$kd "$f" >"$out" 2>&1
	report "kernel-doc $f" $?
done
# Selftests and the tools beside them (bench, stress, demo): kernel style too (they are C in the kernel tree). checkpatch
# reads the harness's "FIXTURE_DATA(name) *self" as a multiplication
# (SPACING false positive), so that one type is not checked there.
for f in $(git ls-files -co --exclude-standard 'tools/testing/selftests/sodp/*.[ch]' \
		'tools/sodp/*.[ch]'); do
	$cp --ignore SPACING -f "$f" >"$out" 2>&1
	report "checkpatch $f" $?
done
# The series: each patch as it would be posted.
for drv in rxe siw; do
	s=drivers/infiniband/sw/$drv/patches/series
	[ -f "$s" ] || continue
	while read -r p _; do
		case "$p" in ''|'#'*) continue ;; esac
		# On stdin: given a path inside this tree, checkpatch
		# checks the .patch file as if it were source.
		$cp - <"drivers/infiniband/sw/$drv/patches/$p" >"$out" 2>&1
		report "checkpatch $drv/patches/$p" $?
	done <"$s"
done
exit $failed
