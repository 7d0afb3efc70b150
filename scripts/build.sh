#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build sodp.ko, rdma_rxe.ko and siw.ko (upstream 6.12 + our series) and the
# selftests, against Debian's 6.12 headers (or, with SODP_KERNEL=DIR, the
# debug kernel built there). Installs missing packages first.
# "stock" builds upstream siw.ko without our series into build/stock/, the
# stock peer of the interoperability test ("all" includes it); Debian's own
# rdma_rxe.ko is the stock rxe.
#
# Usage: build.sh [modules|selftests|stock|all] [extra kbuild args...]

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
SODP_CACHE=${SODP_CACHE:-/var/cache/sodp}
BUILD=${BUILD:-$top/build}
what=${1:-all}
shift || true

"$top/scripts/deps.sh"
kver=$(cat "$SODP_CACHE/kver")
ksrc=$(cat "$SODP_CACHE/ksrc")
kdir=/lib/modules/$kver/build
if [ -n "${SODP_KERNEL:-}" ]; then
	# Against the debug kernel scripts/debug-kernel.sh built.
	kver=$(cat "$SODP_KERNEL/kver")
	kdir=$SODP_KERNEL/build
fi
jobs=$(nproc)

if [ "$what" = modules ] || [ "$what" = all ]; then
	"$top/scripts/prepare-tree.sh" "$ksrc" "$BUILD/src"
	make -s -C "$kdir" M="$BUILD/src" CONFIG_RDMA_SIW=m -j"$jobs" "$@" modules
	mkdir -p "$BUILD/modules"
	for m in drivers/infiniband/sw/sodp/sodp.ko \
		 drivers/infiniband/sw/rxe/rdma_rxe.ko \
		 drivers/infiniband/sw/siw/siw.ko; do
		cp "$BUILD/src/$m" "$BUILD/modules/"
	done
	echo "$kver" >"$BUILD/modules/kver"
fi

if [ "$what" = stock ] || [ "$what" = all ]; then
	"$top/scripts/prepare-tree.sh" --stock "$ksrc" "$BUILD/stock/src"
	make -s -C "$kdir" M="$BUILD/stock/src" CONFIG_RDMA_SIW=m -j"$jobs" "$@" modules
	cp "$BUILD/stock/src/drivers/infiniband/sw/siw/siw.ko" "$BUILD/stock/"
	echo "$kver" >"$BUILD/stock/kver"
fi

if [ "$what" = selftests ] || [ "$what" = all ]; then
	mkdir -p "$BUILD/selftests"
	make -s -C "$top/tools/testing/selftests/sodp" KSRC="$ksrc" \
		OUTPUT="$BUILD/selftests"
	mkdir -p "$BUILD/tools"
	make -s -C "$top/tools/sodp" OUTPUT="$BUILD/tools"
fi
