#!/bin/bash
# proxy_memory.sh — what an idle firebreak-proxy keeps resident, started as
# a sandbox starts it (its nft table for a guest link, the audit log, the
# sandbox CA), and that it still serves, spliced and brokered, once it has
# given its start-up pages back.  The target is the issue's: RSS idle
# <= 2 MiB.  A sanitizer build carries shadow memory and a runtime of its
# own, so there only the serving is checked.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

px_netns fbm
for a in 10 20 53; do ip -n "$NS" addr add 198.51.100.$a/32 dev lo; done
ip -n "$NS" link add guest0 type veth peer name guest0-peer &&
ip -n "$NS" addr add 10.201.0.1/24 dev guest0 &&
ip -n "$NS" link set guest0 up || { not_ok setup "guest link"; exit 1; }
px_redirect_guests || { not_ok setup nft; exit 1; }

px_certs plain.test api.test || { not_ok setup certs; exit 1; }
px_sandbox_ca api.test || { not_ok setup "sandbox CA"; exit 1; }
px_origins "$NS" https,198.51.100.10,443,plain.test \
	https,198.51.100.20,443,api.test || { not_ok setup origins; exit 1; }
px_dns "$NS" 198.51.100.53 plain.test=198.51.100.10 api.test=198.51.100.20 ||
	{ not_ok setup dns; exit 1; }

cat >"$FB_TMP/policy.yaml" <<'P'
allow:
  plain.test:
  api.test:
    - transform: [{ headers: { x-api-key: k } }]
P
SOCK=$FB_TMP/control.sock
ip netns exec "$NS" "$FB_BUILD/bin/firebreak-proxy" --nft --guest-if guest0 \
	--gateway 10.201.0.1 --policy "$FB_TMP/policy.yaml" \
	--listen 127.0.0.1:15001 --dns-listen 10.201.0.1:15053 \
	--control "$SOCK" --audit-log "$FB_TMP/audit.log" --sandbox-id mem \
	--resolver 198.51.100.53 --public 198.51.100.0/24 \
	--ca-cert "$FB_TMP/sca.crt" --ca-key "$FB_TMP/sca.key" \
	--trust-bundle "$FB_TMP/bundle.pem" --upstream-ca "$PX_CA" \
	2>"$FB_TMP/proxy.err" &
PROXY_PID=$!
px_wait_file "$SOCK" || { not_ok setup "proxy did not start: $(cat "$FB_TMP/proxy.err")"; exit 1; }
sleep 0.5 # the pages go back just after the socket appears

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$PROXY_PID/status"; }
idle=$(rss_kib)
if grep -q 'lib[at]san' "/proc/$PROXY_PID/maps"; then
	skip "idle VmRSS <= 2048 KiB" "sanitizer build ($idle KiB)"
else
	check "idle VmRSS <= 2048 KiB (is $idle KiB)" [ "${idle:-99999}" -le 2048 ]
fi

out=$(px_client "$NS" tls 198.51.100.10 443 plain.test "$PX_CA")
check "spliced TLS after the start-up pages went back" \
	[ "$out" = "origin 198.51.100.10 plain.test" ]
out=$(px_guest "$NS" curl -sS --max-time 10 --cacert "$FB_TMP/sca.crt" \
	--resolve api.test:443:198.51.100.20 https://api.test/ 2>&1)
check "brokered request after the start-up pages went back" \
	[ "$out" = "origin 198.51.100.20 api.test" ]
check "the proxy is still running (VmRSS $(rss_kib) KiB after serving)" \
	kill -0 "$PROXY_PID"
kill "$PROXY_PID"
wait "$PROXY_PID"
rc=$?
check "a clean stop on SIGTERM (exit status $rc)" [ "$rc" = 0 ]
PROXY_PID=
check "no sanitizer report" px_absent 'Sanitizer\|runtime error' "$FB_TMP/proxy.err"
