#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Sourced by check.sh and check-debug.sh: the pass/fail/skip totals, the
# TAP counting of a guest run and the closing "N passed, N failed" line.

passed=0 failed=0 skipped=0

pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAILED: $*"; }

# count_tap TAP LOG VRC WHAT: add a guest's TAP results to the totals;
# VRC is vm-run's exit status, LOG its output.
count_tap() {
	local tap=$1 log=$2 vrc=$3 what=$4 p s f

	# The guest's TAP: "ok", "ok ... # SKIP", "not ok"; sub-results
	# only, but a failure also shows the lines that led to it (up to
	# 60), which only the guest's log has otherwise. sodp_fs's
	# "# timing" lines (file system waits with and without MR) too.
	awk '/^ok |^# ====|^#  RUN/ { n = 0 }
	     /^not ok / { for (i = (n > 60 ? n - 60 : 0); i < n; i++)
				print buf[i % 60]
			  n = 0 }
	     /^(not )?ok |^# ====|^# (Totals|FAIL|SKIP|timing )|^# +(FAIL|SKIP)/ {
			  print; next }
	     !/^#  RUN|^# +OK/ { buf[n % 60] = $0; n++ }' "$tap" 2>/dev/null
	p=$(grep -E '^ok ' "$tap" 2>/dev/null | grep -v -c '# SKIP')
	s=$(grep -E '^ok .*# SKIP' -c "$tap" 2>/dev/null)
	f=$(grep -E -c '^not ok ' "$tap" 2>/dev/null)
	passed=$((passed + p))
	skipped=$((skipped + s))
	failed=$((failed + f))
	if [ "$vrc" != 0 ] && [ "$f" = 0 ]; then
		# The guest itself failed (setup, splat, hang): show why.
		tail -n 80 "$log"
		fail "$what (vm-run exit $vrc)"
		grep -m1 '^vm-run: splat: ' "$log"
	elif [ "$vrc" = 125 ]; then
		# Failed cases and a splat: name the splat too.
		fail "$what (vm-run exit $vrc)"
		grep -m1 '^vm-run: splat: ' "$log"
	fi
}

finish() {
	echo
	echo "$passed passed, $failed failed, $skipped skipped"
	[ "$failed" = 0 ]
	exit $?
}
