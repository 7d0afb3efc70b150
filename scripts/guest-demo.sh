#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The demo, run inside a guest after guest-setup (vm-run --pmem --numa 2):
#  1. with our sodp, rxe and siw and sodp.pin_mode=auto, sodp_demo on rxe0
#     and siw0: RDMA WRITEs with READ-back verification into an ODP MR and
#     a plain MR over a FS-DAX file while it is truncated and hole-punched,
#     and into an anonymous ODP MR while its pages migrate between NUMA
#     nodes; then a short ib_write_bw per device;
#  2. the stock drivers (Debian's rdma_rxe, unpatched siw.ko from
#     build.sh stock) in place of ours, rxe0 and siw0 re-created: ODP MR
#     and plain MR on FS-DAX must be refused with EOPNOTSUPP;
#  3. a short summary. Exit status non-zero if anything went wrong.
# SODP_DEMO_SECS (default 8) is the length of each device's stream.

set -u
log=$(mktemp -d)
bin=${SODP_TOOLS:-$SODP_TOP/build/tools}
secs=${SODP_DEMO_SECS:-8}
fail=0
declare -A bw

# shellcheck source=scripts/guest-lib.sh
. "$SODP_TOP/scripts/guest-lib.sh"

# write_bw DEV ADDR OPTS: a 2 s 64 KiB ib_write_bw loopback; sets bw[DEV].
write_bw() {
	local dev=$1 addr=$2 opts=$3 spid rc src
	# shellcheck disable=SC2086
	ib_write_bw -d "$dev" $opts -s 65536 -D 2 >"$log/bw-$dev.server" 2>&1 &
	spid=$!
	wait_listen $spid
	# shellcheck disable=SC2086
	timeout 60 ib_write_bw -d "$dev" $opts -s 65536 -D 2 "$addr" \
		>"$log/bw-$dev.client" 2>&1
	rc=$?
	wait $spid
	src=$?
	if [ $rc != 0 ] || [ $src != 0 ]; then
		echo "demo: ib_write_bw on $dev failed (client $rc, server $src)"
		sed 's/^/  client: /' "$log/bw-$dev.client"
		sed 's/^/  server: /' "$log/bw-$dev.server"
		bw[$dev]=FAILED
		return 1
	fi
	bw[$dev]="$(awk '/^ *65536 /{ print $4 }' "$log/bw-$dev.client") MB/s"
}

# demo DEV [--stock]: sodp_demo on DEV, its output shown and kept.
demo() {
	local dev=$1 tag=${2:+stock}

	echo "== $dev${2:+ (stock drivers)}: sodp_demo ${2:-$secs s}"
	# shellcheck disable=SC2086
	SODP_DEVICE=$dev timeout 120 "$bin/sodp_demo" ${2:-} "$secs" \
		>"$log/demo-$dev${tag:+-$tag}" 2>&1
	local rc=$?
	grep -v '^summary: ' "$log/demo-$dev${tag:+-$tag}"
	if [ $rc != 0 ]; then
		echo "demo: sodp_demo on $dev${2:+ --stock} failed ($rc)"
		echo "summary: $dev${tag:+ $tag}: FAILED (exit $rc)" \
			>>"$log/demo-$dev${tag:+-$tag}"
		fail=1
	fi
}

t0=$SECONDS
echo auto >/sys/module/sodp/parameters/pin_mode || fail=1
if [ -z "${SODP_DAX_DIR:-}" ] || [ ! -e /sys/devices/system/node/node1 ]; then
	echo "demo: needs FS-DAX and two NUMA nodes (vm-run --pmem --numa 2)"
	fail=1
fi
demo rxe0
demo siw0
echo "== ib_write_bw 64 KiB, 2 s (rxe0; siw0 with rdma_cm, -R)"
write_bw rxe0 "$SODP_RXE_ADDR" "-x 1" || fail=1
write_bw siw0 "$SODP_SIW_ADDR" "-R" || fail=1
# Out-of-tree modules are tainted "O": proof that rxe and siw are ours.
taint=$(for m in sodp rdma_rxe siw; do
	printf '%s(%s) ' $m "$(cat /sys/module/$m/taint 2>/dev/null)"; done)

echo "== the stock drivers: Debian's rdma_rxe, unpatched siw"
stock=ok
# shellcheck source=guest-setup.sh
SODP_SETUP_LIB=1 source "$SODP_TOP/scripts/guest-setup.sh"
if rmmod siw rdma_rxe sodp && sodp_load_stock &&
   rdma link add rxe0 type rxe netdev veth0 &&
   rdma link add siw0 type siw netdev veth1; then
	for _ in $(seq 100); do
		grep -q ACTIVE /sys/class/infiniband/rxe0/ports/1/state &&
			grep -q ACTIVE /sys/class/infiniband/siw0/ports/1/state &&
			break
		sleep 0.1
	done
	# No sodp; Debian's rdma_rxe is in-tree (no taint).
	stock_mods="rdma_rxe($(cat /sys/module/rdma_rxe/taint)) siw from build/stock, sodp $([ -d /sys/module/sodp ] && echo loaded || echo absent)"
	demo rxe0 --stock
	demo siw0 --stock
else
	echo "demo: could not switch to the stock drivers"
	stock=FAILED
	fail=1
fi

echo
echo "== sodp demo summary ($((SECONDS - t0)) s in the guest; TCG: absolute numbers are emulation speed)"
for dev in rxe0 siw0; do
	echo "$dev:"
	cat "$log/demo-$dev" "$log/demo-$dev-stock" 2>/dev/null |
		sed -n "s/^summary: $dev /  /p"
	echo "  sodp: ib_write_bw 64 KiB ${bw[$dev]:-not run}"
done
echo "modules: ours ${taint}; stock ${stock_mods:-$stock}"
[ $fail = 0 ] && echo "demo: PASS" || echo "demo: FAILED"
rm -rf "$log"
exit $fail
