#!/bin/bash
# make demo: one microVM (the qemu backend) behind firebreak, under
# examples/policies/demo.yaml, in network namespaces of its own:
#
#   "internet" namespace   www.demo.test      an allowed web origin
#                          evil.demo.test     a web origin the policy refuses
#                          api.demo.test      an API (TLS) that echoes the
#                                             requests it receives
#                          198.51.100.10:7    an echo service, allowed by address
#                          a DNS server for these names
#   "host" namespace       firebreak run --backend qemu (its proxy, its VM)
#
# The guest tries each thing once; this script then says what happened and
# shows the audit log.  Nothing reaches a real network, and everything is
# removed at the end (tests/e2e/lib.sh builds and removes the namespaces).
#
# Usage: examples/demo.sh [BUILD_DIR]   (as root; `make demo` builds first)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export FB_BUILD=${1:-build/plain}
GUEST=${FIREBREAK_GUEST_DIR:-$ROOT/build/guest}

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (it creates network namespaces)" >&2
	exit 1
fi
for need in "$FB_BUILD/bin/firebreak" "$GUEST/vmlinux" \
	    "$GUEST/initramfs.cpio.gz"; do
	[ -e "$need" ] || { echo "demo: $need is missing; run make demo" >&2; exit 1; }
done
command -v qemu-system-x86_64 >/dev/null ||
	{ echo "demo: qemu-system-x86_64 is missing; run make demo" >&2; exit 1; }

. tests/e2e/lib.sh
. tests/e2e/proxy_lib.sh

KEY=sk-demo-$RANDOM$RANDOM$RANDOM
POLICY=$FB_TMP/policy.yaml
AUDIT=$FB_TMP/audit.log
API_LOG=$FB_TMP/api.log
OUT=$FB_TMP/guest.out
T0=$(date +%s)

good() { printf '  [ok]      %s\n' "$*"; }
bad() { printf '  [FAILED]  %s\n' "$*"; }
not_yet() { printf '  [not yet] %s\n' "$*"; }
detail() { printf '            %s\n' "$*"; }

echo "== setting up: an internet namespace (origins, DNS) and a host namespace"
fb_world && px_certs api.demo.test &&
fb_origin_addrs tcp,203.0.113.10 tcp,203.0.113.11 tcp,203.0.113.12 ||
	{ echo "demo: could not build the namespaces" >&2; exit 1; }
ip netns exec "$INET" "$PY" tests/e2e/echo_origin.py "$FB_TMP/api.ready" \
	"$API_LOG" "$PX_CERTS/api.demo.test.pem" "$PX_CERTS/api.demo.test.key" \
	203.0.113.10,443 &
FB_PIDS+=($!)
px_wait_file "$FB_TMP/api.ready" &&
px_origins "$INET" http,203.0.113.11,80 http,203.0.113.12,80 &&
fb_origins tcp,198.51.100.10,7,echo &&
px_dns "$INET" 192.0.2.2 www.demo.test=203.0.113.11 \
	evil.demo.test=203.0.113.12 api.demo.test=203.0.113.10 ||
	{ echo "demo: could not start the origins" >&2; exit 1; }
cp examples/policies/demo.yaml "$POLICY"

# The guest's side, in busybox sh (and the image's openssl).  It prints
# "WHAT RESULT" lines; the API's answer stays inside (it echoes the key).
cat >"$FB_TMP/guest.sh" <<'EOF'
echo "allowed $(timeout 10 wget -q -O- http://www.demo.test/ 2>&1)"
echo "refused $(timeout 10 wget -O- --header 'Host: evil.demo.test' \
	http://203.0.113.12/ 2>&1 | grep -o 'HTTP/1.1 [0-9]*.*' | head -n 1)"
echo "dns $(nslookup evil.demo.test 2>&1 | grep -o NXDOMAIN | head -n 1)"
echo "key-in-guest $(env | grep -c sk-demo)"
printf 'GET /v1/hello HTTP/1.1\r\nHost: api.demo.test\r\nConnection: close\r\n\r\n' |
	timeout 20 openssl s_client -quiet -verify_return_error \
	-connect api.demo.test:443 -servername api.demo.test 2>/dev/null |
	head -n 1 | tr -d '\r' | sed 's/^/brokered /'
echo "stream-open"
start=$(date +%s)
echoes=$( (while :; do echo tick; sleep 0.3; done) |
	timeout 60 nc 198.51.100.10 7 | wc -l)
echo "stream $echoes $(($(date +%s) - start))"
EOF

# KVM where qemu, run as nobody with /dev/kvm's group (never root's), can
# open it: the launcher's own rule (vmhost/kvm.h)
kvm_usable() {
	local g
	g=$(stat -c %g /dev/kvm 2>/dev/null) || return 1
	[ "$g" != 0 ] || g=65534
	setpriv --reuid=65534 --regid=65534 --groups "$g" \
		test -r /dev/kvm -a -w /dev/kvm 2>/dev/null
}
echo "== booting the microVM (qemu, $(kvm_usable && echo KVM || echo "TCG: no KVM for qemu's user here, a few seconds"))"
# ip execs firebreak: $! is the launcher, which takes the SIGHUP below.
DEMO_API_KEY=$KEY ip netns exec "$HOST" "$FIREBREAK" run --backend qemu --guest "$GUEST" \
	--state-dir "$FB_TMP/state" --name demo-$$ --policy "$POLICY" \
	"${PUBLICS[@]}" --resolver 192.0.2.2 --upstream-ca "$PX_CA" \
	--audit-log "$AUDIT" -- sh -c "$(cat "$FB_TMP/guest.sh")" \
	</dev/null >"$OUT" 2>&1 &
run=$!
FB_PIDS+=($run)

# The live policy change: once the guest's stream is open, take its
# address range away and tell firebreak run to re-read the policy.
for _ in $(seq 900); do
	grep -q '^stream-open' "$OUT" || ! kill -0 "$run" 2>/dev/null && break
	sleep 0.1
done
if grep -q '^stream-open' "$OUT"; then
	sleep 2
	sed -i '/^subnets:/,$d' "$POLICY"
	kill -HUP "$run"
fi
wait "$run"
rc=$?
tr -d '\r' <"$OUT" >"$OUT.txt"
line() { sed -n "s/^$1 //p" "$OUT.txt" | head -n 1; }

echo "== what the guest saw"
if [ "$(line allowed)" = "origin 203.0.113.11 host=www.demo.test" ]; then
	good "allowed: GET http://www.demo.test/ -> \"$(line allowed)\""
else
	bad "allowed: GET http://www.demo.test/ -> \"$(line allowed)\""
fi
refused=$(line refused)
if [[ $refused == *403* ]]; then
	good "refused: GET http://203.0.113.12/ with Host: evil.demo.test"
	detail "-> $refused, reason $(grep -m1 '"destination.domain":"evil.demo.test"' \
		"$AUDIT" | grep -o '"event.reason":"[^"]*"' | cut -d'"' -f4)"
else
	bad "refused: GET with Host: evil.demo.test -> \"$refused\""
fi
if [ "$(line dns)" = NXDOMAIN ]; then
	good "DNS: evil.demo.test -> NXDOMAIN (the query never left the sandbox)"
else
	bad "DNS: evil.demo.test -> \"$(line dns)\""
fi
if [ "$(line brokered)" = "HTTP/1.1 200 OK" ] &&
   grep -qF "$KEY" "$API_LOG" 2>/dev/null; then
	good "brokered: GET https://api.demo.test/v1/hello -> $(line brokered)"
	detail "TLS verified in the guest against the sandbox CA its init installed"
	detail "the API received x-api-key: ${KEY:0:10}... added by the proxy"
elif [ -z "$(line brokered)" ]; then
	not_yet "brokered: GET https://api.demo.test/v1/hello got no answer"
	detail "(the request reached the proxy: see the audit log below)"
else
	bad "brokered: GET https://api.demo.test/v1/hello -> $(line brokered)"
fi
if [ "$(line key-in-guest)" = 0 ] && ! grep -qF "$KEY" "$OUT.txt"; then
	good "the key is nowhere in the guest's environment or output"
else
	bad "the key reached the guest"
fi
read -r echoes secs <<<"$(line stream)"
if [ -n "${secs:-}" ] && [ "$secs" -lt 50 ]; then
	good "live policy change: 198.51.100.0/24 removed, SIGHUP to firebreak run"
	detail "-> the guest's open stream to 198.51.100.10:7 was cut after" \
		"$echoes echoes"
else
	bad "live policy change: the stream was not cut (${echoes:-?} echoes)"
fi
if [ "$rc" = 0 ]; then
	good "the guest's exit status came back: $rc"
else
	bad "firebreak run exited with $rc"
	sed 's/^/            | /' "$OUT.txt" | grep -v '^ *| \(allowed\|refused\|dns\|key-in-guest\|brokered\|stream\)'
fi

echo "== the audit log ($(wc -l <"$AUDIT") lines; decisions shown)"
"$PY" - "$AUDIT" <<'EOF'
import json, sys
last = None
for raw in open(sys.argv[1]):
    e = json.loads(raw)
    action = e.get("event.action")
    if e.get("event.type") == "end" and action == "connection":
        continue                       # the close lines: bytes and duration
    what = (e.get("dns.question.name") or e.get("destination.domain")
            or e.get("destination.ip") or "")
    if action == "request":
        what = "%s %s %s" % (e.get("http.request.method"),
                             e.get("tls.client.server_name"), e.get("url.path"))
    extra = ["%s=%s" % (name, e[k]) for k, name in
             (("event.reason", "reason"), ("rule.name", "rule"),
              ("firebreak.injected", "injected"), ("event.type", "type"))
             if k in e]
    text = "%-10s %-8s %-30s %s" % (action, e.get("event.outcome", ""),
                                    what, " ".join(extra))
    if text != last:                   # A and AAAA queries: one line
        print("  %s %s" % (e["@timestamp"][11:23], text))
    last = text
EOF
echo "== done in $(($(date +%s) - T0)) s; removing the namespaces"
