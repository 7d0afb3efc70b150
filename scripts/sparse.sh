#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# sparse (C=2) over the whole staged build, reporting only warnings in our
# own files: the sodp core, include/ and the new files our series adds to
# rxe and siw. -Wno-bitwise because siw's iwarp.h __be32 bitfields make
# sparse stop reporting anything else (see ../shared/style.md).

set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
kver=$(cat "${SODP_CACHE:-/var/cache/sodp}/kver")
ours="drivers/infiniband/sw/sodp/|include/rdma/sodp"
for f in $(cd "$top" && git ls-files -co --exclude-standard \
		'drivers/infiniband/sw/rxe/*.[ch]' 'drivers/infiniband/sw/siw/*.[ch]'); do
	ours="$ours|$f"
done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
make -C "/lib/modules/$kver/build" M="$BUILD/src" CONFIG_RDMA_SIW=m C=2 \
	CF="-Wno-bitwise" -j"$(nproc)" modules >"$log" 2>&1 || { cat "$log"; exit 1; }
if grep -E "($ours)" "$log" | grep -E 'warning|error'; then
	exit 1
fi
exit 0
