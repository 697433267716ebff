#!/bin/bash
# broker_cname.sh — a brokered name whose answer is a CNAME: the chain is
# kept with the upstream connection, live or parked, and judged again by
# every policy change, as a new connection's would be.  A policy that
# still brokers api.test but no longer allows the name its CNAME leads to
# closes the live connection, drops the parked one, and refuses the next.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

px_netns fbc
for a in 10 53; do ip -n "$NS" addr add 198.51.100.$a/32 dev lo; done
px_redirect_guests || { not_ok setup nft; exit 1; }
px_certs api.test || { not_ok setup certs; exit 1; }
px_sandbox_ca api.test || { not_ok setup "sandbox CA"; exit 1; }
px_echo_origin api.test=cname:edge.test edge.test=198.51.100.10

BROKER='allow:\n  api.test:\n    - transform: [{ headers: { x-api-key: k1 } }]\n'
printf "$BROKER"'  edge.test: []\n' >"$FB_TMP/policy.yaml"
px_broker_proxy bcn

st=$(px_api_curl -H 'Connection: close' https://api.test/a)
check "a brokered name through an allowed CNAME: 200 ($st)" [ "$st" = 200 ]
SYNC=$FB_TMP/sync
mkdir -m 1777 "$SYNC"
px_guest "$NS" "$PY" "$(dirname "$0")/broker_client.py" api.test 198.51.100.10 \
	"$FB_TMP/sca.crt" get=/h1 wait="$SYNC/go" get=/h2 >"$FB_TMP/c.out" &
c=$!
px_wait_file "$SYNC/go.ready"
px_api_curl -H 'Connection: close' https://api.test/p >/dev/null # leaves one parked
before=$(px_reused)
printf "$BROKER" | px_curl_control "$SOCK" -X PUT --data-binary @- \
	http://proxy/policy >"$FB_TMP/put.out"
touch "$SYNC/go"
wait "$c"
check "a policy without the CNAME's target closes the live connection ($(tr '\n' ' ' <"$FB_TMP/c.out"))" \
	holds 'grep -qx "get /h1 200 k1" "$FB_TMP/c.out" && grep -Eq "^get /h2 (closed|error:)" "$FB_TMP/c.out"'
check "... the change reports it ($(cat "$FB_TMP/put.out"))" grep -q '"closed":1}' "$FB_TMP/put.out"
check "... and /h2 never reached the origin" px_absent '"/h2"' "$ORIGIN_LOG"
st=$(px_api_curl https://api.test/b)
check "the next request is refused, not sent on the parked connection ($st)" [ "$st" = 502 ]
check "... the parked one is gone: not reused ($before, then $(px_reused))" \
	[ "$(px_reused)" = "$before" ]
up=$(ip netns exec "$NS" ss -Htn state established dst 198.51.100.10:443 | wc -l)
check "... no upstream connection stays open ($up)" [ "$up" = 0 ]
check "... /b never reached the origin" px_absent '"/b"' "$ORIGIN_LOG"
check "... the audit line says why" \
	grep -q '"event.reason":"cname-not-allowed"' "$AUDIT"

kill -TERM "$PROXY_PID" && wait "$PROXY_PID"
check "the proxy stopped cleanly (status $?)" [ $? = 0 ]
PROXY_PID=
