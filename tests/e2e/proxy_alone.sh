#!/bin/bash
# proxy_alone.sh — firebreak-proxy by itself in a namespace of the test's
# own: local clients (as nobody) are redirected to it by a plain nft rule,
# origins and a DNS server listen on loopback addresses.  Covers what needs the
# proxy's own flags: peek deadline and limits, fragmented hellos,
# Postgres, per-request HTTP checks, the control API, SIGHUP, the audit log.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

px_netns fbp
for a in 10 20 30 53; do ip -n "$NS" addr add 198.51.100.$a/32 dev lo; done
ip -n "$NS" addr add 2001:db8:100::10/128 dev lo nodad
# Guests are uid 65534: their TCP to the origin ports goes to the proxy.
ip netns exec "$NS" nft -f - <<'NFT' || { not_ok setup nft; exit 1; }
table ip fbtest {
	chain out {
		type nat hook output priority -100;
		meta skuid 65534 tcp dport { 80, 443, 5432, 8443 } redirect to :15001
	}
}
table ip6 fbtest {
	chain out {
		type nat hook output priority -100;
		meta skuid 65534 tcp dport 443 redirect to :15001
	}
}
NFT

px_certs allowed.test other.test bulk.test || { not_ok setup certs; exit 1; }
px_origins "$NS" https,198.51.100.10,443,allowed.test \
	https,198.51.100.20,443,other.test http,198.51.100.10,80 \
	pg,198.51.100.10,5432,allowed.test bulk,198.51.100.10,8443,bulk.test \
	sink,198.51.100.30,443 pgsink,198.51.100.30,5432 ||
	{ not_ok setup origins; exit 1; }
fb_serve_in "$NS" tcp,198.51.100.30,80,bare101 || { not_ok setup bare101; exit 1; }
px_dns "$NS" 198.51.100.53 allowed.test=198.51.100.10 \
	other.test=198.51.100.20 bulk.test=198.51.100.10 \
	alias.test=cname:other.test sink.test=198.51.100.30 \
	bulkvia.test=cname:bulk.test \
	slow.test=delay:1:198.51.100.10 ||
	{ not_ok setup dns; exit 1; }

POLICY=$FB_TMP/policy.yaml
cat >"$POLICY" <<'P'
allow:
  - allowed.test
  - bulk.test
  - alias.test
  - sink.test
P
SOCK=$FB_TMP/control.sock
AUDIT=$FB_TMP/audit.log
ip netns exec "$NS" "$FB_BUILD/bin/firebreak-proxy" --no-nft \
	--policy "$POLICY" --listen 127.0.0.1:15001 --listen '[::1]:15001' \
	--control "$SOCK" \
	--audit-log "$AUDIT" --sandbox-id alone --resolver 198.51.100.53 \
	--public 198.51.100.0/24 --public 2001:db8:100::/64 --peek-timeout 1000 --max-peeks 50 \
	--max-conns 45 \
	--idle-timeout 30 2>"$FB_TMP/proxy.err" &
PROXY_PID=$!
px_wait_file "$SOCK" || { not_ok setup "proxy did not start: $(cat "$FB_TMP/proxy.err")"; exit 1; }

C() { px_client "$NS" "$@"; }
ORIGIN="origin 198.51.100.10 allowed.test"

out=$(C tls 198.51.100.10 443 allowed.test "$PX_CA")
check "allowed name, end-to-end TLS verified by the client" [ "$out" = "$ORIGIN" ]
out=$(C tls 198.51.100.20 443 allowed.test "$PX_CA")
check "SNI allowed.test sent to another address reaches allowed.test's origin" [ "$out" = "$ORIGIN" ]
check "... and the log says both: where the guest meant, where the proxy went" \
	grep -q '"destination.ip":"198.51.100.20","destination.port":443,"server.ip":"198.51.100.10","server.port":443,"destination.domain":"allowed.test"' \
	"$AUDIT"
out=$(C tls 2001:db8:100::10 443 allowed.test "$PX_CA")
check "IPv6: the original destination is found, the name routes to its origin" [ "$out" = "$ORIGIN" ]
out=$(C frag 198.51.100.10 443 allowed.test "$PX_CA" seg)
check "ClientHello in 1-byte TCP segments" [ "$out" = "$ORIGIN" ]
out=$(C frag 198.51.100.10 443 allowed.test "$PX_CA" rec)
check "ClientHello in 1-byte TLS records" [ "$out" = "$ORIGIN" ]
out=$(C pg 198.51.100.10 5432 allowed.test "$PX_CA")
check "Postgres SSLRequest, then TLS to an allowed name" [ "$out" = "$ORIGIN" ]
start=${EPOCHREALTIME/./}
out=$(C pg 198.51.100.10 5432 allowed.test "$PX_CA" one)
ms=$(((${EPOCHREALTIME/./} - start) / 1000))
check "... the hello in the same write as the SSLRequest, at once (${ms} ms)" \
	holds '[ "$out" = "$ORIGIN" ] && [ "$ms" -lt 900 ]'
out=$(C tls 198.51.100.20 443 other.test "$PX_CA")
check "refused name gets the access_denied alert" grep -q "ACCESS_DENIED\|access denied" <<<"$out"

out=$(C http2 198.51.100.10 80 allowed.test other.test | tr '\n' '|')
check "plain HTTP: the second request's Host is checked too" \
	[ "$out" = "HTTP/1.1 200 OK|HTTP/1.1 403 Forbidden reason=not-allowed|" ]
# bulk.test is allowed too and resolves to the same address, but this
# connection was dialled for allowed.test: never sent there
out=$(C http2 198.51.100.10 80 allowed.test bulk.test | tr '\n' '|')
check "plain HTTP: a second request for another allowed name gets 421" \
	[ "$out" = "HTTP/1.1 200 OK|HTTP/1.1 421 Misdirected Request reason=host-changed|" ]
# An absolute-form target wins over Host for the proxy and for nginx, but
# nginx hands the Host on to what it proxies to: a later request must not
# name allowed.test in its target and other.test in its Host.
out=$(C raw 198.51.100.10 80 'GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET http://allowed.test/ HTTP/1.1\r\nHost: other.test\r\n\r\n' |
	tr '\n' '|')
check "plain HTTP: a later absolute-form target and Host must agree" \
	holds '[[ $out == "HTTP/1.1 200 OK origin 198.51.100.10 host=allowed.test|HTTP/1.1 403 Forbidden reason=ambiguous-host "* ]]'
# A declined upgrade leaves HTTP: the request behind it, in the same
# write, is checked (it reached the origin unchecked before); an accepted
# one (101) makes the rest opaque bytes, echoed by the origin.
out=$(C upgrade 198.51.100.10 80 / other.test)
check "plain HTTP: a request behind a declined Upgrade is checked" \
	holds '[[ $out == *"403 Forbidden"* && $out != *"host=other.test"* ]]'
out=$(C upgrade 198.51.100.10 80 /upgrade other.test)
check "plain HTTP: after a 101 the bytes pass as they are" \
	holds '[[ $out == *"101 Switching Protocols"* && $out == *"Host: other.test"* ]]'
out=$(C upgrade 198.51.100.10 80 /upgrade-big other.test)
check "plain HTTP: so they do after a 101 with a 10 KB head" \
	holds '[[ $out == *"101 Switching Protocols"* && $out == *"Host: other.test"* ]]'
# A 101 without an Upgrade field switches nothing: nginx's "return 101"
# sends one and goes on reading requests, to any of its virtual hosts.
out=$(C upgrade 198.51.100.30 80 / other.test sink.test)
check "plain HTTP: a 101 without Upgrade leaves the next request checked" \
	holds '[[ $out == *"HTTP/1.1 101 "* && $out == *"403 Forbidden"* && $out != *"Host: other.test"* ]]'
# The relay reads into the peek buffer, grown only as a head needs: a
# 20 KB head after a small one is read whole; one past the parser's 32 KiB
# is refused, not forwarded.
# alias.test is allowed, but its answer is a CNAME to other.test, which is
# not: the DNS answer says NXDOMAIN, and a connection is not dialled there
out=$(C http2 198.51.100.20 80 alias.test alias.test | tr '\n' '|')
check "an allowed name whose answer goes through a refused CNAME is not dialled" \
	[ "$out" = "HTTP/1.1 403 Forbidden reason=cname-not-allowed|closed|" ]
out=$(C http2 198.51.100.10 80 allowed.test allowed.test 20000 | tr '\n' '|')
check "plain HTTP: a 20 KB second head is read whole and forwarded" \
	[ "$out" = "HTTP/1.1 200 OK|HTTP/1.1 200 OK|" ]
out=$(C http2 198.51.100.10 80 allowed.test allowed.test 40000 | tr '\n' '|')
check "plain HTTP: a 40 KB second head is refused" \
	[ "$out" = "HTTP/1.1 200 OK|HTTP/1.1 403 Forbidden reason=http-head-too-large|" ]
# A refused request behind others is answered after them: the origin is
# half-closed, answers what it was sent and closes, and only then does
# the refusal follow.  An origin that stays open after answering delays
# the refusal by the 5 s allowed for a pause in its answers, no longer.
PIPED="HTTP/1.1 200 OK origin 198.51.100.10 host=allowed.test"
out=$(C pipe 198.51.100.10 80 / allowed.test allowed.test other.test | tr '\n' '|')
check "plain HTTP pipelined: the answers to the allowed requests come before the 403" \
	holds '[[ $out == "$PIPED|$PIPED|HTTP/1.1 403 Forbidden reason=not-allowed firebreak: "*"|ms="* ]]'
ms=${out##*ms=}; ms=${ms%|}
check "plain HTTP pipelined: the origin's close lets the refusal go at once (${ms}ms)" \
	[ "$ms" -lt 2000 ]
out=$(C pipe 198.51.100.10 80 / allowed.test bulk.test | tr '\n' '|')
check "plain HTTP pipelined: a request for another host gets 421 after the answer before it" \
	holds '[[ $out == "$PIPED|HTTP/1.1 421 Misdirected Request reason=host-changed "* ]]'
out=$(C pipe 198.51.100.10 80 /linger allowed.test other.test | tr '\n' '|')
ms=${out##*ms=}; ms=${ms%|}
check "plain HTTP pipelined: an origin that stays open gets 5 s, not its 10 (${ms}ms)" \
	holds '[[ $out == "$PIPED|HTTP/1.1 403 Forbidden reason=not-allowed "* ]] &&
		[ "$ms" -ge 4500 ] && [ "$ms" -lt 8000 ]'
fb_wait_line '"event.type":"end".*"event.reason":"not-allowed"' "$AUDIT"
check "audit log: the connection ends for the refused request, with the answers' bytes" \
	holds 'grep "\"event.type\":\"end\"" "$AUDIT" | tail -1 |
		grep "\"event.reason\":\"not-allowed\".*\"firebreak.request_refused\":\"not-allowed\"" |
		grep -vq "\"destination.bytes\":0[,}]"'
# A guest that stops reading with an answer half delivered would find the
# refusal inside that answer: it gets the close alone.
out=$(C unread 198.51.100.10 80 /big other.test 6500)
check "plain HTTP pipelined: no refusal inside an answer the guest left unread ($out)" \
	holds '[[ $out == bytes=* && $out == *refusal=no ]] && [ "${out//[!0-9]/}" -lt 16777216 ]'
# A chunked body that goes wrong part-way: none of it goes, the answer to
# the head that did comes first, and the proxy carries on.
out=$(C raw 198.51.100.10 80 'POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nabc;x=1\x01\r\n' |
	tr '\n' '|')
check "plain HTTP: a chunked body malformed part-way is refused" \
	holds '[[ $out == "$PIPED|HTTP/1.1 403 Forbidden reason=http-malformed "* ]]'
out=$(C tls 198.51.100.10 443 allowed.test "$PX_CA")
check "... and the proxy goes on serving" [ "$out" = "$ORIGIN" ]

out=$(C big 198.51.100.10 443)
ms=${out#closed }
check "a ClientHello over 64 KiB is closed at once (${ms}ms)" holds '[ "${out%% *}" = closed ] && [ "$ms" -lt 900 ]'
# An upstream that takes none of a 60 KB hello: the dial deadline (the
# peek's, 1 s here) covers the replay too
out=$(C bighello 198.51.100.30 443 sink.test 60000)
ms=${out#closed }
check "a replay the upstream does not take is closed at the dial deadline ($out)" \
	holds '[ "${out%% *}" = closed ] && [ "$ms" -ge 900 ] && [ "$ms" -lt 2500 ]'
check "audit log: ... as replay-timeout" grep -q '"event.reason":"replay-timeout"' "$AUDIT"
out=$(C bighello 198.51.100.30 5432 sink.test 60000 pg)
ms=${out#closed }
check "... after a Postgres SSLRequest too ($out)" \
	holds '[ "${out%% *}" = closed ] && [ "$ms" -ge 900 ] && [ "$ms" -lt 2500 ]'
out=$(C slow 198.51.100.10 443)
ms=${out#closed }
check "a stalled peek is closed at the deadline (${ms}ms)" holds '[ "${out%% *}" = closed ] && [ "$ms" -ge 900 ] && [ "$ms" -lt 2500 ]'

C idle 198.51.100.10 443 40 >"$FB_TMP/idle.out" &
idle=$!
sleep 0.2
good=$(C tls 198.51.100.10 443 allowed.test "$PX_CA")
wait $idle
read -r word n ms early <"$FB_TMP/idle.out"
check "40 idle connections all closed at the deadline (${ms}ms)" holds '[ "$word" = closed ] && [ "$n" = 40 ] && [ "$ms" -lt 2500 ] && [ "$early" = 0 ]'
check "a good connection during the idle flood is served" [ "$good" = "$ORIGIN" ]
# --max-conns 45: the three past it are closed at once, the control
# socket answers while the guest holds all it may
C idle 198.51.100.10 443 48 >"$FB_TMP/cap.out" &
idle=$!
sleep 0.4
open=$(px_curl_control "$SOCK" http://x/stats | grep -o '"open":[0-9]*')
wait $idle
read -r word n ms early <"$FB_TMP/cap.out"
check "past --max-conns a connection is closed at once ($early of 48), the rest held ($open)" \
	holds '[ "$n" = 48 ] && [ "$early" = 3 ] && [ "$open" = "\"open\":45" ]'
check "audit log: ... as too-many-connections" \
	grep -q '"event.reason":"too-many-connections"' "$AUDIT"

# ---- control API ------------------------------------------------------
check "control socket is mode 0600" [ "$(stat -c %a "$SOCK")" = 600 ]
if px_guest "$NS" curl -sf --max-time 3 --unix-socket "$SOCK" http://x/policy >/dev/null 2>&1; then
	not_ok "the guest user cannot use the control socket"
else
	ok "the guest user cannot use the control socket"
fi
hdr=$(px_curl_control "$SOCK" -D - -o "$FB_TMP/get.json" http://x/policy)
check "GET /policy: ETag is the generation" grep -qi '^etag: "1"' <<<"$hdr"
check "GET /policy: the policy as JSON" grep -q '"allowed.test"' "$FB_TMP/get.json"
code=$(px_curl_control "$SOCK" -o /dev/null -w '%{http_code}' -X PATCH \
	-H 'If-Match: "7"' --data-binary '{"allow":{"other.test":[]}}' http://x/policy)
check "stale If-Match gets 412" [ "$code" = 412 ]
out=$(px_curl_control "$SOCK" -X PUT --data-binary $'allow:\n  - "api*.x"\n' http://x/policy)
check "invalid policy: 400 with LINE:COL, old policy kept" grep -q ':2:[0-9]*: ' <<<"$out"
out=$(C tls 198.51.100.10 443 allowed.test "$PX_CA")
check "after the 400 the old policy is still in force" [ "$out" = "$ORIGIN" ]
out=$(px_curl_control "$SOCK" -X PATCH -H 'If-Match: "1"' \
	--data-binary '{"allow":{"other.test":[]}}' http://x/policy)
check "PATCH adds a domain (generation 2)" grep -q '"generation":2' <<<"$out"
out=$(C tls 198.51.100.20 443 other.test "$PX_CA")
check "the patched-in domain passes" [ "$out" = "origin 198.51.100.20 other.test" ]

# download SNI [CA]: a guest's large GET from the bulk origin, its
# certificate checked against CA if given; prints "streaming" once a
# megabyte is in, then "cut N" when the connection ends.
download() {
	px_guest "$NS" "$PY" -c '
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2] if len(sys.argv) > 2 else None)
if len(sys.argv) == 2:
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("198.51.100.10", 8443)), server_hostname=sys.argv[1])
s.sendall(b"GET / HTTP/1.1\r\nHost: bulk.test\r\n\r\n")
total = 0
s.settimeout(10)
try:
    while (d := s.recv(65536)):
        total += len(d)
        if total > 1000000 and total < 1070000:
            print("streaming", flush=True)
except (OSError, ssl.SSLError):
    pass
print("cut", total, flush=True)
' "$@"
}

# a running download, then deny-all
download bulk.test "$PX_CA" >"$FB_TMP/bulk.out" &
bulk=$!
for _ in $(seq 100); do grep -q streaming "$FB_TMP/bulk.out" && break; sleep 0.05; done
out=$(px_curl_control "$SOCK" -X PUT --data-binary 'deny-all' http://x/policy)
check "PUT deny-all answers with the connections it closed" grep -q '"closed":[1-9]' <<<"$out"
timeout 5 tail --pid=$bulk -f /dev/null
check "PUT deny-all cuts a running download" grep -q '^cut ' "$FB_TMP/bulk.out"
out=$(C tls 198.51.100.10 443 allowed.test "$PX_CA")
check "deny-all refuses new connections" grep -q "ACCESS_DENIED\|access denied" <<<"$out"

stats=$(px_curl_control "$SOCK" http://x/stats)
check "GET /stats counts by outcome and reason" grep -q '"not-allowed":[1-9]' <<<"$stats"
metrics=$(px_curl_control "$SOCK" http://x/metrics)
check "GET /metrics in Prometheus text" grep -q '^firebreak_policy_generation 3$' <<<"$metrics"
check "... the resolver's queries among them" \
	grep -q '^firebreak_dns_upstream_queries_total{outcome="answered"} [1-9]' <<<"$metrics"
check "GET /stats: the resolver's queries too" \
	grep -q '"upstream":{"queries":[1-9][0-9]*,"failed":[0-9]*,"rate_limited":0}' <<<"$stats"
conns=$(px_curl_control "$SOCK" http://x/connections)
check "GET /connections is a JSON array" "$PY" -c 'import json,sys; assert isinstance(json.loads(sys.argv[1]), list)' "$conns"

out=$(C nosni 198.51.100.10 443)
check "deny-all refuses a connection without a name" grep -q "ACCESS_DENIED\|access denied" <<<"$out"
px_curl_control "$SOCK" -o /dev/null -X PUT --data-binary 'allow-all' http://x/policy
out=$(C tls 198.51.100.20 443 other.test "$PX_CA")
check "allow-all: any name passes" [ "$out" = "origin 198.51.100.20 other.test" ]
out=$(C nosni 198.51.100.10 443)
check "allow-all: a connection without a name goes to its own destination" \
	[ "$out" = "$ORIGIN" ]
check "allow-all: still logged" grep -q '"event.reason":"allow-all"' "$AUDIT"

# SIGHUP reopens the audit log, as logrotate expects.  The policy file has
# not changed since it was read: the policy set through the socket
# (allow-all, generation 4) stays, where it used to give way to the file.
mv "$AUDIT" "$AUDIT.1"
kill -HUP "$PROXY_PID"
for _ in $(seq 50); do
	grep -q 'SIGHUP: .* unchanged since it was last read; generation 4 stays' \
		"$FB_TMP/proxy.err" && break
	sleep 0.05
done
out=$(C tls 198.51.100.20 443 other.test "$PX_CA")
check "SIGHUP with the policy file unchanged keeps the policy set through the socket" \
	[ "$out" = "origin 198.51.100.20 other.test" ]
check "SIGHUP reopens the audit log (logrotate)" grep -q '"tls.client.server_name":"other.test"' "$AUDIT"
# A changed file is applied.
printf '  - extra.test\n' >>"$POLICY"
kill -HUP "$PROXY_PID"
for _ in $(seq 50); do
	grep -q '"policy.generation":5' "$AUDIT" 2>/dev/null && break
	sleep 0.05
done
out=$(C tls 198.51.100.10 443 allowed.test "$PX_CA")
check "SIGHUP applies a changed policy file" [ "$out" = "$ORIGIN" ]
out=$(C tls 198.51.100.20 443 other.test "$PX_CA")
check "... which no longer allows other.test" grep -q "ACCESS_DENIED\|access denied" <<<"$out"
cat "$AUDIT" >>"$AUDIT.1"
AUDIT=$AUDIT.1
check "audit log: one JSON object per line" px_json_lines "$AUDIT"
check "audit log: a close line with bytes and duration" \
	grep -q '"event.type":"end".*"event.duration":[0-9]*,"source.bytes":[1-9]' "$AUDIT"
check "audit log: policy change names who and both generations" \
	grep -q '"event.action":"policy".*"policy.generation":2.*"user.name":"control uid=0 pid=[0-9]* PATCH","policy.previous_generation":1' "$AUDIT"
check "audit log: the peek timeout is logged" grep -q '"event.reason":"peek-timeout"' "$AUDIT"
check "audit log: the 412 PATCH is a denied policy line" \
	grep -q '"event.action":"policy","event.outcome":"denied".*"user.name":"control uid=0 pid=[0-9]* PATCH","error.message":"stale If-Match: generation is 1"' "$AUDIT"
check "audit log: the 400 PUT is a denied policy line with its position" \
	grep -q '"event.action":"policy","event.outcome":"denied".*"user.name":"control uid=0 pid=[0-9]* PUT","error.message":"invalid policy: 1 problem(s), the first at 2:[0-9]*"' "$AUDIT"
if grep -q 'api\*\.x' "$AUDIT"; then
	not_ok "audit log: a rejected policy's content is not logged"
else
	ok "audit log: a rejected policy's content is not logged"
fi

# A policy change that lands while a connection's name is resolving: the
# connection goes on under the new policy, and its decision line names the
# new policy's rule with the new generation, not the old rule.
px_curl_control "$SOCK" -o /dev/null -X PUT --data-binary $'allow:\n  - slow.test\n' http://x/policy
C http2 198.51.100.10 80 slow.test slow.test >"$FB_TMP/slow.out" &
slow=$!
sleep 0.3
px_curl_control "$SOCK" -o /dev/null -X PUT --data-binary $'allow:\n  - "*.test"\n' http://x/policy
wait "$slow"
check "a connection resolving across a policy change passes under the new one" \
	grep -q '^HTTP/1.1 200 OK' "$FB_TMP/slow.out"
check "its decision line carries the new generation and the new rule" \
	"$PY" -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
start = [l for l in lines if l.get("destination.domain") == "slow.test"
         and l.get("event.type") == "start"]
assert len(start) == 1, start
assert start[0]["policy.generation"] == 7, start
assert start[0]["rule.name"] == "*.test", start
end = [l for l in lines if l.get("destination.domain") == "slow.test"
       and l.get("event.type") == "end"]
assert end and end[0]["rule.name"] == "*.test", end
' "$FB_TMP/audit.log"

# A connection made straight to the proxy's port, not redirected, has no
# destination but the proxy itself: refused whatever it names, so that a
# policy allowing the gateway's address cannot have the proxy dial
# itself again and again.
px_curl_control "$SOCK" -o /dev/null -X PUT \
	--data-binary $'allow:\n  - allowed.test\nsubnets:\n  allow: [127.0.0.0/8]\n' http://x/policy
out=$(ip netns exec "$NS" "$PY" -c '
import socket
s = socket.create_connection(("127.0.0.1", 15001))
try:
    s.sendall(b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
    print(s.recv(4096).decode() or "closed")
except ConnectionResetError:
    print("closed")
')
check "a connection straight to the proxy's port is closed, under a policy allowing it ($out)" \
	[ "$out" = closed ]
check "... as not redirected, once" \
	[ "$(grep -c '"event.reason":"not-redirected"' "$FB_TMP/audit.log")" = 2 ]
px_curl_control "$SOCK" -o /dev/null -X PUT --data-binary $'allow:\n  - "*.test"\n' http://x/policy

# A connection reached through a CNAME is judged again with its chain: a
# policy that still allows its name but no longer the name the CNAME led
# to cuts it, as it would refuse it new.
download bulkvia.test >"$FB_TMP/via.out" & # bulk.test's certificate
via=$!
for _ in $(seq 100); do grep -q streaming "$FB_TMP/via.out" && break; sleep 0.05; done
out=$(px_curl_control "$SOCK" -X PUT --data-binary $'allow:\n  - bulkvia.test\n' http://x/policy)
check "a policy that drops the CNAME's target cuts a connection through it ($out)" \
	grep -q '"closed":1' <<<"$out"
timeout 5 tail --pid=$via -f /dev/null
check "... logged as cut by the policy" holds \
	'grep "\"event.type\":\"end\"" "$FB_TMP/audit.log" | grep "\"bulkvia.test\"" |
		grep -q "\"event.reason\":\"policy-changed\""'

kill "$PROXY_PID"
wait "$PROXY_PID"
rc=$?
PROXY_PID=
check "the proxy exits cleanly on SIGTERM (status $rc, no leaks)" [ "$rc" = 0 ]
check "the proxy removed its control socket" [ ! -e "$SOCK" ]

# The proxy holds the policy's secrets: a crash leaves no core file.
# (Only where cores go to a file in the working directory; a sanitizer
# build sets its own core limit.)
if [ "$(cat /proc/sys/kernel/core_pattern)" = core ]; then
	mkdir "$FB_TMP/cwd"
	bin=$(realpath "$FB_BUILD/bin/firebreak-proxy")
	(cd "$FB_TMP/cwd" && ulimit -c unlimited &&
		exec ip netns exec "$NS" "$bin" --no-nft \
		--policy "$POLICY" --listen 127.0.0.1:15001 --control "$FB_TMP/core.sock" \
		--audit-log - --resolver 127.0.0.1 >/dev/null 2>&1) &
	crash=$!
	px_wait_file "$FB_TMP/core.sock"
	kill -QUIT "$crash"
	{ wait "$crash"; } 2>/dev/null
	rc=$?
	check "a proxy killed by SIGQUIT (status $rc) leaves no core file" \
		holds '[ "$rc" = $((128 + 3)) ] && [ -z "$(ls -A "$FB_TMP/cwd")" ]'
fi
