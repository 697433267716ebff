#!/bin/bash
# Credential brokering through `firebreak run`: a guest's curl, Python and
# Node reach a brokered name through the proxy's TLS; the origin (an echo
# server in the test's internet) sees the injected header exactly once and
# the guest never holds the secret; Host must be the SNI; respond rules
# answer locally; forwardURL targets get a token they can verify; the
# smuggling payloads of notes/brokering.md 4.6 are refused before the
# origin sees them; a non-brokered name stays spliced.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

SECRET=fbsecret-$$-$RANDOM$RANDOM
ORIGIN_LOG=$FB_TMP/origin.log
AUDIT=$FB_TMP/audit.log

fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }
px_certs || { not_ok "certificates"; exit 1; }

# One leaf for every origin name, signed by the test's CA (which only the
# proxy trusts, through --upstream-ca).
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$PX_CERTS/origin.key" -out "$PX_CERTS/origin.csr" \
	-subj /CN=origin 2>/dev/null &&
openssl x509 -req -in "$PX_CERTS/origin.csr" -CA "$PX_CA" \
	-CAkey "$PX_CERTS/ca.key" -CAcreateserial -days 2 \
	-out "$PX_CERTS/origin.pem" -extfile <(echo \
	"subjectAltName=DNS:api.example.com,DNS:plain.example.com,DNS:fwd.example.com,DNS:late.example.com") \
	2>/dev/null || { not_ok "origin certificate"; exit 1; }

fb_origin_addrs tcp,203.0.113.10 tcp,203.0.113.11 tcp,203.0.113.12
ready=$FB_TMP/echo.ready
ip netns exec "$INET" "$PY" "$(dirname "$0")/echo_origin.py" "$ready" "$ORIGIN_LOG" \
	"$PX_CERTS/origin.pem" "$PX_CERTS/origin.key" \
	203.0.113.10,443 203.0.113.11,443 203.0.113.12,443 &
FB_PIDS+=($!)
px_wait_file "$ready" || { not_ok "echo origin"; exit 1; }
# The forwardURL target is a CNAME, as a CDN's or load balancer's name
# often is: the operator's name, outside the allow list, chain and all.
px_dns "$INET" 192.0.2.2 api.example.com=203.0.113.10 \
	plain.example.com=203.0.113.11 fwd.example.com=cname:edge.cdn.test \
	edge.cdn.test=203.0.113.12 \
	bad.example.com=203.0.113.10 late.example.com=203.0.113.10 ||
	{ not_ok "dns"; exit 1; }

cat >"$FB_TMP/policy.yaml" <<'EOF2'
allow:
  plain.example.com: []
  api.example.com:
    - match: { path: { startsWith: "/local" } }
      response: { statusCode: 418, contentType: text/plain, body: "answered locally" }
    - match: { path: { startsWith: "/fwd/" } }
      forwardURL: "https://fwd.example.com/hook"
    - transform:
        - headers: { x-api-key: "${env:FB_TEST_SECRET}" }
  # served by an origin whose certificate does not name it; its secret
  # inside a longer value, which must not stay in the guest either
  bad.example.com:
    - transform:
        - headers: { authorization: "Bearer ${env:FB_TEST_SECRET2} x" }
EOF2

cp "$(dirname "$0")/broker_guest.py" "$FB_TMP/guest.py"
head -c 100000 /dev/urandom | base64 -w0 >"$FB_TMP/big.txt"
chmod 644 "$FB_TMP/guest.py" "$FB_TMP/big.txt"

hex() { printf '%b' "$1" | od -An -v -tx1 | tr -d ' \n'; }
H='Host: api.example.com\r\n'
raw=(
	cl_te,$(hex "POST /smuggle-cl-te HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	te_comma,$(hex "POST /smuggle-te-comma HTTP/1.1\r\n${H}Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n")
	te_dup,$(hex "POST /smuggle-te-dup HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	te_x,$(hex "POST /smuggle-te-x HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n")
	cl_hex,$(hex "POST /smuggle-cl-hex HTTP/1.1\r\n${H}Content-Length: 0x10\r\n\r\n")
	cl_empty,$(hex "POST /smuggle-cl-empty HTTP/1.1\r\n${H}Content-Length: \r\n\r\n")
	cl_dup,$(hex "POST /smuggle-cl-dup HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 1\r\n\r\nx")
	bare_lf,$(hex "GET /smuggle-bare-lf HTTP/1.1\nHost: api.example.com\n\n")
	obs_fold,$(hex "GET /smuggle-fold HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\n")
	space_colon,$(hex "GET /smuggle-space HTTP/1.1\r\nHost : api.example.com\r\n\r\n")
	nul,$(hex "GET /smuggle-nul HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n")
	chunk_plus,$(hex "POST /smuggle-chunk-plus HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n")
	h2c,$(hex "GET /smuggle-h2c HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
	pri,$(hex "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	connect,$(hex "CONNECT api.example.com:443 HTTP/1.1\r\n${H}\r\n")
	trace,$(hex "TRACE /smuggle-trace HTTP/1.1\r\n${H}\r\n")
	host_other,$(hex "GET /smuggle-host HTTP/1.1\r\nHost: plain.example.com\r\n\r\n")
	absolute_other,$(hex "GET http://plain.example.com/smuggle-abs HTTP/1.1\r\n${H}\r\n")
	too_many_fields,$(hex "GET /smuggle-fields HTTP/1.1\r\n${H}$(printf 'X-F%d: v\\r\\n' $(seq 150))\r\n")
)

cat >"$FB_TMP/guest.sh" <<EOF2
exec 2>&1
cd /tmp
# the test reads the sandbox's JWKS and control API while it runs
for i in \$(seq 100); do [ -e $FB_TMP/go ] && break; sleep 0.05; done
echo "env-secret \$(env | grep -c '$SECRET')"
# brokered only by the PATCH below, after the sandbox started
curl -sS -o /dev/null -w 'curl-late %{http_code}\n' 'https://late.example.com/v1/late'
curl -sS -o /dev/null -w 'curl-get %{http_code}\n' \
	-H 'X-API-KEY: guest-upper' -H 'x_api_key: guest-underscore' \
	'https://api.example.com/v1/get?q=1'
curl -sS -o /dev/null -w 'curl-keepalive %{http_code}\n' \
	'https://api.example.com/ka/1' -o /dev/null 'https://api.example.com/ka/2'
curl -sS -o /dev/null -w 'curl-chunked %{http_code}\n' \
	-H 'Transfer-Encoding: chunked' --data-binary @$FB_TMP/big.txt \
	'https://api.example.com/upload/chunked'
curl -sS -o /dev/null -w 'curl-expect %{http_code}\n' \
	-H 'Expect: 100-continue' --data-binary @$FB_TMP/big.txt \
	'https://api.example.com/upload/expect'
curl -sS -w '\ncurl-chunked-response %{http_code}\n' 'https://api.example.com/chunked'
curl -sS -o /dev/null -w 'curl-big-response %{http_code} %{size_download}\n' \
	'https://api.example.com/big?n=1000000'
curl -sS -o /dev/null -w 'curl-misdirected %{http_code}\n' \
	-H 'Host: plain.example.com' 'https://api.example.com/misdirected'
curl -sS -w '\ncurl-local %{http_code}\n' 'https://api.example.com/local/x'
curl -sS -o /dev/null -w 'curl-forward %{http_code}\n' \
	-H 'X-Firebreak-Token: forged' 'https://api.example.com/fwd/a/b?z=1'
if command -v node >/dev/null; then
	node -e 'fetch("https://api.example.com/v1/node", {headers: {"x-api-key": "guest"}})
		.then(r => r.json().then(j => console.log("node", r.status, j.target)))
		.catch(e => console.log("node-error", e.cause ? e.cause.code : e))'
fi
$PY $FB_TMP/guest.py urllib=https://api.example.com/v1/urllib \
	issuer=api.example.com issuer=plain.example.com \
	alpn=api.example.com,h2 alpn=api.example.com,h2,http/1.1 \
	ws=api.example.com \
	$(printf 'raw=api.example.com,%s ' "${raw[@]}")
curl -sS -o /dev/null -w 'curl-unverified-upstream %{http_code}\n' \
	https://bad.example.com/never
EOF2
chmod 644 "$FB_TMP/guest.sh"

# firebreak run as fb_run does it, with more time: this one guest runs
# every probe, and a loaded machine starts interpreters slowly.
fb_next_id
FB_TEST_SECRET=$SECRET FB_TEST_SECRET2=$SECRET-2 in_host timeout -k 5 90 "$FIREBREAK" run \
	--state-dir "$FB_TMP/state" --name "$FB_LAST_ID" \
	--policy "$FB_TMP/policy.yaml" \
	"${PUBLICS[@]}" --resolver 192.0.2.2 --upstream-ca "$PX_CA" \
	--audit-log "$AUDIT" -- sh "$FB_TMP/guest.sh" >"$FB_TMP/out" 2>&1 &
run=$!
sdir=$FB_TMP/state/$FB_LAST_ID
px_wait_file "$sdir/control.sock" && px_wait_file "$sdir/jwks.json"
cp "$sdir/jwks.json" "$FB_TMP/jwks.json" 2>/dev/null
px_curl_control "$sdir/control.sock" http://proxy/policy >"$FB_TMP/control.out" 2>&1
px_curl_control "$sdir/control.sock" http://proxy/jwks >"$FB_TMP/jwks.control" 2>&1
px_curl_control "$sdir/control.sock" http://proxy/stats >>"$FB_TMP/control.out" 2>&1
key_mode=$(stat -c %a "$sdir/ca.key" 2>/dev/null)
# A newly brokered name: the proxy reissues the CA for it and rewrites
# the bundle the guest has bind-mounted, in place.
bundle_inode=$(stat -c %i "$sdir/trust.crt" 2>/dev/null)
px_curl_control "$sdir/control.sock" -X PATCH \
	-H 'Content-Type: application/merge-patch+json' --data-binary \
	'{"allow":{"late.example.com":[{"transform":[{"headers":{"x-late":"late-'$$'"}}]}]}}' \
	http://proxy/policy >"$FB_TMP/patch.out" 2>&1
late_ca=$(openssl x509 -in "$sdir/ca.crt" -noout -ext nameConstraints 2>&1)
late_bundle=$(grep -A100 '^# firebreak sandbox CA' "$sdir/trust.crt" |
	openssl x509 -noout -ext nameConstraints 2>&1)
late_inode=$(stat -c %i "$sdir/trust.crt" 2>/dev/null)
touch "$FB_TMP/go"
wait "$run"
rc=$?
out=$(cat "$FB_TMP/out")
echo "$out" | grep -v '^{' | sed 's/^/# /'
check "the guest's script ran (status 0)" [ "$rc" = 0 ]
line() { grep -m1 "^$1 " <<<"$out"; }

check "PATCH brokering a new name is applied" grep -q generation "$FB_TMP/patch.out"
check "the reissued CA certificate permits the new name" grep -q 'DNS:late.example.com' <<<"$late_ca"
check "the guest's bundle holds the reissued CA" grep -q 'DNS:late.example.com' <<<"$late_bundle"
check "the bundle was rewritten in place (same inode, the bind mount sees it)" \
	holds '[ -n "$late_inode" ] && [ "$late_inode" = "$bundle_inode" ]'
check "a guest request to the newly brokered name verifies: 200" \
	[ "$(line curl-late)" = "curl-late 200" ]
check "... and the origin sees its injected header" \
	grep -q '"x-late", "late-'$$'"' "$ORIGIN_LOG"
check "the guest's environment holds no secret" [ "$(line env-secret)" = "env-secret 0" ]
check "curl GET through the broker: 200" [ "$(line curl-get)" = "curl-get 200" ]

# What reached the origin, request by request.
origin() {
	"$PY" - "$ORIGIN_LOG" "$SECRET" "$@" <<'PYEOF'
import json, sys
log, secret, target, what = sys.argv[1:5]
for line in open(log):
    r = json.loads(line)
    if r["target"] != target:
        continue
    keys = [v for k, v in r["headers"]
            if k.lower().replace("_", "-") == "x-api-key"]
    if what == "injected-once":
        sys.exit(0 if keys == [secret] else 1)
    if what == "not-injected":
        sys.exit(0 if not keys else 1)
    if what == "body-len":
        print(len(r["body"])); sys.exit(0)
    if what == "headers":
        print(json.dumps(r["headers"])); sys.exit(0)
    if what == "method":
        print(r["method"]); sys.exit(0)
sys.exit(2)
PYEOF
}
check "origin sees the injected header exactly once (guest sent two copies)" \
	origin /v1/get?q=1 injected-once
check "keep-alive: both requests on one connection injected" \
	bash -c "$(declare -f origin); PY=$PY ORIGIN_LOG=$ORIGIN_LOG SECRET=$SECRET; \
		origin /ka/1 injected-once && origin /ka/2 injected-once"
check "keep-alive: one connection carried both" \
	"$PY" -c 'import json, sys
ids = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("event.action") == "request" and r.get("url.path", "").startswith("/ka/"):
        ids.setdefault(r["event.id"], 0); ids[r["event.id"]] += 1
sys.exit(0 if list(ids.values()) == [2] else 1)' "$AUDIT"
big=$(stat -c %s "$FB_TMP/big.txt")
check "chunked request body streamed whole (200)" \
	[ "$(line curl-chunked)" = "curl-chunked 200" ]
check "chunked request body arrived byte for byte" \
	[ "$(origin /upload/chunked body-len)" = "$big" ]
check "Expect: 100-continue body arrived" \
	[ "$(line curl-expect) $(origin /upload/expect body-len)" = "curl-expect 200 $big" ]
check "chunked response relayed" \
	grep -q '^hello world$' <<<"$out"
check "1 MB response relayed whole" \
	[ "$(line curl-big-response)" = "curl-big-response 200 1000000" ]
check "Host other than the SNI: 421" \
	[ "$(line curl-misdirected)" = "curl-misdirected 421" ]
check "the misdirected request never reached an origin" \
	bash -c "! grep -q misdirected '$ORIGIN_LOG'"
check "respond rule answers locally (418, its body)" \
	bash -c "grep -q '^answered locally$' '$FB_TMP/out' && grep -q '^curl-local 418$' '$FB_TMP/out'"
check "respond rule: nothing went upstream" \
	bash -c "! grep -q '/local' '$ORIGIN_LOG'"
check "forwardURL: 200 from the forward target" \
	[ "$(line curl-forward)" = "curl-forward 200" ]

# The forward target verifies the token with the published JWKS (copied
# before the sandbox went away: it is the sandbox's public key).
check "forwardURL: target got base path + original path and query" \
	grep -q '"target": "/hook/fwd/a/b?z=1"' "$ORIGIN_LOG"
fwd_headers=$(origin /hook/fwd/a/b?z=1 headers)
check "forwardURL: x-firebreak-forwarded-* describe the original request" \
	"$PY" -c 'import json, sys
h = {k.lower(): v for k, v in json.loads(sys.argv[1])}
sys.exit(0 if (h["x-firebreak-forwarded-host"], h["x-firebreak-forwarded-scheme"],
	h["x-firebreak-forwarded-port"], h["x-firebreak-forwarded-path"]) ==
	("api.example.com", "https", "443", "/fwd/a/b?z=1") else 1)' "$fwd_headers"
check "forwardURL: the guest's forged token was dropped (one token)" \
	"$PY" -c 'import json, sys
h = [v for k, v in json.loads(sys.argv[1]) if k.lower() == "x-firebreak-token"]
sys.exit(0 if len(h) == 1 and h[0] != "forged" else 1)' "$fwd_headers"
check "GET /jwks on the control socket serves the published key" \
	"$PY" -c 'import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
sys.exit(0 if a == b and len(a["keys"]) == 1 else 1)' "$FB_TMP/jwks.json" "$FB_TMP/jwks.control"
check "forwardURL: the token verifies with the sandbox's published JWKS (iss, aud, exp <= 5 min, sandbox_id, htm, htu, query)" \
	"$PY" - "$fwd_headers" "$FB_TMP/jwks.json" "$FB_LAST_ID" \
	"$(origin /hook/fwd/a/b?z=1 method)" <<'PYEOF'
import base64, json, sys, time
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
def b64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
headers, jwks_path, sandbox, method = sys.argv[1:5]
tok = [v for k, v in json.loads(headers) if k.lower() == "x-firebreak-token"][0]
h, p, sig = tok.split(".")
hdr, claims = json.loads(b64(h)), json.loads(b64(p))
jwk = [k for k in json.load(open(jwks_path))["keys"] if k["kid"] == hdr["kid"]][0]
pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64(jwk["x"]), "big"),
    int.from_bytes(b64(jwk["y"]), "big"), ec.SECP256R1()).public_key()
raw = b64(sig)
der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                 int.from_bytes(raw[32:], "big"))
pub.verify(der, (h + "." + p).encode(), ec.ECDSA(hashes.SHA256()))
now = time.time()
ok = (hdr["alg"] == "ES256" and claims["iss"] == "firebreak" and
      claims["aud"] == "https://fwd.example.com/hook" and
      claims["sandbox_id"] == sandbox and now < claims["exp"] <= now + 300)
# The token names the request it came with: the method this request
# has, and the URL and query its x-firebreak-forwarded-* fields describe.
h = {k.lower(): v for k, v in json.loads(headers)}
port = h["x-firebreak-forwarded-port"]
path, _, query = h["x-firebreak-forwarded-path"].partition("?")
url = (h["x-firebreak-forwarded-scheme"] + "://" + h["x-firebreak-forwarded-host"] +
       ("" if port == "443" else ":" + port) + path)
ok = (ok and claims.get("htm") == method == "GET" and
      claims.get("htu") == url == "https://api.example.com/fwd/a/b" and
      claims.get("query") == query == "z=1")
sys.exit(0 if ok else 1)
PYEOF
check "urllib through the broker, body and header delivered" \
	bash -c "grep -q '^urllib 200 from-urllib$' '$FB_TMP/out'"
check "urllib request injected once" origin /v1/urllib injected-once
if command -v node >/dev/null; then
	check "node fetch through the broker" \
		bash -c "grep -q '^node 200 /v1/node$' '$FB_TMP/out'"
	check "node request injected once" origin /v1/node injected-once
else
	skip "node fetch through the broker" "node is not installed"
fi
check "brokered name: the guest sees the sandbox CA's leaf" \
	bash -c "grep -q '^issuer api.example.com CN=firebreak_sandbox_CA' '$FB_TMP/out'"
check "non-brokered name stays spliced: the origin's own certificate" \
	bash -c "grep -q '^issuer plain.example.com CN=firebreak-test-ca$' '$FB_TMP/out'"

for spec in "${raw[@]}"; do
	name=${spec%%,*}
	got=$(grep -m1 "^raw $name " <<<"$out" | cut -d' ' -f3)
	case $name in
	connect|trace) want='^405$' ;;
	te_x) want='^(400|501)$' ;;
	pri) want='^(400|505)$' ;;
	host_other|absolute_other) want='^421$' ;;
	too_many_fields) want='^431$' ;;
	*) want='^400$' ;;
	esac
	check "smuggling $name: refused ($got)" grep -Eq "$want" <<<"$got"
done
check "no smuggling payload reached the origin" \
	bash -c "! grep -q smuggle '$ORIGIN_LOG'"

check "WebSocket: 101 from the origin, then bytes relayed both ways" \
	grep -q '^ws 101 frames-as-bytes$' <<<"$out"
check "WebSocket: the handshake carried the injected header once" \
	origin /ws injected-once
check "a client offering only h2 is refused (no_application_protocol)" \
	grep -qi '^alpn refused .*no_application_protocol' <<<"$out"
check "a client offering h2 and http/1.1 gets http/1.1" \
	grep -q '^alpn ok http/1.1$' <<<"$out"
check "an upstream whose certificate does not name the host: 502" \
	[ "$(line curl-unverified-upstream)" = "curl-unverified-upstream 502" ]
check "nothing was sent to the unverified upstream" \
	bash -c "! grep -q never '$ORIGIN_LOG'"
check "audit: the 502 is denied and says why (upstream-tls-failed)" \
	grep -q '"event.action":"request","event.outcome":"denied".*"event.reason":"upstream-tls-failed".*"http.response.status_code":502' "$AUDIT"
check "audit: the 421 is denied and says why" \
	grep -q '"event.action":"request","event.outcome":"denied".*"event.reason":"host-not-sni".*"http.response.status_code":421' "$AUDIT"
check "audit: a request line per brokered request with the injected header's name" \
	grep -q '"event.action":"request".*"url.path":"/v1/get".*"firebreak.injected":"x-api-key"' "$AUDIT"
check "audit: the request line has status, rule and upstream" \
	grep -q '"url.path":"/v1/get","http.response.status_code":200,"rule.name":"api.example.com\[2\]".*"server.ip":"203.0.113.10"' "$AUDIT"
check "the CA key is 0600 in the sandbox's state dir" [ "$key_mode" = 600 ]
check "the control API answered (policy read back)" \
	grep -q 'api.example.com' "$FB_TMP/control.out"
check "the secret is in no log, output, state file or control API answer" \
	bash -c "! grep -rqF '$SECRET' '$FB_TMP/out' '$AUDIT' '$FB_TMP/state' '$FB_TMP/control.out'"
check "the query string is not logged" \
	bash -c "! grep -q 'q=1' '$AUDIT'"
check "no sanitizer report from the launcher or the proxy" \
	bash -c "! grep -Eq 'Sanitizer|runtime error' '$FB_TMP/out'"
check "nothing left behind" [ -z "$(fb_leftovers "$FB_LAST_ID")" ]
