#!/bin/bash
# proxy_route.sh — a policy change judges the way a live connection goes,
# not only whether its name and the guest's destination would be allowed.
# A new connection goes to the name's own answer unless an allowed CIDR
# covers the guest's destination (then there); so a change that moves the
# route must cut what went the other way:
#   - dialled by name, then the name is withdrawn and the guest's
#     destination allowed by CIDR: what it reaches is allowed by neither;
#   - still resolving at the change: it must not go on to dial the name;
#   - dialled to the guest's destination by CIDR, then the CIDR removed and
#     the name allowed: a new one would go to the name's answer;
# while a change that only adds a CIDR over the destination keeps one
# dialled by a name it still allows.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

px_netns fbroute
for a in 10 20 53; do ip -n "$NS" addr add 198.51.100.$a/32 dev lo; done
px_redirect_guests || { not_ok setup nft; exit 1; }
px_certs allowed.test other.test || { not_ok setup certs; exit 1; }
px_origins "$NS" https,198.51.100.10,443,allowed.test \
	https,198.51.100.20,443,other.test || { not_ok setup origins; exit 1; }
px_dns "$NS" 198.51.100.53 allowed.test=198.51.100.10 \
	slow.test=delay:2:198.51.100.10 || { not_ok setup dns; exit 1; }

printf 'allow:\n  - allowed.test\n' >"$FB_TMP/policy.yaml"
px_proxy route

put() {
	px_curl_control "$SOCK" -X PUT --data-binary "$1" http://x/policy
}

# held ADDR NAME OUT: a guest's keep-alive TLS connection to ADDR:443 with
# SNI NAME (the certificate not checked: where it lands is what is
# looked at).  Writes the first answer to OUT, then, once OUT.go exists,
# the second answer or "closed".
held() {
	px_guest "$NS" "$PY" -c '
import os, socket, ssl, sys, time
addr, name, out = sys.argv[1:4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def answer(s):
    s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % name.encode())
    data = b""
    while b"\n" not in data.split(b"\r\n\r\n", 1)[-1] or b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return "closed"
        data += chunk
    return data.split(b"\r\n\r\n", 1)[1].decode().strip()
try:
    s = ctx.wrap_socket(socket.create_connection((addr, 443), timeout=10),
                        server_hostname=name)
    first = answer(s)
except (OSError, ssl.SSLError) as e:
    first = "closed"
with open(out, "w") as f:
    print(first, file=f, flush=True)
parent = os.getppid()
for _ in range(1000):  # 20 s at most, and not past the test
    if os.path.exists(out + ".go") or os.getppid() != parent:
        break
    time.sleep(0.02)
try:
    second = answer(s)
except (OSError, ssl.SSLError):
    second = "closed"
with open(out, "a") as f:
    print(second, file=f)
' "$@" </dev/null >/dev/null 2>&1
}

# hold NAME ADDR SNI: start held, wait for its first answer (second
# lets it go on and end)
hold() {
	: >"$FB_TMP/$1" && chmod 666 "$FB_TMP/$1"
	held "$2" "$3" "$FB_TMP/$1" &
	FB_PIDS+=($!)
	for _ in $(seq 100); do [ -s "$FB_TMP/$1" ] && break; sleep 0.05; done
}
# second NAME: let it ask again; its two answers, on one line
second() {
	touch "$FB_TMP/$1.go"
	for _ in $(seq 100); do [ "$(wc -l <"$FB_TMP/$1")" = 2 ] && break; sleep 0.05; done
	tr '\n' '|' <"$FB_TMP/$1"
}

NAMED="origin 198.51.100.10 allowed.test"
DIRECT="origin 198.51.100.20 other.test"

# 1. by name to .10, then the name withdrawn and .20 allowed by CIDR
hold a 198.51.100.20 allowed.test
out=$(put '{"subnets":{"allow":["198.51.100.20/32"]}}')
check "name withdrawn, guest's destination allowed by CIDR: the connection by name is cut ($out)" \
	grep -q '"closed":1' <<<"$out"
out=$(second a)
check "... it reaches the name's origin no more ($out)" [ "$out" = "$NAMED|closed|" ]

# 2. the name allowed again beside the CIDR: one dialled by name stays
put '{"allow":["allowed.test"],"subnets":{"allow":["198.51.100.20/32"]}}' >/dev/null
put '{"allow":["allowed.test"]}' >/dev/null
hold b 198.51.100.20 allowed.test
out=$(put '{"allow":["allowed.test"],"subnets":{"allow":["198.51.100.20/32"]}}')
check "a CIDR added over the destination keeps a connection by a name still allowed ($out)" \
	grep -q '"closed":0' <<<"$out"
out=$(second b)
check "... which goes on to the name's origin ($out)" [ "$out" = "$NAMED|$NAMED|" ]

# 3. by CIDR to .20 itself, then the CIDR removed, the name still allowed
hold c 198.51.100.20 allowed.test
out=$(put '{"allow":["allowed.test"]}')
check "CIDR removed, the name allowed: the connection to the guest's destination is cut ($out)" \
	grep -q '"closed":1' <<<"$out"
out=$(second c)
check "... it reaches that destination no more ($out)" [ "$out" = "$DIRECT|closed|" ]

# 3b. to the guest's destination by CIDR, then allow-all: any route goes
put '{"allow":["allowed.test"],"subnets":{"allow":["198.51.100.20/32"]}}' >/dev/null
hold e 198.51.100.20 allowed.test
out=$(put allow-all)
check "allow-all keeps a connection whatever its route ($out)" grep -q '"closed":0' <<<"$out"
out=$(second e)
check "... which goes on where it went ($out)" [ "$out" = "$DIRECT|$DIRECT|" ]

# 4. still resolving (the answer takes 2 s) when the name is withdrawn and
#    the guest's destination allowed by CIDR
put '{"allow":["slow.test"]}' >/dev/null
: >"$FB_TMP/d" && chmod 666 "$FB_TMP/d"
held 198.51.100.20 slow.test "$FB_TMP/d" &
dpid=$!
FB_PIDS+=($dpid)
for _ in $(seq 100); do grep -q slow.test "$PX_DNS_LOG" 2>/dev/null && break; sleep 0.02; done
out=$(put '{"subnets":{"allow":["198.51.100.20/32"]}}')
check "a connection resolving a withdrawn name is cut, not dialled ($out)" \
	grep -q '"closed":1' <<<"$out"
for _ in $(seq 100); do [ -s "$FB_TMP/d" ] && break; sleep 0.05; done
check "... the guest gets no answer ($(head -1 "$FB_TMP/d"))" [ "$(head -1 "$FB_TMP/d")" = closed ]
sleep 2.2 # past the DNS answer
check "audit log: its decision stands as the allow it was, the end says why" \
	grep -q '"event.outcome":"allowed".*"event.type":"start","event.reason":"domain".*"destination.domain":"slow.test"' "$AUDIT"
check "audit log: no connection was dialled for it" \
	px_absent '"server.ip":[^,]*,"server.port":443,"destination.domain":"slow.test"' "$AUDIT"
check "the proxy is still running" kill -0 "$PROXY_PID"
touch "$FB_TMP/d.go"
wait "$dpid"
