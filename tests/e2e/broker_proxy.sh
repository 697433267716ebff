#!/bin/bash
# broker_proxy.sh — firebreak-proxy by itself, brokering: what needs the
# proxy's own flags or its control socket.  A request head that does not
# arrive within the peek deadline gets 408; a policy change re-decides live
# brokered connections: new rules apply from the next request on the same
# connection, and a name no longer brokered closes it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

px_netns fbb
for a in 10 53; do ip -n "$NS" addr add 198.51.100.$a/32 dev lo; done
px_redirect_guests || { not_ok setup nft; exit 1; }

px_certs api.test || { not_ok setup certs; exit 1; }
px_sandbox_ca api.test || { not_ok setup "sandbox CA"; exit 1; }

px_echo_origin

policy() {
	printf 'allow:\n  api.test:\n    - transform: [{ headers: { x-api-key: %s } }]\n' "$1"
}
policy v1 >"$FB_TMP/policy.yaml"
px_broker_proxy brk --peek-timeout 1000

SYNC=$FB_TMP/sync           # where the guest (nobody) signals it waits
mkdir -m 1777 "$SYNC"
client() {
	px_guest "$NS" "$PY" "$(dirname "$0")/broker_client.py" api.test \
		198.51.100.10 "$FB_TMP/sca.crt" "$@"
}

t0=$(date +%s%N)
out=$(client partial)
ms=$((($(date +%s%N) - t0) / 1000000))
check "an unfinished request head gets 408" [ "$out" = "partial 408" ]
check "... after the 1 s deadline, not much later (${ms} ms)" \
	holds '[ "$ms" -ge 900 ] && [ "$ms" -lt 4000 ]'

# One connection across a policy change that keeps the name brokered.
# "UP DOWN" of /stats
stats_bytes() {
	px_curl_control "$SOCK" http://proxy/stats |
		sed -n 's/.*"bytes":{"up":\([0-9]*\),"down":\([0-9]*\)}.*/\1 \2/p'
}
before=$(stats_bytes)
client get=/a wait="$SYNC/go1" get=/b >"$FB_TMP/c1.out" &
c1=$!
px_wait_file "$SYNC/go1.ready"
after=$(stats_bytes)
check "/stats counts the bytes of a brokered connection still open (up down: $before, then $after)" \
	holds '[ "${after% *}" -gt "${before% *}" ] && [ "${after#* }" -gt "${before#* }" ]'
policy v2 | px_curl_control "$SOCK" -X PUT --data-binary @- http://proxy/policy \
	>"$FB_TMP/put1.out"
touch "$SYNC/go1"
wait "$c1"
check "before the change: the first rule's value" grep -qx 'get /a 200 v1' "$FB_TMP/c1.out"
check "after the change, same connection: the new rule's value" \
	grep -qx 'get /b 200 v2' "$FB_TMP/c1.out"

# ... and across one that stops brokering the name.
client get=/c wait="$SYNC/go2" get=/d >"$FB_TMP/c2.out" &
c2=$!
px_wait_file "$SYNC/go2.ready"
printf 'allow:\n  - other.test\n' |
	px_curl_control "$SOCK" -X PUT --data-binary @- http://proxy/policy \
	>"$FB_TMP/put2.out"
touch "$SYNC/go2"
wait "$c2"
check "a name no longer brokered: the live connection is closed" \
	grep -Eq '^get /d (closed|error:)' "$FB_TMP/c2.out"
check "... and the request never reached the origin" \
	bash -c "! grep -q '\"/d\"' '$FB_TMP/origin.log'"
check "the policy change reports the closed connection" \
	grep -q '"closed":1}' "$FB_TMP/put2.out"
check "audit: the brokered connection's end names policy-changed" \
	grep -q '"event.reason":"policy-changed".*"firebreak.brokered":true' "$FB_TMP/audit.log"
check "no name brokered any more: the CA is reissued for none (\"invalid\")" \
	bash -c "openssl x509 -in '$FB_TMP/sca.crt' -noout -ext nameConstraints |
		grep -q 'DNS:invalid' && ! grep -q api.test <(openssl x509 -in '$FB_TMP/sca.crt' -noout -ext nameConstraints)"

# A reissue that cannot be written fails the change, and nothing of it
# stays: the certificate's path is a directory for a moment.
mv "$FB_TMP/sca.crt" "$FB_TMP/sca.crt.keep" && mkdir "$FB_TMP/sca.crt"
policy v3 | px_curl_control "$SOCK" -w '%{http_code}\n' -X PUT \
	--data-binary @- http://proxy/policy >"$FB_TMP/put3.out"
rmdir "$FB_TMP/sca.crt" && mv "$FB_TMP/sca.crt.keep" "$FB_TMP/sca.crt"
check "an unwritable CA certificate: 500 naming the reissue" \
	bash -c "grep -q 'reissuing the sandbox CA: .*sca.crt' '$FB_TMP/put3.out' &&
		[ \"\$(tail -n1 '$FB_TMP/put3.out')\" = 500 ]"
px_curl_control "$SOCK" http://proxy/policy >"$FB_TMP/get3.out"
check "... and the previous policy stays in force" \
	bash -c "grep -q other.test '$FB_TMP/get3.out' && ! grep -q api.test '$FB_TMP/get3.out'"
# A clean stop: under the sanitizers a leak would show in its stderr.
kill -TERM "$PROXY_PID" && wait "$PROXY_PID"
check "the proxy stopped cleanly (status $?)" [ $? = 0 ]
PROXY_PID=
check "the proxy wrote nothing to stderr" [ ! -s "$FB_TMP/proxy.err" ]
