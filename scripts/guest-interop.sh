#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run on both guests of `vm-run --two` after guest-setup, with
# SODP_STOCK_NODE=1: node 0 runs our sodp + patched rxe/siw, node 1 the stock
# drivers (Debian's rdma_rxe, unpatched siw). The wire protocol must not
# change, so rdma-core's tools between the two must work over rxe0 and siw0,
# with our node as server and as client:
#
#   ibv_rc_pingpong --chk (rxe0 only: iWARP needs rdma_cm), -o on our side;
#   rping -V (checks every payload it reads back), plain MRs pinned as
#   stock does and with sodp.pin_mode=all (plain MRs served by sodp);
#   ib_{write,read,send}_bw --odp on our side, plain on the stock side
#   (-R on siw0), which only checks that the transfer completed.
#
# The stock node cannot do ODP and is asked for none. Where our side asked
# for ODP or pin_mode=all, sodp must have faulted pages in during the case.
# Each case must also have carried at least 64 KiB over the link of its own
# device, more than over the other one: rdma_cm picks the device from the
# address, so this proves that siw0's cases did not run on rxe0.
#
# Both nodes walk the same list of cases and meet in $SODP_BOTH, a directory
# both guests share: the server side writes CASE.ready once it listens, the
# client side starts then, each side leaves its output and exit status
# there, and node 0 judges and prints TAP, then writes CASE.done, which lets
# node 1 go on to the next case. Every case has its own port, so a server
# left over from a failed case never meets the next client.

set -u
node=${SODP_NODE:?}
both=${SODP_BOTH:?not a two-guest run}
stock=${SODP_STOCK_NODE:-}
peer=$((1 - node))
log=$(mktemp -d)
n=1		# the next TAP number (node 0 prints)
failed=0
cases=0		# cases run, on both nodes alike
lost=0

# The bounds below are generous: two TCG guests on a loaded machine.
RUN_SECS=180		# one tool run
READY_SECS=240		# the peer reaching the same case
BOOT_SECS=300		# the peer getting through boot and setup

tap() {	# tap STATUS NAME [DIRECTIVE]
	[ "$node" = 0 ] && echo "$1 $n $2${3:+ # $3}"
	[ "$1" = ok ] || failed=1
	n=$((n + 1))
}

# put FILE: move the local FILE into the shared directory in one step, so
# that the peer sees it whole or not at all.
put() {
	cp "$log/$1" "$both/.$1.tmp" && mv "$both/.$1.tmp" "$both/$1"
}

# await SECS FILE...: until one of the shared FILEs exists.
await() {
	local f end=$((SECONDS + $1))

	shift
	while [ $SECONDS -lt $end ]; do
		for f in "$@"; do
			[ -e "$both/$f" ] && return 0
		done
		sleep 0.2
	done
	return 1
}

# gid_index DEV ADDR: the RoCE v2 GID index of the IPv4 address ADDR.
gid_index() {
	local want g i a b c d

	IFS=. read -r a b c d <<<"$2"
	want=$(printf '0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x' \
		"$a" "$b" "$c" "$d")
	for g in /sys/class/infiniband/"$1"/ports/1/gids/*; do
		i=${g##*/}
		[ "$(cat "$g" 2>/dev/null)" = "$want" ] || continue
		grep -q 'RoCE v2' "/sys/class/infiniband/$1/ports/1/gid_attrs/types/$i" &&
			echo "$i" && return 0
	done
	return 1
}

has_odp() { ibv_devinfo -v -d "$1" | grep -q 'ODP_SUPPORT$'; }

# sodp_now: sodp's totals of pages faulted in and of siw receive deferrals.
sodp_now() {
	local c d=/sys/kernel/debug/sodp

	for c in pages_faulted deferrals; do
		cat "$d/$c" 2>/dev/null || echo 0
	done | paste -s -d ' '
}

# link_bytes DEV: bytes sent and received so far by the netdev under DEV.
link_bytes() {
	local nd s

	nd=$(rdma link show "$1/1" | sed -n 's/.* netdev \([^ ]*\).*/\1/p')
	s=/sys/class/net/$nd/statistics
	echo $(($(cat "$s/rx_bytes") + $(cat "$s/tx_bytes")))
}

# What each node is: the judge checks that the peer really is stock.
{
	if [ -d /sys/module/sodp ]; then echo sodp=yes; else echo sodp=no; fi
	for d in rxe0 siw0; do
		if has_odp $d; then echo "$d=odp"; else echo "$d=no-odp"; fi
	done
} >"$log/node$node.info"
put "node$node.info"
if ! await $BOOT_SECS "node$peer.info"; then
	tap "not ok" interop.setup "node $peer never got through setup"
	exit 1
fi

if [ "$stock" != 0 ] && [ "$stock" != 1 ]; then
	tap "not ok" interop.setup "SODP_STOCK_NODE must name the stock node"
	exit 1
fi
ours=$((1 - stock))
if [ "$node" = 0 ]; then
	for i in 0 1; do
		what=stock want="sodp=no rxe0=no-odp siw0=no-odp"
		[ "$i" = "$ours" ] && what=ours want="sodp=yes rxe0=odp siw0=odp"
		if [ "$(paste -s -d ' ' "$both/node$i.info")" = "$want" ]; then
			tap ok "interop.setup.node${i}_$what"
		else
			tap "not ok" "interop.setup.node${i}_$what" "expected $want"
			sed 's/^/# /' "$both/node$i.info"
		fi
	done
fi

# tool_cmd TOOL DEV ROLE PORT ODP: the command line of one side.
tool_cmd() {
	local tool=$1 dev=$2 role=$3 port=$4 odp=$5 addr peer_addr gid

	case $dev in
	rxe0) addr=$SODP_RXE_ADDR peer_addr=$SODP_RXE_PEER ;;
	siw0) addr=$SODP_SIW_ADDR peer_addr=$SODP_SIW_PEER ;;
	esac
	[ "$role" = server ] && peer_addr=""
	case $tool in
	pingpong)
		gid=$(gid_index "$dev" "$addr") || gid=1
		echo "ibv_rc_pingpong -d $dev -g $gid -p $port -n 100 -s 16384 --chk" \
			"${odp:+-o} $peer_addr"
		;;
	rping)
		if [ "$role" = server ]; then
			echo "rping -s -a $addr -p $port -C 40 -S 16384 -V"
		else
			echo "rping -c -a $peer_addr -p $port -C 40 -S 16384 -V"
		fi
		;;
	ib_*)
		if [ "$dev" = siw0 ]; then
			gid=-R
		else
			gid="-x $(gid_index "$dev" "$addr" || echo 1)"
		fi
		echo "$tool -d $dev $gid -p $port -D 1 ${odp:+--odp} $peer_addr"
		;;
	esac
}

# listening PORT: a TCP listener or an rdma_cm listener is on PORT.
listening() {
	[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ] ||
		rdma resource show cm_id 2>/dev/null |
		grep -q -E "state LISTEN .*:$1( |$)"
}

# serve K CMD: run the server side of case K. A client that gave up
# leaves its server waiting: 60 s after the client's result, stop it.
serve() {
	local k=$1 cmd=$2 pid end

	# shellcheck disable=SC2086
	timeout $RUN_SECS $cmd >"$log/$k.server.log" 2>&1 &
	pid=$!
	end=$((SECONDS + 60))
	while [ $SECONDS -lt $end ] && kill -0 $pid 2>/dev/null &&
	      ! listening "$port"; do
		sleep 0.2
	done
	: >"$log/$k.ready"
	put "$k.ready"
	end=""
	while kill -0 $pid 2>/dev/null; do
		if [ -z "$end" ] && [ -e "$both/$k.client.rc" ]; then
			end=$((SECONDS + 60))
		elif [ -n "$end" ] && [ $SECONDS -ge "$end" ]; then
			kill $pid
			break
		fi
		sleep 0.2
	done
	wait $pid
	echo $? >"$log/$k.server.rc"
}

# connect K CMD: run the client side of case K once the server listens.
# A client that could not even reach the server (the listener not up yet,
# neighbour resolution) tries again for up to 60 s while the server waits.
unreached="Couldn't connect to|Unable to perform rdma_client"
unreached="$unreached|RDMA_CM_EVENT_(REJECTED|UNREACHABLE|ADDR_ERROR|ROUTE_ERROR)"
unreached="$unreached|wait for CONNECTED state"
connect() {
	local k=$1 cmd=$2 rc end=$((SECONDS + 60)) try=1

	if ! await $READY_SECS "$k.ready" "$k.server.rc"; then
		echo "# the server side of $k never got ready" >"$log/$k.client.log"
		echo 255 >"$log/$k.client.rc"
		return 1
	fi
	while :; do
		# shellcheck disable=SC2086
		timeout $RUN_SECS $cmd >"$log/$k.client.$try" 2>&1
		rc=$?
		cat "$log/$k.client.$try" >>"$log/$k.client.log"
		if [ $rc = 0 ] || [ $SECONDS -ge $end ] ||
		   [ -e "$both/$k.server.rc" ] ||
		   ! grep -q -E "$unreached" "$log/$k.client.$try"; then
			break
		fi
		echo "# try $try failed to connect; trying again" >>"$log/$k.client.log"
		try=$((try + 1))
		sleep 2
	done
	echo $rc >"$log/$k.client.rc"
}

# judge K NAME TOOL DEV CHECK_SODP: node 0's verdict on case K from both
# sides; $log/K.bytes holds what rxe0's and siw0's links carried meanwhile.
judge() {
	local k=$1 name=$2 tool=$3 dev=$4 check_sodp=$5 why="" side mine other
	local faulted deferred

	for side in server client; do
		[ -e "$log/$k.$side.rc" ] && continue
		if ! await $((RUN_SECS + 60)) "$k.$side.rc"; then
			why="node $peer left no $side result"
			lost=1
			continue
		fi
		cp "$both/$k.$side.log" "$both/$k.$side.rc" "$log/"
	done
	if [ -z "$why" ]; then
		for side in server client; do
			[ "$(cat "$log/$k.$side.rc")" = 0 ] ||
				why="$why $side exit $(cat "$log/$k.$side.rc")"
		done
	fi
	if [ -z "$why" ]; then
		case $tool in
		pingpong)
			grep -q '^100 iters' "$log/$k.client.log" ||
				why="the client did not finish 100 iterations"
			grep -q 'invalid data' "$log/$k.server.log" "$log/$k.client.log" &&
				why="payload check failed"
			;;
		rping)
			grep -q -i 'mismatch' "$log/$k.server.log" "$log/$k.client.log" &&
				why="payload check failed"
			;;
		ib_*)
			awk '/^ *[0-9]+ +[0-9]+ / { ok = $2 > 0 } END { exit !ok }' \
				"$log/$k.client.log" || why="no bandwidth line"
			;;
		esac
	fi
	if [ -z "$why" ]; then
		read -r mine other <"$log/$k.bytes"
		[ "$dev" = rxe0 ] || read -r other mine <"$log/$k.bytes"
		[ "$mine" -ge 65536 ] && [ "$mine" -gt "$other" ] ||
			why="$dev's link carried $mine bytes, the other $other"
	fi
	[ -e "$log/$k.sodp" ] || cp "$both/$k.sodp" "$log/" 2>/dev/null
	{ read -r faulted deferred <"$log/$k.sodp"; } 2>/dev/null
	if [ -z "$why" ] && [ "$check_sodp" = 1 ] && [ "${faulted:-0}" -le 0 ]; then
		why="sodp faulted no page in on node $ours"
	fi
	if [ -z "$why" ]; then
		tap ok "$name"
		echo "# sodp: $faulted pages faulted in, $deferred receives" \
			"deferred; $dev's link: $mine bytes"
	else
		tap "not ok" "$name" "${why# }"
		for side in server client; do
			echo "# $side: $(cat "$log/$k.$side.cmd" 2>/dev/null ||
				cat "$both/$k.$side.cmd" 2>/dev/null)"
			tail -n 25 "$log/$k.$side.log" 2>/dev/null | sed "s/^/# $side: /"
		done
	fi
}

# run_case TOOL DEV SERVER VARIANT: one case; SERVER is ours or stock,
# VARIANT odp (ODP on our side), pin (plain MRs) or pin_all (plain MRs,
# sodp.pin_mode=all on our side).
run_case() {
	local tool=$1 dev=$2 srv_is=$3 variant=$4 k name role cmd odp=""
	local srv_node mode_was="" check_sodp=0 port rxe_was siw_was
	local faulted_was deferred_was faulted deferred

	cases=$((cases + 1))
	k=case$cases
	port=$((18600 + cases))
	name=interop.$dev.$tool
	[ "$variant" = pin ] || name=${name}_$variant
	name=$name.ours_$([ "$srv_is" = ours ] && echo server || echo client)
	srv_node=$ours
	[ "$srv_is" = ours ] || srv_node=$stock
	role=client
	[ "$node" = "$srv_node" ] && role=server

	if [ "$lost" = 1 ]; then
		tap "not ok" "$name" "node $peer lost"
		return
	fi
	[ "$node" = 0 ] || echo "# $k: $name as $role"

	if [ "$node" = "$ours" ]; then
		[ "$variant" = odp ] && odp=1
		if [ "$variant" = pin_all ]; then
			mode_was=$(cat /sys/module/sodp/parameters/pin_mode)
			echo all >/sys/module/sodp/parameters/pin_mode
		fi
		[ "$variant" = pin ] || check_sodp=1
		read -r faulted_was deferred_was <<<"$(sodp_now)"
	fi

	rxe_was=$(link_bytes rxe0)
	siw_was=$(link_bytes siw0)
	cmd=$(tool_cmd "$tool" "$dev" $role $port "$odp")
	echo "$cmd" >"$log/$k.$role.cmd"
	put "$k.$role.cmd"
	if [ $role = server ]; then
		serve $k "$cmd"
	else
		connect $k "$cmd"
	fi

	if [ "$node" = "$ours" ]; then
		[ -n "$mode_was" ] &&
			echo "$mode_was" >/sys/module/sodp/parameters/pin_mode
		read -r faulted deferred <<<"$(sodp_now)"
		echo "$((faulted - faulted_was)) $((deferred - deferred_was))" \
			>"$log/$k.sodp"
		put "$k.sodp"
	fi
	put "$k.$role.log"
	put "$k.$role.rc"

	if [ "$node" = 0 ]; then
		echo "$(($(link_bytes rxe0) - rxe_was)) $(($(link_bytes siw0) - siw_was))" \
			>"$log/$k.bytes"
		judge $k "$name" "$tool" "$dev" $check_sodp
		: >"$log/$k.done"
		put "$k.done"
	elif ! await $((2 * RUN_SECS + 120)) "$k.done"; then
		echo "# node 0 never finished $k"
		lost=1
	fi
}

for dev in rxe0 siw0; do
	[ "$node" = 0 ] && echo "# ==== interop on $dev, node $ours ours, node $stock stock"
	for srv in ours stock; do
		[ $dev = rxe0 ] && run_case pingpong $dev $srv odp
		run_case rping $dev $srv pin
		run_case rping $dev $srv pin_all
		for t in ib_write_bw ib_read_bw ib_send_bw; do
			run_case $t $dev $srv odp
		done
	done
done

rm -rf "$log"
[ "$lost" = 0 ] && [ "$failed" = 0 ]
