# SPDX-License-Identifier: GPL-2.0
#
# Sourced in a sodp guest before the command: load the stock RDMA core
# modules and OUR sodp.ko, rdma_rxe.ko and siw.ko (never Debian's rdma_rxe),
# bring up rxe0 on veth0 (10.11.0.1) and siw0 on veth1 (10.12.0.1), and
# prepare file systems for the tests. In two-guest mode (SODP_PEER set) the
# devices sit on the virtio-net links instead: rxe0 on 10.50.0.N+1, siw0 on
# 10.51.0.N+1 for node N. Two links, because rdma_cm picks the device by
# the local address: with one address for both, it would pick rxe0 for both.
#
# Exports: SODP_RXE_ADDR, SODP_SIW_ADDR, SODP_TMPFS_DIR, SODP_EXT4_DIR,
# SODP_XFS_DIR, SODP_XFS_DAX_DIR (second pmem region),
# with a pmem region SODP_DAX_DIR and, with a peer, SODP_RXE_PEER and
# SODP_SIW_PEER (the peer's addresses).
#
# SODP_MODULES (default $SODP_TOP/build/modules) names the module directory,
# or is "installed": modprobe the ones depmod knows (a DKMS install);
# SODP_SODP_PARAMS, SODP_RXE_PARAMS, SODP_SIW_PARAMS are passed to insmod.
# The node numbered SODP_STOCK_NODE loads the stock drivers instead and no
# sodp.ko: Debian's rdma_rxe and the unpatched siw.ko in SODP_STOCK_MODULES
# (default $SODP_TOP/build/stock, made by build.sh stock).

sodp_setup_fail() {
	echo "guest-setup: $*" >&2
	return 1
}

# sodp_load_ours: sodp.ko and our rdma_rxe.ko and siw.ko.
sodp_load_ours() {
	local mods=${SODP_MODULES:-$SODP_TOP/build/modules}
	local m deps

	if [ "$mods" = installed ]; then
		# shellcheck disable=SC2086
		modprobe -a rdma_cm rdma_ucm iw_cm ib_cm veth &&
			modprobe sodp ${SODP_SODP_PARAMS:-} &&
			modprobe rdma_rxe ${SODP_RXE_PARAMS:-} &&
			modprobe siw ${SODP_SIW_PARAMS:-} ||
			sodp_setup_fail "modprobe of the installed modules failed" || return 1
		return 0
	fi
	for m in sodp rdma_rxe siw; do
		[ -f "$mods/$m.ko" ] || sodp_setup_fail "$mods/$m.ko missing (make first)" || return 1
	done

	# What our modules depend on, from their own modinfo, plus rdma_cm.
	deps="rdma_cm rdma_ucm iw_cm ib_cm veth"
	for m in sodp rdma_rxe siw; do
		deps="$deps $(modinfo -F depends "$mods/$m.ko" | tr , ' ')"
	done
	deps=$(echo "$deps" | tr ' ' '\n' | grep -v -x -E 'sodp|rdma_rxe|siw|' | sort -u)
	# shellcheck disable=SC2086
	modprobe -a $deps ||
		sodp_setup_fail "modprobe of $deps failed" || return 1
	# shellcheck disable=SC2086
	insmod "$mods/sodp.ko" ${SODP_SODP_PARAMS:-} &&
		insmod "$mods/rdma_rxe.ko" ${SODP_RXE_PARAMS:-} &&
		insmod "$mods/siw.ko" ${SODP_SIW_PARAMS:-} ||
		sodp_setup_fail "insmod of our modules failed" || return 1
}

# sodp_load_stock: Debian's rdma_rxe and the unpatched siw.ko.
sodp_load_stock() {
	local mods=${SODP_STOCK_MODULES:-$SODP_TOP/build/stock} deps

	[ -f "$mods/siw.ko" ] ||
		sodp_setup_fail "$mods/siw.ko missing (build.sh stock)" || return 1
	deps=$(modinfo -F depends "$mods/siw.ko" | tr , ' ')
	# shellcheck disable=SC2086
	modprobe -a rdma_cm rdma_ucm iw_cm ib_cm veth rdma_rxe $deps &&
		insmod "$mods/siw.ko" ||
		sodp_setup_fail "loading the stock modules failed" || return 1
	case "$(modinfo -n rdma_rxe)" in
	/lib/modules/*) ;;
	*) sodp_setup_fail "the rdma_rxe found is not Debian's" || return 1 ;;
	esac
}

# sodp_nic MAC: the name of the netdev with that address.
sodp_nic() {
	local n

	for n in /sys/class/net/*; do
		if [ "$(cat "$n/address")" = "$1" ]; then
			basename "$n"
			return 0
		fi
	done
	sodp_setup_fail "no NIC with MAC $1"
}

sodp_setup() {
	local i addr_rxe addr_siw nic_rxe nic_siw

	if [ -d /sys/module/rdma_rxe ] || [ -d /sys/module/siw ]; then
		sodp_setup_fail "a stock rdma_rxe or siw is already loaded" || return 1
	fi
	if [ "${SODP_STOCK_NODE:-}" = "${SODP_NODE:-0}" ]; then
		sodp_load_stock || return 1
	else
		sodp_load_ours || return 1
	fi

	if [ -n "${SODP_PEER:-}" ]; then
		# vm-run's MACs: 52:54:00:5<link>:d0:1<node>.
		modprobe virtio_net || return 1
		nic_rxe=$(sodp_nic "52:54:00:50:d0:1$SODP_NODE") || return 1
		nic_siw=$(sodp_nic "52:54:00:51:d0:1$SODP_NODE") || return 1
		addr_rxe=10.50.0.$((SODP_NODE + 1))
		addr_siw=10.51.0.$((SODP_NODE + 1))
		ip addr add "$addr_rxe/24" dev "$nic_rxe"
		ip addr add "$addr_siw/24" dev "$nic_siw"
		ip link set "$nic_rxe" up
		ip link set "$nic_siw" up
		rdma link add rxe0 type rxe netdev "$nic_rxe" &&
			rdma link add siw0 type siw netdev "$nic_siw" ||
			sodp_setup_fail "rdma link add failed" || return 1
		export SODP_RXE_PEER=10.50.0.$((2 - SODP_NODE))
		export SODP_SIW_PEER=10.51.0.$((2 - SODP_NODE))
	else
		ip link add veth0 type veth peer name veth1
		ip addr add 10.11.0.1/24 dev veth0
		ip addr add 10.12.0.1/24 dev veth1
		ip link set veth0 up
		ip link set veth1 up
		rdma link add rxe0 type rxe netdev veth0 &&
			rdma link add siw0 type siw netdev veth1 ||
			sodp_setup_fail "rdma link add failed" || return 1
		addr_rxe=10.11.0.1
		addr_siw=10.12.0.1
	fi

	# Ports go ACTIVE once the netdevs have carrier.
	for i in $(seq 100); do
		if grep -q ACTIVE /sys/class/infiniband/rxe0/ports/1/state &&
		   grep -q ACTIVE /sys/class/infiniband/siw0/ports/1/state; then
			break
		fi
		sleep 0.1
	done
	grep -q ACTIVE /sys/class/infiniband/rxe0/ports/1/state ||
		sodp_setup_fail "rxe0 port not active" || return 1
	grep -q ACTIVE /sys/class/infiniband/siw0/ports/1/state ||
		sodp_setup_fail "siw0 port not active" || return 1
	export SODP_RXE_ADDR=$addr_rxe SODP_SIW_ADDR=$addr_siw

	# The migration cases move pages themselves; automatic NUMA
	# balancing (on with numa=fake) would only add invalidations at
	# random moments to cases that count faults.
	echo 0 >/proc/sys/kernel/numa_balancing 2>/dev/null

	mkdir -p /mnt/tmpfs /mnt/ext4 /mnt/dax
	mount -t tmpfs -o size=512M tmpfs /mnt/tmpfs &&
		export SODP_TMPFS_DIR=/mnt/tmpfs

	# A plain (non-DAX) ext4 on a RAM-backed loop device.
	modprobe -a loop ext4 2>/dev/null
	if truncate -s 256M /tmp/ext4.img && mkfs.ext4 -q -F /tmp/ext4.img &&
	   mount -o loop /tmp/ext4.img /mnt/ext4; then
		export SODP_EXT4_DIR=/mnt/ext4
	fi
	# And xfs (with reflink) the same way.
	mkdir -p /mnt/xfs
	if modprobe xfs 2>/dev/null; truncate -s 320M /tmp/xfs.img &&
	   mkfs.xfs -q -f -m reflink=1 /tmp/xfs.img &&
	   mount -o loop /tmp/xfs.img /mnt/xfs; then
		export SODP_XFS_DIR=/mnt/xfs
	fi

	# FS-DAX on the memmap=SIZE!OFFSET region, when the guest has one.
	if grep -q 'memmap=[^ ]*!' /proc/cmdline; then
		modprobe -a nd_e820 nd_pmem 2>/dev/null
		for i in $(seq 50); do
			[ -b /dev/pmem0 ] && break
			sleep 0.1
		done
		if [ -b /dev/pmem0 ] && mkfs.ext4 -q -F -b 4096 /dev/pmem0 &&
		   mount -o dax /dev/pmem0 /mnt/dax; then
			export SODP_DAX_DIR=/mnt/dax
		else
			sodp_setup_fail "pmem requested but no FS-DAX mount" || return 1
		fi
		# xfs -o dax with reflink on the second region.
		mkdir -p /mnt/xfsdax
		if [ -b /dev/pmem1 ] && mkfs.xfs -q -f -m reflink=1 /dev/pmem1 &&
		   mount -o dax /dev/pmem1 /mnt/xfsdax; then
			export SODP_XFS_DAX_DIR=/mnt/xfsdax
		fi
	fi
	return 0
}

# With SODP_SETUP_LIB set, only define the functions (guest-demo.sh).
[ -n "${SODP_SETUP_LIB:-}" ] || sodp_setup
