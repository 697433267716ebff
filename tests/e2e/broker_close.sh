#!/bin/bash
# broker_close.sh — firebreak-proxy by itself, brokering responses whose end
# is the origin closing the connection: HTTP/1.0, HTTP/1.1 with neither
# Content-Length nor chunked, and the bytes after a WebSocket 101.  The
# origin sends a few MiB and closes at once; the guest reads slowly, so the
# proxy's buffers toward it are full when the origin's FIN arrives.  Every
# byte must still reach the guest, the proxy must end the guest's TLS with
# close_notify (an abrupt end would pass a cut body for a whole one), and
# the audit log must carry the brokered request with all its bytes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

BIG=$((4 * 1024 * 1024))

px_netns fbc
for a in 10 53; do ip -n "$NS" addr add 198.51.100.$a/32 dev lo; done
# Send buffers of at most 64 KiB in this namespace: the bytes the guest has
# not taken back up into the proxy's own buffers instead of vanishing into
# megabytes of kernel buffer.  Receive buffers start at 8 MiB, so the
# origin's bytes fit in the proxy's upstream socket and the origin closes
# long before the guest is done.
ip netns exec "$NS" sysctl -qw net.ipv4.tcp_wmem="4096 16384 65536" \
	net.ipv4.tcp_rmem="4096 8388608 33554432" >/dev/null ||
	{ not_ok setup "tcp_wmem, tcp_rmem"; exit 1; }
px_redirect_guests || { not_ok setup nft; exit 1; }

px_certs api.test || { not_ok setup certs; exit 1; }
px_sandbox_ca api.test || { not_ok setup "sandbox CA"; exit 1; }

ORIGIN_LOG=$FB_TMP/origin.log
ip netns exec "$NS" "$PY" "$PX_DIR/close_origin.py" "$FB_TMP/origin.ready" \
	"$ORIGIN_LOG" "$PX_CERTS/api.test.pem" "$PX_CERTS/api.test.key" \
	198.51.100.10,443 &
FB_PIDS+=($!)
px_wait_file "$FB_TMP/origin.ready" || { not_ok setup origin; exit 1; }
px_dns "$NS" 198.51.100.53 api.test=198.51.100.10 || { not_ok setup dns; exit 1; }

printf 'allow:\n  api.test:\n    - transform: [{ headers: { x-api-key: k1 } }]\n' \
	>"$FB_TMP/policy.yaml"
px_broker_proxy brc

# What the origin logged for PATH: "HEAD N SHA256 CLOSED_AT".
origin_sent() {
	"$PY" -c 'import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["path"] == sys.argv[2]:
        print(r["head"], r["n"], r["sha256"], "%.6f" % r["closed_at"])' \
		"$ORIGIN_LOG" "$1"
}

# What the audit log says of PATH: "STATUS RESPONSE_BYTES END_REASON" from
# its last request line and the end line of the same connection.
audited() {
	"$PY" -c 'import json, sys
req, ends = None, {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("event.action") == "request" and r.get("url.path") == sys.argv[2]:
        req = r
    elif r.get("event.action") == "connection" and r.get("event.type") == "end":
        ends[r["event.id"]] = r["event.reason"]
if req:
    print(req.get("http.response.status_code", "-"),
          req.get("http.response.bytes", "-"),
          ends.get(req["event.id"], "-"))' "$AUDIT" "$1"
}

# $1 is set and equals $2.
same() { [ -n "$1" ] && [ "$1" = "$2" ]; }

# One slow guest reading PATH ("ws" for the upgraded stream); its checks.
slow_read() {
	local what=$1 path=$2 status=$3 ws=${4:-}
	local got sent g_status g_len g_sha g_half g_end o_head o_n o_sha o_closed
	got=$(px_guest "$NS" "$PY" "$PX_DIR/close_client.py" api.test \
		198.51.100.10 "$FB_TMP/sca.crt" "$path" $ws)
	sent=$(origin_sent "$path")
	read -r g_status g_len g_sha g_half g_end <<<"$got"
	read -r o_head o_n o_sha o_closed <<<"$sent"
	echo "# $what: guest '$got', origin '$sent', audit '$(audited "$path")'"
	check "$what: the guest gets $status" [ "${g_status:-}" = "$status" ]
	check "$what: the guest gets all ${o_n:-?} bytes (got ${g_len:-none})" \
		same "${o_n:-}" "${g_len:-}"
	check "$what: ... and exactly the origin's bytes (sha256)" \
		same "${o_sha:-}" "${g_sha:-}"
	check "$what: the proxy ends the guest's TLS with close_notify" \
		[ "${g_end:-}" = eof ]
	if [ "${o_n:-0}" -ge "$BIG" ]; then
		# Without this the test would prove nothing: the close must
		# have reached the proxy while the guest was still reading.
		check "$what: the origin had closed before the guest read half" \
			"$PY" -c 'import sys; sys.exit(not 0 < float(sys.argv[1]) < float(sys.argv[2]))' \
			"${o_closed:-0}" "${g_half:-0}"
	fi
}

slow_read "HTTP/1.0, close-delimited" "/h10/$BIG" 200
slow_read "HTTP/1.1, neither Content-Length nor chunked" "/h11/$BIG" 200
slow_read "WebSocket 101, stream the origin closes" "/ws/$BIG" 101 ws
# Small enough that head, body and close leave in one TLS record: the
# body sits behind the head in what the proxy read when the close comes.
slow_read "HTTP/1.0, head, body and close in one record" /h10/3000 200
slow_read "HTTP/1.1 unframed, head, body and close in one record" /h11/3000 200
slow_read "WebSocket 101, head, bytes and close in one record" /ws/3000 101 ws

# A response's line is written once it is complete, head and body
# counted; an upgraded stream's at its 101, the handshake counted (the
# stream's bytes are in the connection's end line).  One line each.
for path in "/h10/$BIG" "/h11/$BIG" "/ws/$BIG" /h10/3000 /h11/3000 /ws/3000; do
	read -r o_head o_n _ <<<"$(origin_sent "$path")"
	status=200 bytes=$((${o_head:-0} + ${o_n:-0}))
	[ "${path#/ws/}" != "$path" ] && status=101 bytes=${o_head:-0}
	check "audit: $path brokered, $status, $bytes bytes, closed cleanly" \
		[ "$(audited "$path")" = "$status $bytes closed" ]
	check "audit: one request line for $path" \
		[ "$(grep -c "\"event.action\":\"request\".*\"url.path\":\"$path\"" "$AUDIT")" = 1 ]
done
check "audit: every request line names the rule and the injected header" \
	[ "$(grep -c '"event.action":"request".*"rule.name":"api.test\[0\]","firebreak.injected":"x-api-key"' "$AUDIT")" -ge 6 ]

# A brokered request whose answer does not end as framed is on record all
# the same (the line is the only one naming its path and the header added),
# with why it ended and the status the guest saw.  cut_read METHOD PATH
# LENGTH SENT READ: a guest sends a head (Content-Length LENGTH, SENT bytes
# of the body), reads READ bytes (all: until the end) and prints
# "bytes=N 502=yes|no".
cut_read() {
	px_guest "$NS" "$PY" -c '
import socket, ssl, sys
method, path, length, sent, want = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ctx = ssl.create_default_context(cafile=sys.argv[6])
s = ctx.wrap_socket(socket.create_connection(("198.51.100.10", 443), timeout=10),
                    server_hostname="api.test")
head = "%s %s HTTP/1.1\r\nHost: api.test\r\n" % (method, path)
if length:
    head += "Content-Length: %d\r\n" % length
s.sendall(head.encode() + b"\r\n" + b"x" * sent)
data = b""
try:
    while want == "all" or len(data) < int(want):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except (OSError, ssl.SSLError):
    pass
s.close()
print("bytes=%d 502=%s" % (len(data), "yes" if b"HTTP/1.1 502" in data else "no"))
' "$@" "$FB_TMP/sca.crt"
}
# request_line PATH: "OUTCOME STATUS REASON" of PATH's request lines
request_line() {
	"$PY" -c 'import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("event.action") == "request" and r.get("url.path") == sys.argv[2]:
        print(r["event.outcome"], r.get("http.response.status_code", "-"),
              r["event.reason"], r.get("firebreak.injected", "-"))' "$AUDIT" "$1"
}
settle() { sleep 0.3; }	# the lines of a loop iteration go out after it

out=$(cut_read GET /cut/3000 0 0 all)
settle
check "an answer the origin cuts short reaches the guest as far as it went ($out)" \
	grep -Eqx 'bytes=30[0-9]{2} 502=no' <<<"$out"
check "audit: its request line, the status relayed and why it ended ($(request_line /cut/3000))" \
	[ "$(request_line /cut/3000)" = "allowed 200 upstream-closed x-api-key" ]
out=$(cut_read POST /cut/2000 100000 100 all)
settle
check "an answer cut short while the body goes up: no 502 inside it ($out)" \
	grep -Eqx 'bytes=20[0-9]{2} 502=no' <<<"$out"
check "audit: ... logged as the 200 it was ($(request_line /cut/2000))" \
	[ "$(request_line /cut/2000)" = "allowed 200 upstream-closed x-api-key" ]
out=$(cut_read GET "/h11/$BIG" 0 0 1000)
for _ in $(seq 50); do [ -n "$(request_line "/h11/$BIG" | sed -n 2p)" ] && break; sleep 0.05; done
check "audit: a guest that leaves during the answer leaves its request on record ($(request_line "/h11/$BIG" | sed -n 2p))" \
	grep -Eqx 'allowed 200 client-(closed|error) x-api-key' <<<"$(request_line "/h11/$BIG" | sed -n 2p)"

# One end line per brokered connection, naming both ends as its start line
# does (the spliced connection's record was a second, empty one), a guest
# that reset its end included.
check "audit: each brokered connection has one end line, with its ends" "$PY" -c '
import json, sys
starts, ends = set(), {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("event.action") != "connection":
        continue
    if r.get("event.type") == "start" and r.get("event.reason") == "brokered":
        starts.add(r["event.id"])
    elif r.get("event.type") == "end":
        ends.setdefault(r["event.id"], []).append(r)
bad = [i for i in starts if len(ends.get(i, [])) != 1 or
       not ends[i][0].get("firebreak.brokered") or
       ends[i][0].get("destination.ip") != "198.51.100.10" or
       not ends[i][0].get("source.port")]
print("# %d brokered, bad: %s" % (len(starts), bad))
sys.exit(1 if not starts or bad else 0)' "$AUDIT"

kill -TERM "$PROXY_PID" && wait "$PROXY_PID"
check "the proxy stopped cleanly (status $?)" [ $? = 0 ]
PROXY_PID=
check "the proxy wrote nothing to stderr" [ ! -s "$FB_TMP/proxy.err" ]
