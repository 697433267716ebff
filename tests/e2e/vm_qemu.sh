#!/bin/bash
# The qemu backend end to end: a real microVM (KVM where /dev/kvm exists,
# TCG otherwise) boots the guest image on the sandbox's tap; its init
# takes the network, the resolver and the sandbox CA from the launcher;
# the guest fetches from an allowed origin through the proxy, is refused a
# denied one and a denied name, calls a brokered API over TLS it verifies
# with the CA its init installed, and its exit status comes back.  Then
# the clear refusals: no guest image, no hypervisor.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GUEST=${FIREBREAK_GUEST_DIR:-$ROOT/build/guest}
SECRET=fbvm-$$-$RANDOM$RANDOM
AUDIT=$FB_TMP/audit.log
ORIGIN_LOG=$FB_TMP/origin.log

if ! command -v qemu-system-x86_64 >/dev/null; then
	skip "qemu backend" "qemu-system-x86_64 is not installed"
	exit 0
fi
# Built once and cached; the first build downloads Debian's kernel package.
if ! "$ROOT/vmhost/guest/build.sh" "$GUEST" >"$FB_TMP/guest.log" 2>&1; then
	skip "qemu backend" "no guest image: $(tail -n 1 "$FB_TMP/guest.log")"
	exit 0
fi

fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }
px_certs api.example.com || { not_ok "certificates"; exit 1; }
fb_origin_addrs tcp,203.0.113.10 tcp,203.0.113.11 tcp,203.0.113.12
ready=$FB_TMP/echo.ready
ip netns exec "$INET" "$PY" "$PX_DIR/echo_origin.py" "$ready" "$ORIGIN_LOG" \
	"$PX_CERTS/api.example.com.pem" "$PX_CERTS/api.example.com.key" \
	203.0.113.10,443 &
FB_PIDS+=($!)
px_wait_file "$ready" || { not_ok "echo origin"; exit 1; }
px_origins "$INET" http,203.0.113.11,80 http,203.0.113.12,80 ||
	{ not_ok "http origins"; exit 1; }
px_dns "$INET" 192.0.2.2 api.example.com=203.0.113.10 \
	allowed.example.com=203.0.113.11 denied.example.com=203.0.113.12 ||
	{ not_ok "dns"; exit 1; }

cat >"$FB_TMP/policy.yaml" <<'EOF'
allow:
  allowed.example.com: []
  api.example.com:
    - transform:
        - headers: { x-api-key: "${env:FB_VM_SECRET}" }
EOF

# What the guest runs (busybox sh, and the image's openssl).  Each line
# it prints is "WHAT RESULT"; the brokered answer's body stays in the
# guest, since the echo origin sends the key it received back.
cat >"$FB_TMP/guest.sh" <<'EOF'
req='GET /v1/vm HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n'
tls() {
	printf "$req" | timeout 30 openssl s_client -quiet -verify_return_error \
		-connect api.example.com:443 -servername api.example.com "$@" \
		2>/dev/null | head -n 1
}
echo "allowed $(timeout 10 wget -q -O- http://allowed.example.com/a 2>&1)"
# by address, naming the denied host: the proxy decides on the Host header
echo "denied $(timeout 10 wget -O- --header 'Host: denied.example.com' \
	http://203.0.113.12/d 2>&1 | grep -o 'returned error: .*')"
echo "dns-denied $(nslookup denied.example.com 2>&1 | grep -o NXDOMAIN | head -n 1)"
echo "dns-allowed $(nslookup allowed.example.com 2>&1 | grep -c 203.0.113.11)"
echo "brokered $(tls)"
echo "brokered-without-the-ca $(tls -no-CAfile -no-CApath -no-CAstore)"
echo "trust $(grep -c 'BEGIN CERTIFICATE' /usr/local/share/ca-certificates/firebreak-sandbox-ca.crt) $SSL_CERT_FILE"
echo "arg [$1]"
env | sed 's/^/env /'
exit 7
EOF

fb_next_id
start=$(date +%s)
out=$(FB_VM_SECRET=$SECRET in_host timeout -k 5 120 "$FIREBREAK" run \
	--backend qemu --guest "$GUEST" --state-dir "$FB_TMP/state" \
	--name "$FB_LAST_ID" --policy "$FB_TMP/policy.yaml" "${PUBLICS[@]}" \
	--resolver 192.0.2.2 --upstream-ca "$PX_CA" --audit-log "$AUDIT" \
	-- sh -c "$(cat "$FB_TMP/guest.sh")" guest "it's \$HOME \"q\"" \
	</dev/null 2>&1)
rc=$?
echo "# boot, run and teardown: $(($(date +%s) - start)) s"
echo "$out" | grep -v "^env " | sed 's/^/# /'
line() { grep -m1 "^$1 " <<<"$out"; }
has() { grep -q "$1" <<<"$out"; }

check "the guest's exit status comes back (7)" [ "$rc" = 7 ]
check "the command's words arrive unchanged" \
	[ "$(line arg)" = "arg [it's \$HOME \"q\"]" ]
check "allowed origin: fetched through the proxy" \
	[ "$(line allowed)" = "allowed origin 203.0.113.11 host=allowed.example.com" ]
check "denied origin: refused with 403" \
	has '^denied returned error: HTTP/1.1 403'
check "denied name: NXDOMAIN from the sandbox's resolver" \
	[ "$(line dns-denied)" = "dns-denied NXDOMAIN" ]
check "allowed name: resolved" [ "$(line dns-allowed)" = "dns-allowed 1" ]
check "brokered API over TLS, verified with the CA the init installed" \
	has '^brokered HTTP/1.1 200'
check "control: without the sandbox CA the same handshake fails" \
	[ "$(line brokered-without-the-ca)" = "brokered-without-the-ca " ]
check "the CA at the anchor path, SSL_CERT_FILE at the bundle" \
	[ "$(line trust)" = "trust 1 /etc/ssl/certs/ca-certificates.crt" ]
check "the origin got the injected key exactly once" \
	"$PY" -c 'import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
keys = [v for r in reqs if r["target"] == "/v1/vm"
	for k, v in r["headers"] if k.lower() == "x-api-key"]
sys.exit(0 if keys == [sys.argv[2]] else 1)' "$ORIGIN_LOG" "$SECRET"
check "the guest never saw the key (not in its environment or output)" \
	bash -c '! grep -qF "$1" <<<"$2"' - "$SECRET" "$out"
check "the refused name never reached the upstream DNS server" \
	bash -c "! grep -q 'denied' '$PX_DNS_LOG'"
audit() {
	"$PY" -c 'import json, sys
want = dict(a.split("=", 1) for a in sys.argv[2:])
for l in open(sys.argv[1]):
    e = json.loads(l)
    if all(str(e.get(k)) == v for k, v in want.items()):
        sys.exit(0)
sys.exit(1)' "$AUDIT" "$@"
}
check "audit: the allowed connection" audit event.action=connection \
	event.outcome=allowed destination.domain=allowed.example.com
check "audit: the refused connection" audit event.action=connection \
	event.outcome=denied destination.domain=denied.example.com
check "audit: the refused query" audit event.action=dns \
	event.outcome=denied dns.question.name=denied.example.com
check "audit: the brokered request names the injected header" \
	audit event.action=request url.path=/v1/vm firebreak.injected=x-api-key
check "nothing left behind" [ -z "$(fb_leftovers "$FB_LAST_ID")" ]

# SIGTERM to the launcher stops the VM: 143, qemu gone, nothing left.
# The launcher is given a descriptor (7) that qemu must not inherit.
# (ip execs firebreak, so $! is the launcher; qemu is its grandchild.)
fb_next_id
ip netns exec "$HOST" "$FIREBREAK" run --backend qemu --guest "$GUEST" \
	--state-dir "$FB_TMP/state" --name "$FB_LAST_ID" \
	-- sleep 100 </dev/null >"$FB_TMP/term.out" 2>&1 7>"$FB_TMP/stray" &
launcher=$!
FB_PIDS+=($launcher)
qemu=
for _ in $(seq 300); do
	for relay in $(pgrep -P "$launcher"); do
		qemu=$(pgrep -P "$relay" -x qemu-system-x86)
		[ -n "$qemu" ] && break 2
	done
	sleep 0.05
done
check "a VM starting: its qemu found under the launcher" [ -n "$qemu" ]
check "qemu runs in a session of its own, not the launcher's (its terminal's)" \
	holds '[ -n "$qemu" ] && [ "$(ps -o sid= -p "$qemu")" != "$(ps -o sid= -p "$launcher")" ]'
check "qemu holds no descriptor the caller of firebreak run left open (7)" \
	holds '[ -n "$qemu" ] && ! ls -l "/proc/$qemu/fd" | grep -q "$FB_TMP/stray"'
kill -TERM "$launcher"
wait "$launcher"
rc=$?
check "SIGTERM to the launcher: status 143" [ "$rc" = 143 ]
check "SIGTERM to the launcher: qemu is gone" \
	bash -c "! kill -0 ${qemu:-0} 2>/dev/null"
check "SIGTERM to the launcher: nothing left behind" \
	[ -z "$(fb_leftovers "$FB_LAST_ID")" ]

# Refusals before anything exists.
fb_next_id
out=$(in_host "$FIREBREAK" run --backend qemu --guest "$FB_TMP/no-guest" \
	--state-dir "$FB_TMP/state" --name "$FB_LAST_ID" -- true 2>&1)
rc=$?
echo "$out" | sed 's/^/# /'
check "no guest image: status 1, one line naming the missing kernel" \
	bash -c "[ $rc = 1 ] && grep -q 'guest image $FB_TMP/no-guest/vmlinux: No such file' <<<'$out' && grep -q 'make guest' <<<'$out'"
check "no guest image: nothing left behind" \
	[ -z "$(fb_leftovers "$FB_LAST_ID")" ]
fb_next_id
out=$(in_host env PATH=/nonexistent "$FIREBREAK" run --backend qemu \
	--guest "$GUEST" --state-dir "$FB_TMP/state" --name "$FB_LAST_ID" \
	-- true 2>&1)
rc=$?
echo "$out" | sed 's/^/# /'
check "no hypervisor: status 1, the message names qemu and the package" \
	bash -c "[ $rc = 1 ] && grep -q 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)' <<<'$out'"
check "no hypervisor: nothing left behind" \
	[ -z "$(fb_leftovers "$FB_LAST_ID")" ]
