#!/bin/bash
# proxy_nofds.sh — the proxy's guest listener out of descriptors: accept(2)
# fails with EMFILE and leaves the connection in the backlog, so a listener
# still watched would be reported ready again at once and the proxy would
# spin at full CPU (proxy/accept_pause.h).  Here the running proxy's
# descriptor limit is lowered to what it holds plus a few, idle guests take
# those few, and the proxy must stay quiet, then serve what waited in the
# backlog once the peek deadline frees them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

px_netns fbnofd
ip -n "$NS" addr add 198.51.100.10/32 dev lo
ip -n "$NS" addr add 198.51.100.53/32 dev lo
px_redirect_guests || { not_ok setup nft; exit 1; }
px_certs allowed.test || { not_ok setup certs; exit 1; }
px_origins "$NS" https,198.51.100.10,443,allowed.test || { not_ok setup origins; exit 1; }
px_dns "$NS" 198.51.100.53 allowed.test=198.51.100.10 || { not_ok setup dns; exit 1; }

printf 'allow:\n  - allowed.test\n' >"$FB_TMP/policy.yaml"
px_proxy nofds --peek-timeout 1500

C() { px_client "$NS" "$@"; }
ORIGIN="origin 198.51.100.10 allowed.test"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$PROXY_PID/stat"; }

# warm: the resolver's socket and the answer cached, so a connection
# served later needs only its own two descriptors
out=$(C tls 198.51.100.10 443 allowed.test "$PX_CA")
check "an allowed connection before the limit" [ "$out" = "$ORIGIN" ]

# The limit bounds descriptor numbers: set it just past the fourth free
# number (the proxy may hold strays from its parent above it).
below() { ls "/proc/$PROXY_PID/fd" | awk -v n="$1" '$1 < n' | wc -l; }
limit=1
while [ $((limit - $(below $limit))) -lt 4 ]; do limit=$((limit + 1)); done
prlimit --pid "$PROXY_PID" --nofile=$limit:$limit ||
	{ not_ok setup "prlimit"; exit 1; }

# 8 idle guests: 4 are accepted and sit in peek, the rest wait in the
# backlog (so would a client of the control socket: it is not asked here)
C idle 198.51.100.10 443 8 >"$FB_TMP/idle.out" &
idle=$!
sleep 0.3
t0=$(cpu_ticks)
sleep 1
t1=$(cpu_ticks)
hz=$(getconf CLK_TCK)
check "out of descriptors the proxy waits: $((t1 - t0)) ticks of $hz in 1 s" \
	[ $((t1 - t0)) -lt $((hz / 5)) ]
fds=$(below $limit)
check "... with every descriptor it may have in use ($fds of $limit)" [ "$fds" = "$limit" ]

# a good connection queued behind them is served once the deadlines free
# descriptors (1.5 s each, a round or two; the pause retries every 100 ms),
# with room for its upstream
out=$(C tls 198.51.100.10 443 allowed.test "$PX_CA")
check "a connection that waited in the backlog is served" [ "$out" = "$ORIGIN" ]
wait $idle
read -r word n ms early <"$FB_TMP/idle.out"
check "every idle guest is accepted in turn and closed at its deadline ($n in ${ms} ms)" \
	holds '[ "$word" = closed ] && [ "$n" = 8 ] && [ "$early" = 0 ]'
check "the proxy is still running" kill -0 "$PROXY_PID"
