#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the sodp debug kernel (KASAN, lockdep, DEBUG_VM, kmemleak, fault
# injection) from the same linux-source-6.12 the normal build uses, with
# scripts/debug/sodp-debug.config merged over allnoconfig and
# kvm_guest.config. The result is cached outside the repo, keyed by the
# source version and the hash of the fragment and this script:
#
#   $SODP_CACHE/debug-kernel/<version>-<hash>/
#       bzImage  kver  build/ (O= tree for M= builds)  lib/modules/<kver>/
#
# Prints the directory on stdout; progress goes to stderr and to
# <dir>.log. Builds at the lowest CPU priority.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
SODP_CACHE=${SODP_CACHE:-/var/cache/sodp}
"$top/scripts/deps.sh" >&2
ksrc=$(cat "$SODP_CACHE/ksrc")
frag=$top/scripts/debug/sodp-debug.config
ver=$(make -s -C "$ksrc" kernelversion)
hash=$(cat "$frag" "$0" | md5sum | cut -c1-10)
out=$SODP_CACHE/debug-kernel/$ver-$hash
log=$out.log

if [ -f "$out/done" ]; then
	echo "$out"
	exit 0
fi

# Each missing build tool is a Debian package; install what is missing.
need=""
for p in bc bison flex libelf-dev libssl-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		need="$need $p"
done
if [ -n "$need" ]; then
	echo "debug-kernel: installing$need" >&2
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >&2
fi

echo "debug-kernel: building $ver ($hash) in $out (log: $log)" >&2
# The tree of an earlier fragment of the same version is built upon:
# kbuild rebuilds only what the changed options touch.
rm -rf "$out"
mkdir -p "$SODP_CACHE/debug-kernel"
old=$(find "$SODP_CACHE/debug-kernel" -mindepth 2 -maxdepth 2 -name build \
	-path "*/$ver-*" 2>/dev/null | head -n1)
if [ -n "$old" ]; then
	mkdir -p "$out"
	mv "$old" "$out/build"
	rm -f "$out/build/.config"
fi
rm -rf "$SODP_CACHE/debug-kernel/$ver-"*.log
find "$SODP_CACHE/debug-kernel" -mindepth 1 -maxdepth 1 -name "$ver-*" \
	! -path "$out" -exec rm -rf {} +
mkdir -p "$out/build"
kmake() {
	nice -n 19 make -C "$ksrc" O="$out/build" -j"$(nproc)" "$@"
}
{
	kmake allnoconfig
	(cd "$out/build" && "$ksrc/scripts/kconfig/merge_config.sh" -m \
		.config "$ksrc/kernel/configs/kvm_guest.config" "$frag")
	kmake olddefconfig
} >"$log" 2>&1 || { echo "debug-kernel: configuration failed, see $log" >&2; exit 1; }

# Every option the fragment asks for must have survived olddefconfig.
missing=$(grep -E '^CONFIG_[A-Z0-9_]+=' "$frag" | while IFS= read -r line; do
	opt=${line%%=*} val=${line#*=}
	if [ "$val" = n ]; then
		grep -qx "$opt=[ym]" "$out/build/.config" && echo "$opt (wanted n)"
	else
		grep -qxF "$line" "$out/build/.config" || echo "$opt"
	fi
done || true)
if [ -n "$missing" ]; then
	echo "debug-kernel: options the fragment asks for are not set:" $missing >&2
	exit 1
fi

kmake bzImage modules >>"$log" 2>&1 ||
	{ echo "debug-kernel: build failed, see $log" >&2; tail -20 "$log" >&2; exit 1; }
kmake INSTALL_MOD_PATH="$out" INSTALL_MOD_STRIP=1 modules_install >>"$log" 2>&1
cp "$out/build/arch/x86/boot/bzImage" "$out/bzImage"
cat "$out/build/include/config/kernel.release" >"$out/kver"
touch "$out/done"
echo "debug-kernel: done, $(cat "$out/kver")" >&2
echo "$out"
