#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a guest booted with the kernel scripts/upstream-kernel.sh
# fetched (vm-run --no-setup, SODP_KERNEL=DIR): bring up that kernel's
# stock rdma_rxe, with upstream's own ODP, on veth0 as guest-setup.sh does
# for ours, then run the given command (e.g. guest-bench.sh) with
# SODP_DEVICES=rxe0. Debian's 7.x kernels build no siw.
#
# Usage: guest-upstream.sh COMMAND [ARGS...]

set -u
case "$(modinfo -n rdma_rxe 2>/dev/null)" in
/lib/modules/*) ;;
*) echo "guest-upstream: no stock rdma_rxe for $(uname -r)" >&2; exit 1 ;;
esac
modprobe -a rdma_cm rdma_ucm ib_cm veth rdma_rxe || exit 1
ip link add veth0 type veth peer name veth1 &&
	ip addr add 10.11.0.1/24 dev veth0 &&
	ip link set veth0 up && ip link set veth1 up &&
	rdma link add rxe0 type rxe netdev veth0 || exit 1
for _ in $(seq 100); do
	grep -q ACTIVE /sys/class/infiniband/rxe0/ports/1/state && break
	sleep 0.1
done
grep -q ACTIVE /sys/class/infiniband/rxe0/ports/1/state || {
	echo "guest-upstream: rxe0 port not active" >&2
	exit 1
}
echo 0 >/proc/sys/kernel/numa_balancing 2>/dev/null
export SODP_RXE_ADDR=10.11.0.1 SODP_DEVICES=rxe0
echo "# kernel $(uname -r), stock rdma_rxe"
exec "$@"
