#!/bin/bash
# policy_cli.sh — `firebreak policy check | explain | dump`: exit codes and
# the words users and scripts read.  Files only; no network.
set -u
FB=${FB_BUILD:-build/plain}/bin/firebreak
dir=$(mktemp -d /tmp/fb-policy-cli.XXXXXX)
trap 'rm -rf "$dir"' EXIT

ok() { echo "ok - $1"; }
notok() { echo "not ok - $1"; shift; printf '  %s\n' "$@"; }

# run NAME WANT_RC PATTERN CMD...: the command's exit status is WANT_RC and
# its output (stdout and stderr) matches the extended regex PATTERN.
run() {
	local name=$1 want=$2 pattern=$3 out rc
	shift 3
	out=$("$@" 2>&1); rc=$?
	if [ "$rc" != "$want" ]; then
		notok "$name" "exit $rc, expected $want" "$out"
	elif ! grep -Eq -- "$pattern" <<<"$out"; then
		notok "$name" "output does not match /$pattern/" "$out"
	else
		ok "$name"
	fi
}

# the first line of stdout only, exactly
line() {
	local name=$1 want=$2 out
	shift 2
	out=$("$@" 2>/dev/null | head -1)
	if [ "$out" = "$want" ]; then ok "$name"; else notok "$name" "got:      $out" "expected: $want"; fi
}

cat >"$dir/good.yaml" <<'EOF'
allow:
  "*.npmjs.org": []
  "github.com": []
  "api.openai.com":
    - match: { method: [POST], path: { startsWith: "/v1/" } }
      transform:
        - headers: { authorization: "Bearer ${env:FB_TEST_KEY}" }
  "internal.example.com":
    - forwardURL: "https://audit-proxy.example.com/fwd"
  "blocked.example.com":
    - match: { path: { regex: "^/admin(/|$)" } }
      response: { statusCode: 403 }
subnets:
  allow: ["10.0.0.0/8", "169.254.169.254/32"]
  deny:  ["10.1.0.0/16"]
EOF
cat >"$dir/catchall.yaml" <<'EOF'
allow:
  "*": []
  "www.*.com": []
  "*.example.com": []
EOF
printf 'allow: ["*"]\nsubnets: { deny: ["8.8.8.0/24"] }\n' >"$dir/deny8.yaml"
printf 'allow-all\n' >"$dir/all.yaml"
printf 'deny-all\n' >"$dir/none.yaml"
cat >"$dir/bad.yaml" <<'EOF'
allow:
  "api*.example.com": []
subnets:
  deny: ["10.0.0.1/8"]
EOF
: >"$dir/empty.yaml"
export FB_TEST_KEY=sk-test-secret-value

# ---- check -----------------------------------------------------------
line "check: summary line" \
	"$dir/good.yaml: ok: custom, 5 domains, 3 rules, 2 allowed CIDRs, 1 denied CIDR" \
	"$FB" policy check "$dir/good.yaml"
run "check: modes" 0 "all.yaml: ok: allow-all" "$FB" policy check "$dir/all.yaml" "$dir/none.yaml"
run "check: deny-all summary" 0 "none.yaml: ok: deny-all" "$FB" policy check "$dir/none.yaml"
run "check: invalid file exits 1 with FILE:LINE:COL" 1 "bad.yaml:2:[0-9]+: .*whole label" \
	"$FB" policy check "$dir/bad.yaml"
run "check: every problem reported" 1 "bad.yaml:4:[0-9]+: .*did you mean 10.0.0.0/8" \
	"$FB" policy check "$dir/bad.yaml"
run "check: one bad file among good ones fails" 1 "good.yaml: ok" \
	"$FB" policy check "$dir/good.yaml" "$dir/bad.yaml"
run "check: empty file is an error" 1 "empty.yaml" "$FB" policy check "$dir/empty.yaml"
run "check: missing file" 1 "nope.yaml" "$FB" policy check "$dir/nope.yaml"
run "check: no file is a usage error" 2 "usage:" "$FB" policy check
run "check: --help" 0 "usage: firebreak policy check" "$FB" policy check --help

# ---- explain: addresses ----------------------------------------------
g=$dir/good.yaml
line "explain: nonpublic block" "deny key=- rule=- reason=nonpublic block=private-use ip=192.168.1.1" \
	"$FB" policy explain "$g" - --ip 192.168.1.1
line "explain: denied CIDR wins over allowed CIDR" "deny key=- rule=- reason=denied-cidr ip=10.1.2.3" \
	"$FB" policy explain "$g" github.com --ip 10.1.2.3
line "explain: allowed CIDR reopens 10/8" "allow key=- rule=- reason=allowed-cidr ip=10.2.0.1" \
	"$FB" policy explain "$g" - --ip 10.2.0.1
line "explain: metadata reopened alone" "allow key=- rule=- reason=allowed-cidr ip=169.254.169.254" \
	"$FB" policy explain "$g" - --ip 169.254.169.254
line "explain: its neighbour stays closed" "deny key=- rule=- reason=nonpublic block=link-local ip=169.254.169.253" \
	"$FB" policy explain "$g" - --ip 169.254.169.253
line "explain: an IP literal as HOST is the address" "deny key=- rule=- reason=nonpublic block=loopback ip=127.0.0.1" \
	"$FB" policy explain "$g" 127.0.0.1
line "explain: mapped IPv6 judged by its IPv4" "deny key=- rule=- reason=nonpublic block=loopback ip=::ffff:127.0.0.1" \
	"$FB" policy explain "$g" - --ip ::ffff:127.0.0.1
line "explain: a denied IPv4 address denies its mapped form" "deny key=- rule=- reason=denied-cidr ip=::ffff:8.8.8.8" \
	"$FB" policy explain "$dir/deny8.yaml" - --ip ::ffff:8.8.8.8
line "explain: and its NAT64 form" "deny key=- rule=- reason=denied-cidr ip=64:ff9b::808:808" \
	"$FB" policy explain "$dir/deny8.yaml" - --ip 64:ff9b::808:808
line "explain: a plain IPv6 address is not an embedding" "allow key=\"*\" rule=- reason=catch-all ip=2003:808:808::1" \
	"$FB" policy explain "$dir/deny8.yaml" - --ip 2003:808:808::1
line "explain: --public opens a range for names" "allow key=\"github.com\" rule=- reason=domain ip=100.64.0.1" \
	"$FB" policy explain "$g" github.com --ip 100.64.0.1 --public 100.64.0.0/10
line "explain: without --public it is closed" "deny key=- rule=- reason=nonpublic block=shared-address-space ip=100.64.0.1" \
	"$FB" policy explain "$g" github.com --ip 100.64.0.1

# ---- explain: names --------------------------------------------------
line "explain: allowed name" "allow key=\"github.com\" rule=- reason=domain" \
	"$FB" policy explain "$g" GitHub.com.
line "explain: wildcard, with port" "allow key=\"*.npmjs.org\" rule=- reason=domain ip=8.8.8.8 port=443" \
	"$FB" policy explain "$g" registry.npmjs.org --ip 8.8.8.8 --port 443
line "explain: apex not matched by leading wildcard" "deny key=- rule=- reason=not-allowed" \
	"$FB" policy explain "$g" npmjs.org
line "explain: domain-less without catch-all" "deny key=- rule=- reason=no-name ip=8.8.8.8" \
	"$FB" policy explain "$g" - --ip 8.8.8.8
line "explain: brokered name" "broker key=\"api.openai.com\" rule=- reason=domain" \
	"$FB" policy explain "$g" api.openai.com
line "explain: catch-all for names" "allow key=\"*\" rule=- reason=catch-all" \
	"$FB" policy explain "$dir/catchall.yaml" unknown.org
line "explain: catch-all for domain-less" "allow key=\"*\" rule=- reason=catch-all ip=8.8.8.8" \
	"$FB" policy explain "$dir/catchall.yaml" - --ip 8.8.8.8
line "explain: tie-break *.example.com over www.*.com" "allow key=\"*.example.com\" rule=- reason=domain" \
	"$FB" policy explain "$dir/catchall.yaml" www.example.com
line "explain: allow-all" "allow key=- rule=- reason=allow-all" "$FB" policy explain "$dir/all.yaml" anything.org
line "explain: allow-all keeps non-public closed" "deny key=- rule=- reason=nonpublic block=link-local ip=169.254.169.254" \
	"$FB" policy explain "$dir/all.yaml" - --ip 169.254.169.254
line "explain: deny-all" "deny key=- rule=- reason=deny-all" "$FB" policy explain "$dir/none.yaml" github.com
line "explain: IDN host" "deny key=- rule=- reason=not-allowed" "$FB" policy explain "$g" bücher.example

# ---- explain: requests -----------------------------------------------
line "explain: request matches a transform" "broker key=\"api.openai.com\" rule=0 reason=rule set=authorization" \
	"$FB" policy explain "$g" api.openai.com --method POST --path '/v1/chat/completions?stream=1'
line "explain: request matches no rule" "allow key=\"api.openai.com\" rule=- reason=no-rule" \
	"$FB" policy explain "$g" api.openai.com --method GET --path /v1/models
line "explain: the query is not part of the path" "allow key=\"api.openai.com\" rule=- reason=no-rule" \
	"$FB" policy explain "$g" api.openai.com --method POST --path '/v2?p=/v1/'
line "explain: forward" "forward key=\"internal.example.com\" rule=0 reason=rule url=https://audit-proxy.example.com/fwd" \
	"$FB" policy explain "$g" internal.example.com --path /anything
line "explain: respond" "respond key=\"blocked.example.com\" rule=0 reason=rule status=403" \
	"$FB" policy explain "$g" blocked.example.com --path /admin/users --header 'X-A: b'
line "explain: regex searched, not matched whole" "allow key=\"blocked.example.com\" rule=- reason=no-rule" \
	"$FB" policy explain "$g" blocked.example.com --path /x/admin
# the request is read and judged as the broker reads and judges a guest's
line "explain: a path in normal form" "respond key=\"blocked.example.com\" rule=0 reason=rule status=403" \
	"$FB" policy explain "$g" blocked.example.com --path /%61dmin
line "explain: a response rule's path without case" "respond key=\"blocked.example.com\" rule=0 reason=rule status=403" \
	"$FB" policy explain "$g" blocked.example.com --path /ADMIN/users
line "explain: a grant needs every reading" "allow key=\"api.openai.com\" rule=- reason=no-rule" \
	"$FB" policy explain "$g" api.openai.com --method POST --path //v1/chat
line "explain: dot-segments are refused" "refuse key=\"api.openai.com\" rule=- reason=dot-segment status=400" \
	"$FB" policy explain "$g" api.openai.com --method POST --path /v1/../admin
line "explain: a stray % is refused" "refuse key=\"api.openai.com\" rule=- reason=bad-escape status=400" \
	"$FB" policy explain "$g" api.openai.com --method POST --path /v1/100%
line "explain: a path override is refused" "refuse key=\"api.openai.com\" rule=- reason=path-override status=400" \
	"$FB" policy explain "$g" api.openai.com --method POST --path /v1/x --header 'X-Original-URL: /admin'
line "explain: a lower-case method is refused" "refuse key=\"api.openai.com\" rule=- reason=method-not-upper-case status=400" \
	"$FB" policy explain "$g" api.openai.com --method post --path /v1/x
line "explain: a Host for another name is refused" "refuse key=\"api.openai.com\" rule=- reason=host-not-sni status=421" \
	"$FB" policy explain "$g" api.openai.com --method POST --path /v1/x --header 'Host: other.example'
line "explain: a Host given is the guest's" "broker key=\"api.openai.com\" rule=0 reason=rule set=authorization" \
	"$FB" policy explain "$g" api.openai.com --method POST --path /v1/x --header 'host: API.openai.com:443'
line "explain: an X-Forwarded-Host for another name is refused" "refuse key=\"api.openai.com\" rule=- reason=forwarded-host-not-sni status=421" \
	"$FB" policy explain "$g" api.openai.com --method POST --path /v1/x --header 'X-Forwarded-Host: other.example'
line "explain: two Hosts are refused" "refuse key=\"api.openai.com\" rule=- reason=\"more than one Host\" status=400" \
	"$FB" policy explain "$g" api.openai.com --path /v1/x --header 'Host: api.openai.com' --header 'Host: x.test'
line "explain: a target the parser refuses" "refuse key=\"api.openai.com\" rule=- reason=\"invalid request-target\" status=400" \
	"$FB" policy explain "$g" api.openai.com --path 'v1/x'
run "explain: secret never printed" 0 "^broker" "$FB" policy explain "$g" api.openai.com --method POST --path /v1/x
if "$FB" policy explain "$g" api.openai.com --method POST --path /v1/x 2>&1 | grep -q sk-test; then
	notok "explain: no secret in output" "the secret value was printed"
else
	ok "explain: no secret in output"
fi

# ---- explain: errors -------------------------------------------------
run "explain: policy that fails to load exits 1" 1 "bad.yaml:2:" "$FB" policy explain "$dir/bad.yaml" github.com
run "explain: bad --ip is a usage error" 2 "--ip" "$FB" policy explain "$g" - --ip 10.0.0.256
run "explain: bad --port" 2 "--port" "$FB" policy explain "$g" - --port 70000
run "explain: bad --header" 2 "--header" "$FB" policy explain "$g" api.openai.com --header nocolon
# an argument that would make another line, or another request, of the
# head is refused, not judged as something else
run "explain: CR LF in --path" 2 "--path" "$FB" policy explain "$g" api.openai.com \
	--path $'/v1/x HTTP/1.1\r\nHost: api.openai.com\r\n\r\nGET /admin'
run "explain: white space in --method" 2 "--method" "$FB" policy explain "$g" api.openai.com --method 'G T'
run "explain: CR LF in --header" 2 "--header" "$FB" policy explain "$g" api.openai.com \
	--header $'X-A: b\r\n\r\nGET /admin HTTP/1.1'
run "explain: bad --public" 2 "host bits set" "$FB" policy explain "$g" - --public 10.0.0.1/8
run "explain: unknown option" 2 "usage:" "$FB" policy explain "$g" github.com --bogus
run "explain: missing HOST" 2 "usage:" "$FB" policy explain "$g"
run "explain: invalid name" 2 "wildcard|\\*" "$FB" policy explain "$g" 'a*.b.com'
run "explain: --help" 0 "--header K:V" "$FB" policy explain --help

# ---- dump and dispatch -----------------------------------------------
run "dump: redacted" 0 "<redacted>" "$FB" policy dump "$g"
if "$FB" policy dump "$g" | grep -q sk-test; then
	notok "dump: no secret" "the secret value was printed"
else
	ok "dump: no secret"
fi
run "dump: legacy shape" 0 '"allowedDomains"' "$FB" policy dump "$g" --legacy
run "dump: unknown option" 2 "usage:" "$FB" policy dump "$g" --bogus
run "policy: unknown command" 2 "unknown command" "$FB" policy frobnicate
run "policy: no command" 2 "usage:" "$FB" policy
run "policy: --help" 0 "explain FILE HOST" "$FB" policy --help
