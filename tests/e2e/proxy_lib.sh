# proxy_lib.sh — helpers for the proxy's end-to-end tests; source after lib.sh.
#
#   px_netns PREFIX         a namespace $NS (PREFIX-$$, lo up) for a proxy run
#                           alone as $PROXY_PID; both removed on exit
#   px_guest_link           a link gst in $NS for --nft --guest-if gst (the
#                           test ends if it cannot be made)
#   px_certs NAME...        a test CA ($PX_CA) and a leaf per NAME in $PX_CERTS
#   px_origins NS SPEC...   tls_origin.py in namespace NS (SPECs as it takes)
#   px_dns NS ADDR NAME=IP... dnsd.py in NS on ADDR:53, logging to $PX_DNS_LOG
#   px_proxy ID [ARG...]    firebreak-proxy alone in $NS, no nft table
#   px_guest NS CMD...      CMD in NS as nobody (the guest's privileges)
#   px_client NS ARGS...    proxy_client.py ARGS as a guest in NS
#   px_curl_control SOCK ARGS...  curl over the control socket
#   px_json_lines FILE      every line of FILE is one JSON object
#   px_absent PATTERN FILE  FILE exists and has no line matching PATTERN
#   px_send NS ADDR PORT BYTES   BYTES in one write as a guest; prints the answer

PX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PX_CERTS=$FB_TMP/certs
PX_CA=$PX_CERTS/ca.pem
PX_DNS_LOG=$FB_TMP/dns.log

px_netns() {
	NS=$1-$$
	PROXY_PID=
	trap px_netns_cleanup EXIT
	ip netns add "$NS" || { not_ok setup "ip netns add"; exit 1; }
	ip -n "$NS" link set lo up
}

px_guest_link() {
	ip -n "$NS" link add gst type veth peer name gst-peer &&
		ip -n "$NS" link set gst up ||
		{ not_ok setup "guest link"; exit 1; }
}

px_netns_cleanup() {
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	fb_cleanup
}

px_certs() {
	local n
	mkdir -p "$PX_CERTS"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$PX_CERTS/ca.key" -out "$PX_CA" -days 2 \
		-subj /CN=firebreak-test-ca 2>/dev/null || return 1
	for n in "$@"; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$PX_CERTS/$n.key" -out "$PX_CERTS/$n.csr" \
			-subj "/CN=$n" 2>/dev/null &&
		openssl x509 -req -in "$PX_CERTS/$n.csr" -CA "$PX_CA" \
			-CAkey "$PX_CERTS/ca.key" -CAcreateserial -days 2 \
			-out "$PX_CERTS/$n.pem" \
			-extfile <(echo "subjectAltName=DNS:$n") 2>/dev/null || return 1
	done
	chmod -R a+rX "$PX_CERTS"
}

# px_sandbox_ca NAME...: $FB_TMP/sca.{key,crt}, a sandbox CA as firebreak
# run makes it (P-256, name-constrained to the brokered NAMEs).
px_sandbox_ca() {
	local permitted n
	permitted=$(for n in "$@"; do printf ',permitted;DNS:%s' "$n"; done)
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$FB_TMP/sca.key" 2>/dev/null && chmod 600 "$FB_TMP/sca.key" &&
	openssl req -x509 -key "$FB_TMP/sca.key" -out "$FB_TMP/sca.crt" -days 1 \
		-subj "/CN=test sandbox CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "nameConstraints=critical${permitted}" 2>/dev/null &&
	chmod 644 "$FB_TMP/sca.crt"
}

# px_redirect_guests: in $NS, the guests' (uid 65534) TCP to port 443 goes
# to the proxy on :15001.
px_redirect_guests() {
	ip netns exec "$NS" nft -f - <<'NFT'
table ip fbtest {
	chain out {
		type nat hook output priority -100;
		meta skuid 65534 tcp dport 443 redirect to :15001
	}
}
NFT
}

px_wait_file() {
	for _ in $(seq 200); do
		[ -e "$1" ] && return 0
		sleep 0.02
	done
	return 1
}

px_origins() {
	local ns=$1 ready=$FB_TMP/origins.$RANDOM; shift
	ip netns exec "$ns" "$PY" "$PX_DIR/tls_origin.py" "$PX_CERTS" "$ready" "$@" &
	FB_PIDS+=($!)
	px_wait_file "$ready"
}

px_dns() {
	local ns=$1 addr=$2 ready=$FB_TMP/dns.$RANDOM; shift 2
	ip netns exec "$ns" "$PY" "$PX_DIR/dnsd.py" "$PX_DNS_LOG" "$ready" \
		"$addr" 53 "$@" &
	FB_PIDS+=($!)
	px_wait_file "$ready"
}

px_guest() {
	local ns=$1; shift
	ip netns exec "$ns" setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

px_client() {
	local ns=$1; shift
	px_guest "$ns" "$PY" "$PX_DIR/proxy_client.py" "$@"
}

px_curl_control() {
	local sock=$1; shift
	curl -sS --max-time 10 --unix-socket "$sock" "$@"
}

px_json_lines() {
	"$PY" -c 'import json, sys
n = 0
for line in open(sys.argv[1]):
    json.loads(line); n += 1
sys.exit(0 if n else 1)' "$1"
}

px_absent() { [ -e "$2" ] && ! grep -q "$1" "$2"; }

# px_proxy ID [ARG...]: firebreak-proxy alone in $NS (no nft table of its
# own) under $FB_TMP/policy.yaml, resolving through 198.51.100.53; control
# socket $SOCK, audit log $AUDIT.  Returns once the control socket is
# there (the test ends if it never is).
px_proxy() {
	local id=$1; shift
	SOCK=$FB_TMP/control.sock
	AUDIT=$FB_TMP/audit.log
	ip netns exec "$NS" "$FB_BUILD/bin/firebreak-proxy" --no-nft \
		--policy "$FB_TMP/policy.yaml" --listen 127.0.0.1:15001 \
		--control "$SOCK" --audit-log "$AUDIT" --sandbox-id "$id" \
		--resolver 198.51.100.53 --public 198.51.100.0/24 \
		"$@" 2>"$FB_TMP/proxy.err" &
	PROXY_PID=$!
	px_wait_file "$SOCK" ||
		{ not_ok setup "proxy did not start: $(cat "$FB_TMP/proxy.err")"; exit 1; }
}

# px_broker_proxy ID [ARG...]: px_proxy brokering with the CA of
# px_sandbox_ca.
px_broker_proxy() {
	local id=$1; shift
	px_proxy "$id" --ca-cert "$FB_TMP/sca.crt" --ca-key "$FB_TMP/sca.key" \
		--upstream-ca "$PX_CA" "$@"
}

# px_api_curl ARGS...: curl as a guest to api.test at 198.51.100.10,
# trusting the sandbox CA ($FB_TMP/sca.crt); the response head goes to
# $FB_TMP/h, the status code out.
px_api_curl() {
	if [ ! -e "$FB_TMP/h" ]; then
		chmod 755 "$FB_TMP" && touch "$FB_TMP/h" && chmod 666 "$FB_TMP/h"
	fi
	px_guest "$NS" curl -sS --max-time 10 --cacert "$FB_TMP/sca.crt" \
		--resolve api.test:443:198.51.100.10 -D "$FB_TMP/h" \
		-o /dev/null -w '%{http_code}' "$@" 2>>"$FB_TMP/curl.err"
}

# px_reused: the proxy's count of upstream connections taken from the pool
px_reused() {
	px_curl_control "$SOCK" http://proxy/stats |
		grep -o '"upstream_reused":[0-9]*' | cut -d: -f2
}

# px_echo_origin [NAME=ANSWER...]: echo_origin.py for api.test at
# 198.51.100.10:443 in $NS, logging to $ORIGIN_LOG, and the resolver at
# .53 that names it (the NAME=ANSWERs after, as dnsd.py takes them, win).
px_echo_origin() {
	local ready=$FB_TMP/echo.ready
	ORIGIN_LOG=$FB_TMP/origin.log
	ip netns exec "$NS" "$PY" "$PX_DIR/echo_origin.py" "$ready" "$ORIGIN_LOG" \
		"$PX_CERTS/api.test.pem" "$PX_CERTS/api.test.key" 198.51.100.10,443 &
	FB_PIDS+=($!)
	px_wait_file "$ready" || { not_ok setup origin; exit 1; }
	px_dns "$NS" 198.51.100.53 api.test=198.51.100.10 "$@" ||
		{ not_ok setup dns; exit 1; }
}

# px_send NS ADDR PORT BYTES: BYTES (Python escapes, as in b"...") in one
# write as a guest in NS; prints all that comes back until the close (3 s
# of silence ends it), each CRLF shown as '|'.
px_send() {
	px_guest "$1" "$PY" -c 'import codecs, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
s.sendall(codecs.escape_decode(sys.argv[3].encode())[0])
got = b""
try:
    while (d := s.recv(65536)):
        got += d
except OSError:
    got += b"<timeout>"
print(got.decode(errors="replace").replace("\r\n", "|"))' "$2" "$3" "$4"
}
