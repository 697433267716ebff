#!/bin/bash
# proxy_smuggle.sh — request smuggling and host confusion on plain HTTP,
# against origins that serve an allowed and a refused name on one address:
#
#   198.51.100.10:80  nginx, server_names allowed.test and refused.test
#                     (the realistic virtual-hosting origin, a CDN's edge)
#   198.51.100.20:80  origin_vhost.py "forwarded": a framework that routes
#                     by X-Forwarded-Host, Forwarded: host= and the like
#   198.51.100.30:80  origin_vhost.py "nobody": reads no body of a GET or
#                     HEAD, and none after a 417 (the CL.0 / 0.CL desyncs)
#   198.51.100.20:81  origin_vhost.py "wsgi": a WSGI application that routes
#                     by HTTP_X_FORWARDED_HOST, as Django can
#
# The policy allows allowed.test, fwd.test and nobody.test; refused.test
# resolves to every one of those addresses.  A probe has got through when
# the guest sees "SECRET" (nginx's refused vhost) or "vhost=refused.test".
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

if ! DEBS=nginx "$(dirname "$0")/../deps.sh" >/dev/null 2>&1 ||
   ! command -v nginx >/dev/null; then
	skip "plain-HTTP smuggling" "nginx is not installed"
	exit 0
fi

px_netns fbsm
for a in 10 20 30 53; do ip -n "$NS" addr add 198.51.100.$a/32 dev lo; done
ip netns exec "$NS" nft -f - <<'NFT' || { not_ok setup nft; exit 1; }
table ip fbtest {
	chain out {
		type nat hook output priority -100;
		meta skuid 65534 tcp dport { 80, 81 } redirect to :15001
	}
}
NFT

NGX=$FB_TMP/nginx
mkdir -p "$NGX"
cat >"$NGX/nginx.conf" <<EOF
worker_processes 1;
pid $NGX/nginx.pid;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path $NGX/body;
	proxy_temp_path $NGX/proxy;
	fastcgi_temp_path $NGX/fastcgi;
	uwsgi_temp_path $NGX/uwsgi;
	scgi_temp_path $NGX/scgi;
	server {
		listen 198.51.100.10:80 default_server;
		server_name allowed.test;
		location / { return 200 "allowed uri=\$request_uri\n"; }
	}
	server {
		listen 198.51.100.10:80;
		server_name refused.test;
		location / { return 200 "SECRET uri=\$request_uri\n"; }
	}
}
EOF
ip netns exec "$NS" nginx -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf" \
	-g 'daemon off;' &
FB_PIDS+=($!)
ready=$FB_TMP/vhost.ready
ip netns exec "$NS" "$PY" "$PX_DIR/origin_vhost.py" "$ready" \
	forwarded,198.51.100.20,80 nobody,198.51.100.30,80 wsgi,198.51.100.20,81 &
FB_PIDS+=($!)
px_wait_file "$ready" || { not_ok setup origins; exit 1; }
px_dns "$NS" 198.51.100.53 allowed.test=198.51.100.10 \
	refused.test=198.51.100.10 fwd.test=198.51.100.20 \
	nobody.test=198.51.100.30 || { not_ok setup dns; exit 1; }
for _ in $(seq 100); do
	ip netns exec "$NS" bash -c 'exec 3<>/dev/tcp/198.51.100.10/80' 2>/dev/null && break
	sleep 0.05
done

printf 'allow:\n  - allowed.test\n  - fwd.test\n  - nobody.test\n' >"$FB_TMP/policy.yaml"
px_proxy smuggle

S() { px_send "$NS" "$@"; }
A=198.51.100.10 F=198.51.100.20 N=198.51.100.30
OK200='HTTP/1.1 200 OK|'
GOOD='GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n'
LAST='GET / HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n'
HIDDEN='GET /x HTTP/1.1\r\nHost: refused.test\r\n\r\n'  # 39 bytes

# leaked OUT: the refused name's content reached the guest
leaked() { [[ $1 == *SECRET* || $1 == *vhost=refused.test* ]]; }
# refused OUT REASON: nothing leaked, and a 403 (or 4xx/5xx) said REASON
refused() { ! leaked "$1" && [[ $1 == *"X-Firebreak-Reason: $2|"* ]]; }

out=$(S $A 80 "$LAST")
check "nginx: allowed.test is served" holds '[[ $out == "$OK200"*"allowed uri=/"* ]]'
out=$(S $A 80 'GET / HTTP/1.1\r\nHost: refused.test\r\n\r\n')
check "nginx: refused.test on the same address is refused" refused "$out" not-allowed

# ---- framing: whatever two parsers could read apart is refused ----------
# Each hides $HIDDEN where one reading of the framing puts a body and the
# other the next request.  A malformed first request finds no name (a 403)
# or is no protocol the proxy knows (closed): nothing reaches the origin.
while IFS='|' read -r what req; do
	out=$(S $A 80 "$req")
	check "framing: $what is refused" \
		holds '! leaked "$out" && [[ $out != *"HTTP/1.1 200 "* ]]'
done <<EOF
CL.TE|POST / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$HIDDEN
TE.CL|POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n27\r\n$HIDDEN\r\n0\r\n\r\n
Transfer-Encoding: chunked, identity|POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n$HIDDEN
Transfer-Encoding: xchunked|POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n$HIDDEN
Transfer-Encoding folded onto a second line|POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n$HIDDEN
two Transfer-Encoding fields|POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n$HIDDEN
Transfer-Encoding in HTTP/1.0|POST / HTTP/1.0\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$HIDDEN
two Content-Length values|POST / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 0\r\nContent-Length: 39\r\n\r\n$HIDDEN
Content-Length: +39|POST / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: +39\r\n\r\n$HIDDEN
Content-Length: 0, 39|POST / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 0, 39\r\n\r\n$HIDDEN
a 20-digit Content-Length|POST / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 00000000000000000039\r\n\r\n$HIDDEN
Host with a space before the colon|GET / HTTP/1.1\r\nHost : refused.test\r\nHost: allowed.test\r\n\r\n
bare LF line ends|GET / HTTP/1.1\nHost: allowed.test\n\n$HIDDEN
two Host fields|GET / HTTP/1.1\r\nHost: allowed.test\r\nHost: refused.test\r\n\r\n
HTTP/2 prior knowledge|PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n
an h2c upgrade|GET / HTTP/1.1\r\nHost: allowed.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n
CONNECT|CONNECT refused.test:80 HTTP/1.1\r\nHost: refused.test:80\r\n\r\n
EOF

# The same behind a good first request: refused as malformed, after it.
while IFS='|' read -r what req; do
	out=$(S $A 80 "$GOOD$req")
	check "a later request: $what is refused" refused "$out" http-malformed
done <<EOF
obs-fold continuing Host|GET / HTTP/1.1\r\nHost: allowed.test\r\n refused.test\r\n\r\n
a NUL in Host|GET / HTTP/1.1\r\nHost: allowed.test\x00refused.test\r\n\r\n
Host with userinfo|GET / HTTP/1.1\r\nHost: allowed.test@refused.test\r\n\r\n
an HTTP/0.9 line|GET /x\r\n\r\n
CRLF before the request line|\r\n$HIDDEN
a chunk size 0x5|POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n
a chunk size with a leading space|POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n
an overflowing chunk size|POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff1\r\nhello\r\n0\r\n\r\n
chunk data without its CRLF|POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n$HIDDEN
a bare LF after a chunk size|POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n
an h2c upgrade|GET / HTTP/1.1\r\nHost: allowed.test\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\n\r\n
the HTTP/2 preface|PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n
CONNECT, any case|connect refused.test:80 HTTP/1.1\r\nHost: allowed.test\r\n\r\n
EOF

out=$(S $A 80 "$GOOD"'GET http://refused.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n')
check "a later absolute-form target naming the refused host" refused "$out" ambiguous-host
out=$(S $A 80 "$GOOD"'GET / HTTP/1.1\r\nHost: refused.test:8080\r\n\r\n')
check "a later Host naming it with another port" refused "$out" not-allowed
out=$(S $A 80 "$GOOD$GOOD$HIDDEN")
check "pipelined: the third request, for the refused host, after two answers" \
	holds 'refused "$out" not-allowed && [[ $out == "$OK200"*"$OK200"*"403 Forbidden"* ]]'
out=$(S $A 80 "$GOOD"'GET / HTTP/1.1\r\nHost: allowed.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'"$HIDDEN")
check "a request behind a declined WebSocket upgrade is checked" refused "$out" not-allowed
# legitimate spellings keep working
out=$(S $A 80 "$GOOD"'GET / HTTP/1.1\r\nHost: ALLOWED.test.:80\r\nConnection: close\r\n\r\n')
check "Host in upper case, with a trailing dot and a port, passes" \
	holds '[[ $out == "$OK200"*"$OK200"* ]]'
out=$(S $A 80 'POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n5;a="b c"\r\nhello\r\n0\r\nX-Trailer: refused.test\r\n\r\n'"$LAST")
check "a chunked body with extensions and a trailer, then the next request" \
	holds '[[ $out == "$OK200"*"$OK200"* ]] && ! leaked "$out"'

# ---- a body an origin reads as the next request ------------------------
# The nobody origin answers a GET or HEAD without reading its body, and
# a 417 without reading the body it declined: the body is its next
# request, with whatever Host the guest put there.
out=$(S $N 80 'GET / HTTP/1.1\r\nHost: nobody.test\r\nContent-Length: 39\r\n\r\n'"$HIDDEN")
check "CL.0: a request in a GET's body is refused (the origin skips that body)" \
	holds 'refused "$out" http-body-request && [[ $out == "$OK200"*"vhost=nobody.test"* ]]'
out=$(S $N 80 'HEAD / HTTP/1.1\r\nHost: nobody.test\r\nContent-Length: 39\r\n\r\n'"$HIDDEN")
check "CL.0: ... in a HEAD's body too" refused "$out" http-body-request
out=$(S $N 80 'POST /no-expect HTTP/1.1\r\nHost: nobody.test\r\nExpect: 100-continue\r\nContent-Length: 39\r\n\r\n'"$HIDDEN")
check "0.CL: a request in the body of a POST the origin answers 417" \
	holds 'refused "$out" http-body-request && [[ $out == "HTTP/1.1 417 "* ]]'
out=$(S $N 80 'POST /no-expect HTTP/1.1\r\nHost: nobody.test\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\nGET /x\r\n\r\n')
check "0.CL: ... an HTTP/0.9 one too (http.server serves it without a Host)" \
	refused "$out" http-body-request
out=$(S $N 80 'GET / HTTP/1.1\r\nHost: nobody.test\r\nContent-Length: 43\r\n\r\n\r\n GET\thttp://refused.test/x HTTP/1.1\r\n\r\n\r\n')
check "CL.0: ... after an empty line, spaced with tabs, in absolute form" \
	refused "$out" http-body-request
out=$(S $A 80 'GET / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 39\r\n\r\n'"$HIDDEN")
check "nginx reads a GET's body, but such a body is refused there too" \
	refused "$out" http-body-request
out=$(S $N 80 'POST / HTTP/1.1\r\nHost: nobody.test\r\nContent-Length: 14\r\nConnection: close\r\n\r\n{"q": "GET /"}')
check "a JSON body passes" holds '[[ $out == "$OK200"*"vhost=nobody.test"* ]]'
out=$(S $A 80 'POST / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 11\r\n\r\nHello world'"$LAST")
check "a text body passes, and the request after it" \
	holds '[[ $out == "$OK200"*"$OK200"* ]]'
out=$(S $A 80 'POST / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 16\r\n\r\ncat /etc/passwd\n'"$LAST")
check "a shell command as a body passes (no server takes it for a request)" \
	holds '[[ $out == "$OK200"*"$OK200"* ]]'
out=$(S $N 80 'POST / HTTP/1.1\r\nHost: nobody.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello')
check "Expect: 100-continue with a plain body gets 100, then the answer" \
	holds '[[ $out == "HTTP/1.1 100 Continue||$OK200"*"vhost=nobody.test"* ]]'

# ---- hosts named in forwarding fields ----------------------------------
# A framework behind the origin serves the host these name, not Host's.
for f in 'X-Forwarded-Host: refused.test' 'X-Host: refused.test' \
	 'X-Original-Host: refused.test' 'X-Forwarded-Host: fwd.test, refused.test' \
	 'Forwarded: for=192.0.2.1;host="refused.test";proto=http' \
	 'X-Forwarded-Server: refused.test' 'X-HTTP-Host-Override: refused.test' \
	 'Forwarded: host="fwd.test;host=refused.test"' 'X-Forwarded-Host: fwd.test@x'; do
	out=$(S $F 80 'GET / HTTP/1.1\r\nHost: fwd.test\r\n'"$f"'\r\n\r\n')
	check "forwarding field \"$f\" is refused" refused "$out" ambiguous-host
done
# wsgiref, like CGI, passes X_Forwarded_Host on as HTTP_X_FORWARDED_HOST
out=$(S $F 81 'GET / HTTP/1.1\r\nHost: fwd.test\r\nX_Forwarded_Host: refused.test\r\n\r\n')
check "forwarding field spelled with underscores (WSGI reads it the same)" \
	refused "$out" ambiguous-host
out=$(S $F 81 'GET / HTTP/1.1\r\nHost: fwd.test\r\nConnection: close\r\n\r\n')
check "... and the WSGI origin serves fwd.test without one" \
	holds '[[ $out == "HTTP/1.0 200 OK|"*"vhost=fwd.test"* ]]'
out=$(S $F 80 'GET / HTTP/1.1\r\nHost: fwd.test\r\n\r\nGET / HTTP/1.1\r\nHost: fwd.test\r\nX-Forwarded-Host: refused.test\r\n\r\n')
check "... on a later request too, after the answer to the first" \
	holds 'refused "$out" ambiguous-host && [[ $out == "$OK200"*"vhost=fwd.test"* ]]'
out=$(S $F 80 'GET / HTTP/1.1\r\nHost: fwd.test\r\nX-Forwarded-Host: fwd.test:80\r\nForwarded: for="[2001:db8::1]:4711";host=allowed.test\r\nX-Forwarded-For: 192.0.2.1\r\nConnection: close\r\n\r\n')
check "forwarding fields naming allowed hosts pass" \
	holds '[[ $out == "$OK200"*"vhost=fwd.test:80"* ]]'
fb_wait_line '"firebreak.request_refused":"http-body-request"' "$AUDIT"
check "audit log: a refused body is on the close line" \
	grep -q '"firebreak.request_refused":"http-body-request"' "$AUDIT"
check "audit log: so is a refused forwarding field" \
	grep -q '"event.reason":"ambiguous-host"' "$AUDIT"

kill "$PROXY_PID"
wait "$PROXY_PID"
rc=$?
PROXY_PID=
check "the proxy exits cleanly on SIGTERM (status $rc, no leaks)" [ "$rc" = 0 ]
