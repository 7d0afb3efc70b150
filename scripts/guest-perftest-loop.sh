#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run inside a guest after guest-setup: perftest's ib_{write,read,send}_bw
# --odp -D 1 loopbacks on siw0 (or SODP_LOOP_DEVICE) SODP_LOOP_N times
# each (default 20), counting runs whose result line shows no iterations
# or whose client or server failed. While each client runs, the state of
# the transport is sampled (guest-stall-dump.sh one second into the
# window); a failing run's perftest output, the device's counters that
# grew during it, and samples are printed as comments. The client starts
# once the server listens (wait_listen; on siw through rdma_cm). The last
# line says "perftest-loop: N runs, N failed".
#
# SODP_LOOP_TESTS (default "ib_write_bw ib_read_bw ib_send_bw"),
# SODP_PERFTEST_ARGS (default "--odp -D 1"), SODP_LOOP_DUMP (default 1; 0
# skips the samples: under TCG each one takes about a minute, so a run
# with them takes about 50 s a test).

set -u
n=${SODP_LOOP_N:-20}
dev=${SODP_LOOP_DEVICE:-siw0}
tests=${SODP_LOOP_TESTS:-ib_write_bw ib_read_bw ib_send_bw}
args=${SODP_PERFTEST_ARGS:---odp -D 1}
dump=$SODP_TOP/scripts/guest-stall-dump.sh
log=$(mktemp -d)
runs=0
bad=0
port=18515	# perftest's default
case $dev in
rxe0) addr=$SODP_RXE_ADDR; pt="-x 1"; cm= ;;
*) addr=$SODP_SIW_ADDR; pt="-R"; cm="$dev $port" ;;
esac

ctl=/sys/kernel/debug/dynamic_debug/control
for f in 'processing failed' 'SQ task failed' 'deferred fault' \
	 'unable to process RX'; do
	echo "module siw format \"$f\" +p" >$ctl 2>/dev/null
done

# shellcheck source=scripts/guest-lib.sh
. "$SODP_TOP/scripts/guest-lib.sh"

for i in $(seq "$n"); do
	for t in $tests; do
		runs=$((runs + 1))
		seen=$(dmesg | wc -l)
		rdma statistic show link "$dev/1" >"$log/c0"
		# shellcheck disable=SC2086
		timeout 60 $t -d $dev $pt $args >"$log/srv" 2>&1 &
		spid=$!
		# shellcheck disable=SC2086
		wait_listen $spid $cm || echo "# the server did not listen within 15 s"
		# shellcheck disable=SC2086
		timeout 60 $t -d $dev $pt $args $addr >"$log/cli" 2>&1 &
		cpid=$!
		# Sample twice while the window is open.
		: >"$log/dump1"
		: >"$log/dump2"
		if [ "${SODP_LOOP_DUMP:-1}" = 1 ]; then
			(sleep 2.5; "$dump" >"$log/dump1" 2>&1; sleep 1;
			 "$dump" >"$log/dump2" 2>&1) &
		else
			true &
		fi
		mpid=$!
		wait $cpid
		rc=$?
		wait $mpid
		reap $spid 50
		src=$?
		rdma statistic show link "$dev/1" >"$log/c1"
		if [ $rc = 0 ] && [ $src = 0 ] &&
		   awk '/^ *[0-9]+ +[0-9]+ / { ok = $2 > 0 } END { exit !ok }' \
			"$log/cli"; then
			echo "# run $i $t: ok"
			continue
		fi
		bad=$((bad + 1))
		echo "# run $i $t: FAILED (client $rc, server $src)"
		sed 's/^/# client: /' "$log/cli"
		sed 's/^/# server: /' "$log/srv"
		cat "$log/c0" "$log/c1" | awk '
			{ for (i = 3; i < NF; i += 2)
				if (NR == 1) c[$i] = $(i + 1)
				else if ($(i + 1) != c[$i])
					d = d sprintf(" %s+%d", $i, $(i + 1) - c[$i]) }
			END { print "# counters grown:" d }'
		cat "$log/dump1" "$log/dump2"
		dmesg | tail -n +$((seen + 1)) | grep -E 'siw|sodp' |
			grep -v -E 'deferred fault at .*, err = 0$' | tail -60 |
			sed 's/^/# dmesg: /'
	done
done
rm -rf "$log"
echo "perftest-loop: $runs runs, $bad failed"
[ "$bad" = 0 ]
