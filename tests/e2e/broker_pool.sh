#!/bin/bash
# broker_pool.sh — firebreak-proxy by itself, keeping upstream connections
# between guest connections.  A guest that opens a connection per request
# gets the upstream connection the last one left; the guest that asked to
# close is told "Connection: close" though the origin was not; a request
# with a body gets a new upstream connection; a GET whose reused
# connection the origin closes unanswered goes again, once, on a new one,
# while a POST is answered 502 and never sent twice; a policy change
# closes every parked connection, and one that denies where a live
# brokered connection's upstream goes closes that connection.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

px_netns fbp
for a in 10 20 53; do ip -n "$NS" addr add 198.51.100.$a/32 dev lo; done
px_redirect_guests || { not_ok setup nft; exit 1; }

px_certs api.test || { not_ok setup certs; exit 1; }
px_sandbox_ca api.test || { not_ok setup "sandbox CA"; exit 1; }

px_echo_origin

POLICY='allow:\n  api.test:\n    - transform: [{ headers: { x-api-key: k1 } }]\n'
printf "$POLICY" >"$FB_TMP/policy.yaml"
px_broker_proxy bpl

# What the origin logged for TARGET, one line per request: "METHOD PEER NTH"
origin_saw() {
	"$PY" -c 'import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["target"] == sys.argv[2]:
        keys = [v for k, v in r["headers"] if k.lower() == "x-api-key"]
        print(r["method"], r["peer"], r["nth"], ",".join(keys))' \
		"$ORIGIN_LOG" "$1"
}

st=$(px_api_curl -H 'Connection: close' https://api.test/a)
check "a first guest connection: 200 ($st)" [ "$st" = 200 ]
check "... and the guest that asked to close is told so" \
	grep -qi '^connection: close' "$FB_TMP/h"
st=$(px_api_curl -H 'Connection: close' https://api.test/b)
read -r _ peer_a nth_a key_a <<<"$(origin_saw /a)"
read -r _ peer_b nth_b key_b <<<"$(origin_saw /b)"
check "a second guest connection: 200 ($st)" [ "$st" = 200 ]
check "... over the upstream connection the first one left ($peer_a, $peer_b #$nth_b)" \
	holds '[ -n "$peer_a" ] && [ "$peer_a" = "$peer_b" ] && [ "$nth_b" = 1 ]'
check "... with the key injected once on each ($key_a, $key_b)" \
	holds '[ "$key_a" = k1 ] && [ "$key_b" = k1 ]'
check "/stats counts the reuse ($(px_reused))" [ "$(px_reused)" = 1 ]
check "the audit line of /b says its upstream connection was reused, /a's does not" \
	holds 'grep "\"url.path\":\"/b\"" "$AUDIT" | grep -q "\"firebreak.upstream_reused\":true" &&
		! grep "\"url.path\":\"/a\"" "$AUDIT" | grep -q upstream_reused'
px_api_curl -H 'Connection: close' https://api.test/ka >/dev/null
check "a guest that asks to close is told so once, in place of the origin's own Connection and Keep-Alive ($(grep -ci '^connection\|^keep-alive' "$FB_TMP/h"))" \
	holds '[ "$(grep -ci "^connection\|^keep-alive" "$FB_TMP/h")" = 1 ] &&
		grep -qi "^connection: close" "$FB_TMP/h"'

st=$(px_api_curl -d 'hello' https://api.test/p)
read -r m peer_p nth_p _ <<<"$(origin_saw /p)"
check "a request with a body: 200 ($st), on a new upstream connection ($m #$nth_p)" \
	holds '[ "$st" = 200 ] && [ "$m" = POST ] && [ "$nth_p" = 0 ] && [ "$peer_p" != "$peer_a" ]'

# The origin closes the reused connection unanswered: a GET goes again.
st=$(px_api_curl https://api.test/drop)
check "a GET whose reused connection the origin dropped: 200 ($st)" [ "$st" = 200 ]
drops=$(origin_saw /drop)
check "... sent twice, the second time on a new connection ($(tr '\n' ' ' <<<"$drops"))" \
	holds '[ "$(wc -l <<<"$drops")" = 2 ] && [ "$(tail -n1 <<<"$drops" | cut -d" " -f3)" = 0 ]'
# ... but not once any of its answer came back
st=$(px_api_curl https://api.test/half)
check "a GET whose reused connection broke mid-answer: 502 ($st), sent once ($(origin_saw /half | wc -l))" \
	holds '[ "$st" = 502 ] && [ "$(origin_saw /half | wc -l)" = 1 ]'
# ... a POST is not: one guest connection, a GET then a bodiless POST on
# the upstream connection the GET used
: >"$ORIGIN_LOG"
st=$(px_api_curl https://api.test/c --next -X POST --cacert "$FB_TMP/sca.crt" \
	--resolve api.test:443:198.51.100.10 -o /dev/null -w ' %{http_code}' \
	https://api.test/drop)
check "a POST whose connection the origin dropped: 502 ($st)" [ "$st" = "200 502" ]
check "... and it reached the origin once ($(origin_saw /drop | wc -l))" \
	[ "$(origin_saw /drop | wc -l)" = 1 ]
check "... the audit line says why" \
	grep -q '"event.outcome":"denied".*"event.reason":"upstream-closed".*"http.request.method":"POST"' "$AUDIT"

# An HTTP/1.0 guest's request goes as HTTP/1.0, so the origin never
# answers it chunked; and the connection the origin closes is not parked.
body=$(px_guest "$NS" curl -sS --max-time 10 --http1.0 --cacert "$FB_TMP/sca.crt" \
	--resolve api.test:443:198.51.100.10 https://api.test/chunked 2>>"$FB_TMP/curl.err")
v=$("$PY" -c 'import json, sys
print(" ".join(json.loads(l)["version"] for l in open(sys.argv[1])
      if json.loads(l)["target"] == "/chunked"))' "$ORIGIN_LOG")
check "an HTTP/1.0 request goes upstream as HTTP/1.0 ($v), its answer whole ($body)" \
	holds '[ "$v" = HTTP/1.0 ] && [ "$body" = "hello world" ]'
before=$(px_reused)
st=$(px_api_curl https://api.test/after10)
read -r _ _ nth_10 _ <<<"$(origin_saw /after10)"
check "... and its upstream connection, which the origin closed, is not reused ($st #$nth_10)" \
	holds '[ "$st" = 200 ] && [ "$nth_10" = 0 ] && [ "$(px_reused)" = "$before" ]'

# A policy change that still lets the origin's address be reached keeps
# what is parked.
px_api_curl https://api.test/f >/dev/null
printf "$POLICY" | px_curl_control "$SOCK" -X PUT --data-binary @- \
	http://proxy/policy >/dev/null
before=$(px_reused)
st=$(px_api_curl https://api.test/g)
read -r _ _ nth_g _ <<<"$(origin_saw /g)"
check "after a policy change that allows its address: the parked connection is taken ($st #$nth_g)" \
	holds '[ "$st" = 200 ] && [ "$nth_g" -gt 0 ] && [ "$(px_reused)" = $((before + 1)) ]'

# The guest dials .20, which the proxy's own answer for api.test does not
# hold: its upstream connection goes to .10.  A policy that denies .10 but
# not .20 still brokers the name, yet must close that connection, and
# the parked ones to .10 too.
SYNC=$FB_TMP/sync
mkdir -m 1777 "$SYNC"
px_guest "$NS" "$PY" "$(dirname "$0")/broker_client.py" api.test 198.51.100.20 \
	"$FB_TMP/sca.crt" get=/h1 wait="$SYNC/go" get=/h2 >"$FB_TMP/c.out" &
c=$!
px_wait_file "$SYNC/go.ready"
px_api_curl https://api.test/p2 >/dev/null   # leaves one parked, to .10
printf "$POLICY"'subnets:\n  deny: [198.51.100.10/32]\n' |
	px_curl_control "$SOCK" -X PUT --data-binary @- http://proxy/policy >"$FB_TMP/put.out"
touch "$SYNC/go"
wait "$c"
check "a live connection whose upstream address is now denied: closed ($(tr '\n' ' ' <"$FB_TMP/c.out"))" \
	holds 'grep -qx "get /h1 200 k1" "$FB_TMP/c.out" && grep -Eq "^get /h2 (closed|error:)" "$FB_TMP/c.out"'
check "... the change reports it ($(cat "$FB_TMP/put.out"))" grep -q '"closed":1}' "$FB_TMP/put.out"
check "... and /h2 never reached the origin" px_absent '"/h2"' "$ORIGIN_LOG"
up=$(ip netns exec "$NS" ss -Htn state established dst 198.51.100.10:443 | wc -l)
check "... nor does any parked connection to .10 stay open ($up)" [ "$up" = 0 ]

kill -TERM "$PROXY_PID" && wait "$PROXY_PID"
check "the proxy stopped cleanly (status $?)" [ $? = 0 ]
PROXY_PID=
check "the proxy wrote nothing to stderr" [ ! -s "$FB_TMP/proxy.err" ]
