#!/bin/bash
# broker_attack.sh — firebreak-proxy by itself, brokering, against a guest
# that writes its requests byte by byte to get a secret, or a request, past
# the rules.  Each case is a request the proxy must refuse; none of them
# may reach an origin.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

px_netns fbba
for a in 10 11 12 13 53; do ip -n "$NS" addr add 198.51.100.$a/32 dev lo; done
px_redirect_guests || { not_ok setup nft; exit 1; }
px_certs api.test fwd.test slow.test slow2.test || { not_ok setup certs; exit 1; }
px_sandbox_ca api.test slow.test slow2.test || { not_ok setup "sandbox CA"; exit 1; }

# api.test at .10, the forward target fwd.test at .11, and slow.test and
# slow2.test, whose names take 2 s to resolve, at .12 and .13, all echoing
# into one log
ORIGIN_LOG=$FB_TMP/origin.log
for o in api.test,10 fwd.test,11 slow.test,12 slow2.test,13; do
	ip netns exec "$NS" "$PY" "$(dirname "$0")/echo_origin.py" \
		"$FB_TMP/${o%,*}.ready" "$ORIGIN_LOG" "$PX_CERTS/${o%,*}.pem" \
		"$PX_CERTS/${o%,*}.key" "198.51.100.${o#*,},443" &
	FB_PIDS+=($!)
	px_wait_file "$FB_TMP/${o%,*}.ready" || { not_ok setup origin; exit 1; }
done
px_dns "$NS" 198.51.100.53 api.test=198.51.100.10 fwd.test=198.51.100.11 \
	slow.test=delay:2:198.51.100.12 slow2.test=delay:2:198.51.100.13 ||
	{ not_ok setup dns; exit 1; }
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$FB_TMP/jwt.key" 2>/dev/null

cat >"$FB_TMP/policy.yaml" <<'P'
allow:
  api.test:
    - match: { path: { startsWith: "/blocked" } }
      response: { statusCode: 403, contentType: text/plain, body: "no" }
    - match: { path: { exact: "/admin" } }
      response: { statusCode: 403, contentType: text/plain, body: "no" }
    - match: { method: [DELETE] }
      response: { statusCode: 405 }
    - match: { queryString: [{ key: { exact: do }, value: { exact: "drop%20all" } }] }
      response: { statusCode: 403, contentType: text/plain, body: "no" }
    - match: { path: { startsWith: "/fwd/" } }
      forwardURL: "https://fwd.test/hook"
    - match: { path: { startsWith: "/q/" }, queryString: [{ key: { exact: model }, value: { exact: small } }] }
      transform: [{ headers: { x-api-key: the-secret } }]
    - match: { path: { startsWith: "/v1/" } }
      transform: [{ headers: { x-api-key: the-secret } }]
  fwd.test: []
  slow.test:
    - transform: [{ headers: { x-api-key: the-secret } }]
  slow2.test:
    - transform: [{ headers: { x-api-key: the-secret } }]
P
px_broker_proxy atk --jwt-key "$FB_TMP/jwt.key"

hex() { printf '%b' "$1" | od -An -v -tx1 | tr -d ' \n'; }
raw() {
	px_guest "$NS" "$PY" "$(dirname "$0")/broker_client.py" api.test \
		198.51.100.10 "$FB_TMP/sca.crt" "raw=$(hex "$1")"
}
H='Host: api.test\r\nConnection: close\r\n'

check "a request on the transform's path gets the secret" \
	[ "$(raw "GET /v1/ok HTTP/1.1\r\n$H\r\n")" = "raw 200 the-secret" ]

# The log shows a long method and path as far as it shows any guest value,
# and says where it cut.
long=$(printf 'a%.0s' $(seq 300))
raw "PROPFINDPROPFINDX /v1/$long-tail HTTP/1.1\r\n$H\r\n" >/dev/null
check "a 17-byte method is logged whole, a 305-byte path cut and flagged" \
	holds 'grep "\"url.path\":\"/v1/aaa" "$AUDIT" |
		grep "\"http.request.method\":\"PROPFINDPROPFINDX\"" |
		grep -q "\"url.path_truncated\":true"'

# A body that reads as a request would be the next request to an origin
# that does not read bodies: one that swallows the request after it,
# secret and all.  Refused before any of it goes; a JSON body passes.
SMUG='POST /v1/smuggled HTTP/1.1\r\nHost: api.test\r\nContent-Length: 300\r\n\r\nc='
got=$(raw "GET /v1/ok HTTP/1.1\r\nHost: api.test\r\nContent-Length: $(printf '%b' "$SMUG" | wc -c)\r\n\r\n$SMUG")
check "a body that reads as a request is refused ($got)" [ "$got" = "raw 400 -" ]
check "... none of it reached the origin" px_absent '/v1/smuggled' "$ORIGIN_LOG"
check "... the audit line says why" grep -q '"event.reason":"http-body-request"' "$AUDIT"
got=$(raw "POST /v1/ok HTTP/1.1\r\n${H}Content-Length: 7\r\n\r\n{\"a\":1}")
check "a JSON body passes ($got)" [ "$got" = "raw 200 the-secret" ]

# all_answer WANT WHAT MARK TARGET...: "GET TARGET" answers WANT for each
# TARGET, and none of them, each holding MARK, reaches an origin.
all_answer() {
	local want=$1 what=$2 mark=$3 c got
	shift 3
	for c in "$@"; do
		got=$(raw "GET $c HTTP/1.1\r\n$H\r\n")
		check "$what: $c ($got)" [ "$got" = "$want" ]
	done
	check "... and none of them reached an origin" \
		px_absent "\"target\": \"[^\"]*$mark" "$ORIGIN_LOG"
}

# Dot-segments: every origin resolves them, so the rule would judge one
# path and the origin serve another.
all_answer "raw 400 -" "dot-segments are refused" dot- \
	"/v1/../dot-transform" "/v1/%2e%2E/dot-encoded" \
	"/v1/..;/dot-params" "/v1%2f..%2fdot-slash" "/v1\\\\..\\\\dot-backslash" \
	"/fwd/../../dot-forward" "/./blocked/dot-respond" \
	"/v1/%252e%252e/dot-double" "/v1/..%252fdot-double-slash" \
	"/v1/%25%32%65%25%32%65/dot-double-hex" "/fwd/%25252e%25252e/dot-triple"
check "audit: refused as dot-segment" \
	grep -q '"event.reason":"dot-segment"' "$AUDIT"
# A "%25" that decodes to no dot-segment is a path like any other.
got=$(raw "GET /v1/%2520dot-not HTTP/1.1\r\n$H\r\n")
check "a literal %20 (%2520) is no dot-segment ($got)" [ "$got" = "raw 200 the-secret" ]
check "... and the origin got it as sent" \
	grep -q '"target": "/v1/%2520dot-not"' "$ORIGIN_LOG"

# Escapes of letters, digits and -._~: the origin reads "%62" as "b", and
# so do the rules; the other escapes go in upper case.
all_answer "raw 403 -" "an escaped letter is a letter, the response rule's" \
	escaped- "/%62locked/escaped-1" "/b%6Cocked/escaped-2" \
	"/%62%6c%6F%63ked/escaped-3"
got=$(raw "GET /%76%31/esc%2dsecret?k%3dv=%7e%2f HTTP/1.1\r\n$H\r\n")
check "an escaped /v1/ meets the transform rule ($got)" [ "$got" = "raw 200 the-secret" ]
check "... and the origin got the target in normal form" \
	grep -q '"target": "/v1/esc-secret?k%3Dv=~%2F"' "$ORIGIN_LOG"

# A '%' that starts no escape has no one reading: "%%33" is "%3" to a
# server that keeps the stray '%', and an escape once "%33" is decoded.
all_answer "raw 400 -" "a stray % is refused" stray \
	"/v1/%%333-stray" "/v1/stray?q=100%" "/v1/%zz-stray"
check "audit: refused as bad-escape" \
	grep -q '"event.reason":"bad-escape"' "$AUDIT"

# Servers that merge slashes (nginx, Apache; IIS with backslashes) serve
# "//blocked" as "/blocked", and Tomcat "/;x/blocked": the rules read it
# both ways.
all_answer "raw 403 -" "a lenient reading, the response rule's" merged- \
	"//blocked/merged-1" "/\\\\blocked/merged-2" "/%2Fblocked/merged-3" \
	"/;x/blocked/merged-4"
# Express and ASP.NET Core route without case and with one trailing '/'
# or none, Rails without a format suffix, and Fastify 4 ends a path at
# its first ';': so do the rules that answer.
all_answer "raw 403 -" "as case-blind, slash-blind, format and ;-cutting routers read it" \
	fold- "/ADMIN?fold-1" "/Admin/?fold-2" "/admin;fold-3/x" \
	"/BLOCKED/fold-4" "//BLOCKED?fold-5" "/admin.json?fold-6"
# A grant scoped to one value needs every copy of the key: of
# "model=small&model=big", PHP, Rack and Tornado read the last.
got=$(raw "GET /q/dup-1?model=small HTTP/1.1\r\n$H\r\n")
check "a grant on one query value gets the secret ($got)" [ "$got" = "raw 200 the-secret" ]
for q in "model=small&model=big" "model=big&model=small"; do
	got=$(raw "GET /q/dup-2?$q HTTP/1.1\r\n$H\r\n")
	check "... not with another copy of the key: $q ($got)" [ "$got" = "raw 200 -" ]
done
# A URL parser (Node's "new URL(req.url, base)") reads "//x/blocked" as
# the host x and the path /blocked: the rules read it so too.
all_answer "raw 403 -" "after an authority, the response rule's" authority- \
	"//x/blocked/authority-1" "/\\\\x/blocked/authority-2" \
	"///x:1/blocked/authority-3"
# A rule that grants needs every reading: "//v1/x" is "/x" to a URL
# parser, out of the "/v1/" rule's reach, so it goes without the secret.
got=$(raw "GET //v1/merged-secret HTTP/1.1\r\n$H\r\n")
check "//v1/ in one reading only: no secret ($got)" [ "$got" = "raw 200 -" ]
check "... and the origin got the path as sent" \
	grep -q '"target": "//v1/merged-secret"' "$ORIGIN_LOG"
got=$(raw "GET /v1//merged-secret HTTP/1.1\r\n$H\r\n")
check "/v1// in every reading: the secret ($got)" [ "$got" = "raw 200 the-secret" ]

# A field an application takes for the path (IIS's X-Original-URL and
# the like) would have the origin serve a path the rules never judged.
for f in X-Original-URL x-rewrite-url X_Original_URI X-Forwarded-Uri; do
	got=$(raw "GET /v1/override-$f HTTP/1.1\r\n$H$f: /blocked\r\n\r\n")
	check "a path override ($f) is refused ($got)" [ "$got" = "raw 400 -" ]
done
check "... and none reached an origin" \
	px_absent '"target": "/v1/override-' "$ORIGIN_LOG"
check "audit: refused as path-override" \
	grep -q '"event.reason":"path-override"' "$AUDIT"

# X-Forwarded-Host and its kin name the host to an origin that trusts
# them (a multi-tenant one routes on them): on a brokered name they must
# name it, as Host does, or the secret would serve another tenant.
for f in "X-Forwarded-Host: other.test" "X_Forwarded_Host: other.test" \
	"Forwarded: for=192.0.2.1;host=other.test" "X-Host: other.test"; do
	got=$(raw "GET /v1/fwdhost-${f%%:*} HTTP/1.1\r\n$H$f\r\n\r\n")
	check "a forwarding field for another host ($f) is refused ($got)" \
		[ "$got" = "raw 421 -" ]
done
check "... and none reached an origin" \
	px_absent '"target": "/v1/fwdhost-' "$ORIGIN_LOG"
check "audit: refused as forwarded-host-not-sni" \
	grep -q '"event.reason":"forwarded-host-not-sni"' "$AUDIT"
got=$(raw "GET /v1/fwdhost-same HTTP/1.1\r\n${H}X-Forwarded-Host: API.test:443\r\n\r\n")
check "one that names the SNI goes, with the secret ($got)" \
	[ "$got" = "raw 200 the-secret" ]

# An absolute-form target without a path has the path "/", which is in
# no buffer of the guest's: nothing to rewrite in place.
got=$(raw "GET https://api.test?q=%61 HTTP/1.1\r\n$H\r\n")
check "absolute-form without a path: the origin gets / ($got)" \
	[ "$got" = "raw 200 -" ]
check "... with the query in normal form" \
	grep -q '"target": "/?q=a"' "$ORIGIN_LOG"

# Methods: the rules match them case-sensitively, some servers do not.
for m in delete Delete; do
	got=$(raw "$m /v1/method HTTP/1.1\r\n$H\r\n")
	check "a method with lower case ($m) is refused ($got)" [ "$got" = "raw 400 -" ]
done
check "... and neither reached an origin" \
	px_absent '"target": "/v1/method"' "$ORIGIN_LOG"

# A POST that names another method in an override field or a _method
# parameter is served as that method by Symfony, Laravel and Rails.
for o in 'override-1 HTTP/1.1\r\nX-HTTP-Method-Override: DELETE' \
	'override-2 HTTP/1.1\r\nx_http_method: delete' \
	'override-3?_method=Delete HTTP/1.1'; do
	got=$(raw "POST /v1/method-$o\r\n${H}Content-Length: 0\r\n\r\n")
	check "a method override meets the DELETE rule: ${o%% *} ($got)" \
		[ "$got" = "raw 405 -" ]
done
check "... and none reached an origin" \
	px_absent '"target": "/v1/method-override' "$ORIGIN_LOG"

# Form decoders read '+' as a space, and Rack before 3 splits at ';'.
all_answer "raw 403 -" "the form reading of a query, the response rule's" \
	query-form "/v1/query-form-1?do=drop+all" "/v1/query-form-2?x;do=drop+all"

# A policy change elsewhere leaves a request waiting for its upstream as
# it was: its key's rules are the same.
px_guest "$NS" "$PY" "$(dirname "$0")/broker_client.py" slow2.test \
	198.51.100.13 "$FB_TMP/sca.crt" get=/v1/slow2 >"$FB_TMP/slow2.out" &
slow=$!
fb_wait_line '^slow2.test ' "$PX_DNS_LOG" || not_ok "slow2.test was never resolved"
{ cat "$FB_TMP/policy.yaml"; echo '  other.test: []'; } |
	px_curl_control "$SOCK" -X PUT --data-binary @- http://proxy/policy \
	>"$FB_TMP/put.out"
wait "$slow"
check "a change to other keys: a request waiting for its upstream goes on" \
	grep -qx 'get /v1/slow2 200 the-secret' "$FB_TMP/slow2.out"
check "... and the change closed nothing" grep -q '"closed":0}' "$FB_TMP/put.out"

# A policy change withdraws slow.test's secret while a request for it,
# decided under the old rules, waits for its upstream: it never leaves.
px_guest "$NS" "$PY" "$(dirname "$0")/broker_client.py" slow.test \
	198.51.100.12 "$FB_TMP/sca.crt" get=/v1/slow >"$FB_TMP/slow.out" &
slow=$!
fb_wait_line '^slow.test ' "$PX_DNS_LOG" || not_ok "slow.test was never resolved"
sed 's/^    - transform.*the-secret.*/    - response: { statusCode: 403 }/' "$FB_TMP/policy.yaml" |
	px_curl_control "$SOCK" -X PUT --data-binary @- http://proxy/policy \
	>"$FB_TMP/put.out"
wait "$slow"
check "a request still waiting for its upstream at a policy change: 503" \
	grep -qx 'get /v1/slow 503 -' "$FB_TMP/slow.out"
check "... it never reached the origin" \
	px_absent '"target": "/v1/slow"' "$ORIGIN_LOG"
check "... and the change reports its connection closed" \
	grep -q '"closed":1}' "$FB_TMP/put.out"
check "audit: refused as policy-changed, nothing injected" \
	bash -c "grep '\"event.reason\":\"policy-changed\"' '$AUDIT' | grep -v -q injected"

# under the sanitizers a leak would show in the proxy's stderr
kill -TERM "$PROXY_PID" && wait "$PROXY_PID"
st=$?
PROXY_PID=
check "the proxy stopped cleanly (status $st), nothing on its stderr" \
	bash -c "[ $st = 0 ] && [ ! -s '$FB_TMP/proxy.err' ]"
