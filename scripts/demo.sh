#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make demo: build our modules, the stock siw and the tools, boot one guest
# with FS-DAX and two NUMA nodes and run scripts/guest-demo.sh: sodp's ODP
# and FS-DAX MRs on rxe0 and siw0 under truncation, hole punching and page
# migration, then the stock drivers refusing the same, and a summary.

set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/build.sh" all
exec "$top/scripts/vm-run" -q --pmem --numa 2 --timeout 600 -- \
	"$top/scripts/guest-demo.sh"
