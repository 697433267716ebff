#!/bin/bash
# bench_sandboxes.sh — idle `process` sandboxes with their proxies, created
# one after another through firebreak-vmhost: for N = 10, 50, 100, 200,
# ... 500, the median time a create takes (network, CA, proxy ready,
# guest started; measured by the client, HTTP included), the part of it
# up to the proxy being ready as the daemon reports it ("setup_ms":
# sandbox network + CA + proxy enforcing the policy, the issue's figure),
# and the memory they hold: the proxies' proportional set
# size (shared library pages divided among the processes sharing them,
# so the sum is what they really cost) and the machine's (MemTotal -
# MemAvailable, which counts kernel objects too; other work on the
# machine shows up there as noise).  Stops early
# past a time budget (BENCH_BUDGET_S, default 90 s).  Everything is
# removed at the end.
#
# Targets (the issue's): setup median < 50 ms; >= 500 sandboxes.
. "$(dirname "$0")/../e2e/daemon_lib.sh"

BUDGET_S=${BENCH_BUDGET_S:-90}
COUNTS=(10 50 100 200 300 400 500)

fb_world || { echo "cannot build the test namespaces"; exit 1; }
fb_daemon_start || { echo "firebreak-vmhost did not start"; exit 1; }

used_kib() {
	awk '/^MemTotal:/ { t = $2 } /^MemAvailable:/ { a = $2 }
	     END { print t - a }' /proc/meminfo
}

proxies_pss_kib() {
	local pid sum=0 pss
	for pid in $(pgrep -f -- "[f]irebreak-proxy .*--sandbox-id $FB_ID_PREFIX-"); do
		pss=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null)
		sum=$((sum + ${pss:-0}))
	done
	echo "$sum"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

base=$(used_kib)
start=$SECONDS
made=0
printf '%9s %12s %12s %12s %16s %16s %14s\n' sandboxes "ready p50 ms" \
	"create p50" "create max" "proxies PSS MiB" "per proxy KiB" "machine MiB"
for n in "${COUNTS[@]}"; do
	: >"$FB_TMP/times"
	: >"$FB_TMP/ready"
	while [ "$made" -lt "$n" ]; do
		fb_next_id
		t=$(api -o "$FB_TMP/created" -w '%{http_code} %{time_total}' \
			-X POST -d "{\"id\":\"$FB_LAST_ID\",\"command\":[\"sleep\",\"3600\"]}" \
			http://vmhost/sandboxes)
		if [ "${t%% *}" != 201 ]; then
			echo "create $FB_LAST_ID failed: $t $(cat "$FB_TMP/created")"
			break 2
		fi
		awk '{ printf "%d\n", $2 * 1000 }' <<<"$t" >>"$FB_TMP/times"
		grep -o '"setup_ms":[0-9.]*' "$FB_TMP/created" | cut -d: -f2 >>"$FB_TMP/ready"
		made=$((made + 1))
		[ $((SECONDS - start)) -gt "$BUDGET_S" ] && break
	done
	sleep 1 # let the last proxies settle before measuring
	pss=$(proxies_pss_kib)
	used=$(($(used_kib) - base))
	printf '%9d %12.1f %12d %12d %16d %16d %14d\n' "$made" \
		"$(median <"$FB_TMP/ready")" \
		"$(median <"$FB_TMP/times")" "$(sort -n "$FB_TMP/times" | tail -1)" \
		$((pss / 1024)) $((pss / made)) $((used / 1024))
	if [ $((SECONDS - start)) -gt "$BUDGET_S" ]; then
		echo "stopped at $made sandboxes: past the ${BUDGET_S} s budget"
		break
	fi
done
echo "targets: ready (network + proxy) p50 < 50 ms, >= 500 sandboxes (load average now: $(cut -d' ' -f1 /proc/loadavg))"
t0=$SECONDS
fb_daemon_kill TERM
echo "removing $made sandboxes took $((SECONDS - t0)) s"
left=$(fb_leftovers "${FB_IDS[@]}")
[ -z "$left" ] || { echo "left behind:"; echo "$left"; exit 1; }
