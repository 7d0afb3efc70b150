#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a guest started with --no-setup: install sodp, rdma_rxe and
# siw through DKMS for the running kernel, check that depmod and modprobe
# now find ours under updates/dkms, run a short ODP traffic test on rxe0 and
# siw0 with the modules modprobe loaded, remove them from DKMS and check
# that Debian's rdma_rxe is the one found again. TAP on stdout.
#
# SODP_DKMS_ROOT names the DKMS trees the host built into (check.sh:
# scripts/dkms.sh build) for this very tree state; without it the guest
# builds itself (more than 14 minutes under TCG).
# SODP_DKMS_CASES are the harness options of the traffic test (default
# -t caps -t rdma_write).

set -u
kver=$(uname -r)
dir=${SODP_SELFTESTS:-$SODP_TOP/build/selftests}
n=0

ok() { n=$((n + 1)); echo "ok $n dkms.$1"; }
not_ok() { n=$((n + 1)); echo "not ok $n dkms.$1"; }

# path_of MODULE: where modprobe would load MODULE from.
path_of() { modinfo -k "$kver" -n "$1" 2>/dev/null; }

# Built on the host: a build here would be a different version (another
# tree state) and take long; fail instead.
[ -n "${SODP_DKMS_ROOT:-}" ] && export SODP_DKMS_PREBUILT=1
log=${SODP_SHARE:-/tmp}/dkms-install.log
t0=$SECONDS
if "$SODP_TOP/scripts/dkms.sh" install "$kver" >"$log" 2>&1; then
	echo "# dkms install took $((SECONDS - t0)) s"
	ok install
else
	echo "# dkms install failed after $((SECONDS - t0)) s"
	sed 's/^/# /' "$log"
	not_ok install
	exit 1
fi
src=/usr/src
[ -n "${SODP_DKMS_ROOT:-}" ] && src=$SODP_DKMS_ROOT/src
ver=$(cat "$src"/sodp-*/sodp-version 2>/dev/null | head -n 1)

# depmod's "updates" comes first: ours shadow Debian's rdma_rxe.
bad=0
for m in sodp rdma_rxe siw; do
	p=$(path_of "$m")
	echo "# $m: $p, version $(modinfo -k "$kver" -F version "$m" 2>/dev/null)"
	case "$p" in
	"/lib/modules/$kver/updates/dkms/$m.ko"*) ;;
	*) bad=1 ;;
	esac
	[ -n "$ver" ] && [ "$(modinfo -k "$kver" -F version "$m")" = "$ver" ] || bad=1
done
if [ "$bad" = 0 ]; then ok modinfo_updates_dkms; else not_ok modinfo_updates_dkms; fi

# The setup modprobes them instead of loading build/modules.
if SODP_MODULES=installed SODP_SETUP_LIB="" source "$SODP_TOP/scripts/guest-setup.sh"; then
	line=$(dmesg | grep 'sodp: version [^ ]*, pin_mode ' | tail -n 1)
	echo "# ${line#*] }"
	if [ "$(cat /sys/module/sodp/version)" = "$ver" ] &&
	   [ "$(cat /sys/module/rdma_rxe/version)" = "$ver" ] &&
	   [ "$(cat /sys/module/siw/version)" = "$ver" ] &&
	   [ "${line#*sodp: version }" != "$line" ] &&
	   [ "$(echo "${line#*sodp: version }" | cut -d, -f1)" = "$ver" ]; then
		ok modprobe
	else
		not_ok modprobe
	fi
	# shellcheck disable=SC2086
	for dev in rxe0 siw0; do
		echo "# ==== sodp_odp on $dev (DKMS modules)"
		SODP_DEVICE=$dev timeout 300 "$dir/sodp_odp" \
			${SODP_DKMS_CASES:--t caps -t rdma_write}
	done
	rdma link delete rxe0
	rdma link delete siw0
	umount /mnt/tmpfs /mnt/ext4 2>/dev/null
	if rmmod siw && rmmod rdma_rxe && rmmod sodp; then
		ok unload
	else
		not_ok unload
	fi
else
	not_ok modprobe
fi

log=${SODP_SHARE:-/tmp}/dkms-remove.log
if "$SODP_TOP/scripts/dkms.sh" uninstall >"$log" 2>&1; then
	ok remove
else
	sed 's/^/# /' "$log"
	not_ok remove
fi

# Debian's rdma_rxe again; Debian builds no siw.
p=$(path_of rdma_rxe)
echo "# after remove: rdma_rxe: $p; siw: $(path_of siw || echo none)"
if [ "$p" != "${p#/lib/modules/"$kver"/kernel/drivers/infiniband/sw/rxe/}" ] &&
   [ -z "$(path_of siw)" ] && [ -z "$(path_of sodp)" ] &&
   ! ls "/lib/modules/$kver/updates/dkms/"*.ko* >/dev/null 2>&1 &&
   modprobe rdma_rxe && [ ! -e /sys/module/rdma_rxe/version ] &&
   [ ! -d /sys/module/sodp ] && rmmod rdma_rxe; then
	ok stock_rdma_rxe_back
else
	not_ok stock_rdma_rxe_back
fi
