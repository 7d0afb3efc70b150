#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: build, kernel checkers on our code and series, sparse on our
# code, then the selftests on rxe0 and siw0 inside a guest (with an FS-DAX
# pmem region), memory hot-unplug in a guest with a hot-pluggable DIMM, a DKMS
# install/remove in a guest (scripts/guest-dkms.sh),
# then rdma-core's tools between two guests, one with our modules and one
# with the stock drivers. Ends with "N passed, N failed[, N
# skipped]" and exits non-zero on any failure. Logs go to build/check/.

set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
logs=$BUILD/check
# shellcheck source=scripts/check-lib.sh
source "$top/scripts/check-lib.sh"

start=$(date +%s)
mkdir -p "$BUILD"
rm -rf "$logs"
mkdir -p "$logs"

echo "== build"
if "$top/scripts/build.sh" all >"$logs/build.log" 2>&1; then
	pass
else
	cat "$logs/build.log"
	fail "build"
	finish
fi

echo "== checkpatch --strict / kernel-doc"
"$top/scripts/lint.sh" >"$logs/lint.log" 2>&1
p=$(grep -c '^PASS:' "$logs/lint.log")
f=$(grep -c '^FAIL:' "$logs/lint.log")
passed=$((passed + p))
failed=$((failed + f))
echo "$p passed, $f failed"
[ "$f" = 0 ] || sed -n '/^FAIL:/,/^PASS:/p' "$logs/lint.log" | grep -v '^PASS:'

echo "== sparse (C=2) on our code"
"$top/scripts/sparse.sh" >"$logs/sparse.log" 2>&1
if [ $? = 0 ]; then
	pass
	echo "clean"
else
	cat "$logs/sparse.log"
	fail "sparse"
fi

echo "== selftests in a guest (rxe0, siw0)"
"$top/scripts/vm-run" -q --pmem --numa 2 --timeout 2400 --share "$logs/guest" -- \
	"$top/scripts/guest-selftests.sh" >"$logs/selftests.log" 2>&1
count_tap "$logs/guest/output" "$logs/selftests.log" $? "guest run"

# Memory hot-unplug: a 512 MiB hot-pluggable DIMM that the kernel leaves
# offline (vm-run --dimm), so each case onlines an empty block to
# ZONE_MOVABLE for its MR (boot memory's movable blocks hold memblock
# reservations and every process's pages). Its own guest, programs only.
echo "== memory hot-unplug in a guest with a hot-pluggable DIMM (rxe0, siw0)"
SODP_TESTS=sodp_memhp SODP_PROGS_ONLY=1 "$top/scripts/vm-run" -q --dimm 512 \
	--timeout 900 --share "$logs/memhp" -- \
	"$top/scripts/guest-selftests.sh" >"$logs/memhp.log" 2>&1
count_tap "$logs/memhp/output" "$logs/memhp.log" $? "memhp run"

# DKMS builds on the host (a TCG guest would take far longer: README
# "DKMS"), into trees under build/, never /var/lib/dkms; the guest installs
# from them, loads the modules through modprobe, runs traffic and removes.
echo "== DKMS install, load, ODP traffic and remove in a guest (rxe0, siw0)"
dk=$BUILD/dkms
rm -rf "$dk"
t=$(date +%s)
if SODP_DKMS_ROOT=$dk "$top/scripts/dkms.sh" build "$(cat "${SODP_CACHE:-/var/cache/sodp}/kver")" \
	>"$logs/dkms-build.log" 2>&1; then
	pass
	echo "dkms build on the host: $(( $(date +%s) - t )) s"
	SODP_DKMS_ROOT=$dk "$top/scripts/vm-run" -q --no-setup --timeout 900 \
		--share "$logs/dkms" -- "$top/scripts/guest-dkms.sh" >"$logs/dkms.log" 2>&1
	count_tap "$logs/dkms/output" "$logs/dkms.log" $? "dkms run"
else
	tail -n 40 "$logs/dkms-build.log"
	fail "dkms build"
fi

# Node 0 runs our modules, node 1 the stock ones, and prints the TAP.
echo "== interoperability with a stock peer (two guests: rxe0, siw0)"
SODP_STOCK_NODE=1 "$top/scripts/vm-run" -q --two -m 2G --timeout 1800 \
	--share "$logs/interop" -- "$top/scripts/guest-interop.sh" \
	>"$logs/interop.log" 2>&1
count_tap "$logs/interop/node0/output" "$logs/interop.log" $? "interop run"

echo "== done in $(( $(date +%s) - start )) s; logs in $logs"
finish
