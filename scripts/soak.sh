#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make soak: build, boot one guest with two fake NUMA nodes and run
# scripts/guest-soak.sh: a checksummed RDMA soak on rxe0 and siw0 at once
# for SODP_SOAK_SECS seconds (default 600). Exits non-zero on any
# mismatch, lost or duplicated completion, or guest failure.

set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${SODP_SOAK_SECS:-600}
"$top/scripts/build.sh" all
# Boot and setup take a few minutes under TCG; the soak's own timeout in
# the guest is secs + 120.
SODP_SOAK_SECS=$secs exec "$top/scripts/vm-run" --numa 2 --dimm 512 \
	--timeout $((secs + 900)) -- "$top/scripts/guest-soak.sh"
