#!/bin/bash
# bench_broker.sh — brokered requests per second: firebreak-proxy
# terminating the guest's TLS and adding a secret header, next to nginx as
# a TLS-terminating reverse proxy (proxy_set_header) and mitmproxy with a
# one-line addon that sets the header.  Same origin, same client, one run.
#
#   client ns  10.97.0.2 ──veth── 10.97.0.1  proxy ns:
#   198.51.100.10:443   nginx, the TLS origin ("ok\n")
#   198.51.100.53:53    dnsd.py (firebreak-proxy's resolver)
#   10.97.0.1:15001     firebreak-proxy   (brokers api.test)
#   10.97.0.1:15002     nginx reverse proxy
#   10.97.0.1:15003     mitmdump --mode reverse
#   10.97.0.1:15004     nginx again, without an upstream connection pool
#
# The client (wrk) always dials https://api.test/ = 198.51.100.10:443; an
# nft redirect on the client's link hands the connection to the proxy
# under test, as in a sandbox.  The client has a namespace and an address
# of its own, as a guest does: were it to share the proxies' address, a
# proxy's upstream connection could reuse the 4-tuple of a client
# connection that just closed, match its conntrack entry and be redirected
# to the proxy itself.  Each proxy
# verifies the origin's certificate (mitmproxy: ssl_insecure, see below),
# keeps its upstream connections alive, and gets one process: nginx
# worker_processes 1, firebreak-proxy is one thread by design.
#
# Rows: keep-alive req/s (one TLS connection, many requests), new-
# connection req/s ("Connection: close": a full handshake per request, the
# leaf for api.test already cached by firebreak-proxy), and the handshake
# cost derived from the two: 1/new - 1/keep-alive, in µs per connection.
#
# Both firebreak-proxy and nginx keep idle upstream connections for the
# next client connection (nginx: its upstream keepalive pool; firebreak:
# proxy/pool.c, one upstream connection per guest connection at any time), so a
# new client connection costs the client handshake alone.  The last
# column, "nginx/conn", is nginx without the pool, which opens an
# upstream connection per client request: what a proxy that never reuses
# one pays.  Its keep-alive rate would pay an upstream handshake per
# request, so it is not measured; its handshake figure is taken against
# nginx's keep-alive rate.  Every column shares the machine's CPUs with
# the origin and the client.
#
# Needs root.  Installs nginx, wrk and mitmproxy when missing (mitmproxy's
# column is skipped if it cannot be installed).  Everything it creates is
# removed on exit.  Environment:
#   FB_BUILD        build dir whose binaries to use (default build/plain)
#   BENCH_SECONDS   length of each measurement (default 5)
#   BENCH_CONC      connections in flight (default 16)
set -u
cd "$(dirname "$0")/../.."
FB_BUILD=${FB_BUILD:-build/plain}
PROXY=$PWD/$FB_BUILD/bin/firebreak-proxy
DURATION=${BENCH_SECONDS:-5}
CONC=${BENCH_CONC:-16}
NAME=api.test
ORIGIN=198.51.100.10
RESOLVER=198.51.100.53
LISTEN=10.97.0.1

DEBS="nginx wrk nftables iproute2 openssl python3" tests/deps.sh || exit 1
[ -x "$PROXY" ] || { echo "bench_broker: $PROXY is missing (make BUILD=$FB_BUILD)" >&2; exit 1; }
MITM=yes
DEBS="mitmproxy" tests/deps.sh >/dev/null 2>&1 && command -v mitmdump >/dev/null || MITM=

NS=fbbb-$$
C=fbbb-$$-client
TMP=$(mktemp -d /tmp/fbbb-$$.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	ip netns del "$C" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "/etc/netns/$C" "$TMP"
}
trap cleanup EXIT
die() { echo "bench_broker: $*" >&2; [ -n "${BENCH_DEBUG:-}" ] && tail -n 5 "$TMP"/*.err; exit 1; }
# (background jobs call ip netns exec directly: $! is then the program
# itself, which ip execs, and not a subshell that a kill would miss)
in_ns() { ip netns exec "$NS" "$@"; }
in_c() { ip netns exec "$C" "$@"; }

for ns in "$NS" "$C"; do
	ip netns add "$ns" || die "ip netns add $ns"
	ip -n "$ns" link set lo up
	ip netns exec "$ns" sysctl -q -w net.ipv4.ip_local_port_range="1024 65535" \
		net.ipv4.tcp_tw_reuse=1
done
ip -n "$NS" addr add $ORIGIN/32 dev lo
ip -n "$NS" addr add $RESOLVER/32 dev lo
ip -n "$C" link add cl type veth peer name bc netns "$NS" || die "veth"
ip -n "$C" addr add 10.97.0.2/24 dev cl
ip -n "$NS" addr add $LISTEN/24 dev bc
ip -n "$C" link set cl up
ip -n "$NS" link set bc up
ip -n "$C" route add default via $LISTEN
# wrk resolves api.test itself: ip netns exec binds this over /etc/hosts
mkdir -p "/etc/netns/$C"
echo "$ORIGIN $NAME" >"/etc/netns/$C/hosts"

# ---- certificates: the origin's (under an origin CA), the sandbox CA ------
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ec "$TMP/oca.key" && ec "$TMP/origin.key" && ec "$TMP/sca.key" && ec "$TMP/leaf.key" &&
openssl req -x509 -key "$TMP/oca.key" -out "$TMP/oca.pem" -days 2 -subj "/CN=origin CA" \
	-addext "basicConstraints=critical,CA:TRUE" 2>/dev/null &&
openssl req -x509 -key "$TMP/sca.key" -out "$TMP/sca.pem" -days 2 -subj "/CN=sandbox CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" \
	-addext "nameConstraints=critical,permitted;DNS:$NAME" 2>/dev/null || die "CA certificates"
# leaf KEY CSR_SUBJECT CA OUT
leaf() {
	openssl req -new -key "$1" -subj "/CN=$NAME" 2>/dev/null |
	openssl x509 -req -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 2 \
		-extfile <(printf 'subjectAltName=DNS:%s\n' "$NAME") -out "$3" 2>/dev/null
}
leaf "$TMP/origin.key" "$TMP/oca" "$TMP/origin.pem" || die "origin certificate"
# nginx's and mitmproxy's face to the client: a leaf under the sandbox CA,
# as firebreak-proxy mints
leaf "$TMP/leaf.key" "$TMP/sca" "$TMP/leaf.pem" || die "proxy leaf"
chmod 600 "$TMP"/*.key

# ---- the origin ------------------------------------------------------
temp_paths() {
	local t
	for t in client_body proxy fastcgi uwsgi scgi; do
		echo "${t}_temp_path $1/$t;"
	done
}
mkdir -p "$TMP/origin" "$TMP/nginx"
cat >"$TMP/origin.conf" <<EOF
worker_processes 1;
pid $TMP/origin/nginx.pid;
events { worker_connections 4096; }
http {
	access_log off;
	$(temp_paths "$TMP/origin")
	keepalive_requests 1000000;
	server {
		listen $ORIGIN:443 ssl backlog=4096;
		ssl_certificate $TMP/origin.pem;
		ssl_certificate_key $TMP/origin.key;
		location = / { return 200 "ok\n"; }
	}
}
EOF
ip netns exec "$NS" nginx -p "$TMP/origin" -e "$TMP/origin.err" -c "$TMP/origin.conf" -g 'daemon off;' &
PIDS+=($!)
ip netns exec "$NS" python3 tests/e2e/dnsd.py "$TMP/dns.log" "$TMP/dns.ready" $RESOLVER 53 "$NAME=$ORIGIN" &
PIDS+=($!)

# until ADDR:PORT accepts (10 s)
wait_port() {
	local i
	for i in $(seq 200); do
		in_ns bash -c "exec 3<>/dev/tcp/${1%:*}/${1#*:}" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
wait_port $ORIGIN:443 || die "origin did not start: $(cat "$TMP/origin.err")"

# ---- the three proxies -----------------------------------------------
printf 'allow:\n  %s:\n    - transform: [{ headers: { x-api-key: s3cret } }]\n' "$NAME" \
	>"$TMP/policy.yaml"
ip netns exec "$NS" "$PROXY" --no-nft --policy "$TMP/policy.yaml" --listen $LISTEN:15001 \
	--control "$TMP/control.sock" --audit-log "$TMP/audit.log" --sandbox-id bench \
	--resolver $RESOLVER --public $ORIGIN/32 \
	--ca-cert "$TMP/sca.pem" --ca-key "$TMP/sca.key" --upstream-ca "$TMP/oca.pem" \
	2>"$TMP/firebreak.err" &
PIDS+=($!)

# nginx_conf DIR PORT POOL: the reverse proxy; POOL configures its
# upstream keep-alive, or is empty for a connection per request
nginx_conf() {
	cat <<EOF
worker_processes 1;
pid $1/nginx.pid;
events { worker_connections 4096; }
http {
	access_log off;
	$(temp_paths "$1")
	keepalive_requests 1000000;
	upstream origin {
		server $ORIGIN:443;
		$3
	}
	server {
		listen $LISTEN:$2 ssl backlog=4096;
		ssl_certificate $TMP/leaf.pem;
		ssl_certificate_key $TMP/leaf.key;
		ssl_session_cache off;
		ssl_session_tickets off;
		location / {
			proxy_pass https://origin;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $NAME;
			proxy_set_header X-Api-Key s3cret;
			proxy_ssl_name $NAME;
			proxy_ssl_server_name on;
			proxy_ssl_verify on;
			proxy_ssl_trusted_certificate $TMP/oca.pem;
			proxy_ssl_session_reuse on;
		}
	}
}
EOF
}
mkdir -p "$TMP/nginx1"
nginx_conf "$TMP/nginx" 15002 "keepalive 64; keepalive_requests 1000000;" >"$TMP/nginx.conf"
nginx_conf "$TMP/nginx1" 15004 "" >"$TMP/nginx1.conf"
for n in nginx nginx1; do
	ip netns exec "$NS" nginx -p "$TMP/$n" -e "$TMP/$n.err" -c "$TMP/$n.conf" -g 'daemon off;' &
	PIDS+=($!)
done

if [ -n "$MITM" ]; then
	# mitmproxy's face: the same leaf (its confdir takes CA or leaf as
	# "certs"); upstream verification is off because reverse mode dials an
	# address, and a name check would need a hosts entry for its resolver
	# too: it only makes the slow column a little faster.
	mkdir -p "$TMP/mitm"
	cat "$TMP/leaf.key" "$TMP/leaf.pem" >"$TMP/mitm/leaf.pem"
	cat >"$TMP/mitm/addon.py" <<'EOF'
def request(flow):
    flow.request.headers["x-api-key"] = "s3cret"
EOF
	ip netns exec "$NS" mitmdump -q --set confdir="$TMP/mitm" --mode "reverse:https://$ORIGIN:443" \
		--listen-host $LISTEN --listen-port 15003 --ssl-insecure \
		--certs "$NAME=$TMP/mitm/leaf.pem" -s "$TMP/mitm/addon.py" \
		>"$TMP/mitm.err" 2>&1 &
	PIDS+=($!)
fi

wait_port $LISTEN:15001 || die "firebreak-proxy did not start: $(cat "$TMP/firebreak.err")"
wait_port $LISTEN:15002 || die "nginx did not start: $(cat "$TMP/nginx.err")"
wait_port $LISTEN:15004 || die "nginx did not start: $(cat "$TMP/nginx1.err")"
if [ -n "$MITM" ] && ! wait_port $LISTEN:15003; then
	echo "bench_broker: mitmproxy did not start, its column is skipped: $(tail -n 3 "$TMP/mitm.err")" >&2
	MITM=
fi

# ---- the client --------------------------------------------------------
redirect_to() {
	in_ns nft -f - <<EOF
table ip fbbench
delete table ip fbbench
table ip fbbench {
	chain pre {
		type nat hook prerouting priority dstnat;
		iifname "bc" ip daddr $ORIGIN tcp dport 443 redirect to :$1
	}
}
EOF
}
# rate PORT [HEADER] -> requests per second, or "-" when any request failed
rate() {
	local out
	redirect_to "$1" || die "nft redirect"
	out=$(in_c wrk -t1 -c"$CONC" -d"${DURATION}s" ${2:+-H "$2"} "https://$NAME/" 2>&1)
	# a read error is the proxy closing where the client expected another
	# answer (no "Connection: close" in the response): noted, the requests
	# before it were answered.  A non-2xx answer or a failed dial voids it.
	grep -Eq 'read [1-9]' <<<"$out" &&
		echo "bench_broker: port $1 ${2:-keep-alive}: $(grep 'Socket errors' <<<"$out")" >&2
	if grep -Eq 'Non-2xx|connect [1-9]|write [1-9]|timeout [1-9]' <<<"$out"; then
		echo "bench_broker: port $1 ${2:-keep-alive}: $(grep -E 'Non-2xx|Socket errors' <<<"$out")" \
			"$(tail -qn 1 "$TMP"/*.err 2>/dev/null)" >&2
		echo -
		return
	fi
	awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out"
}
cost() {
	[ "$1" = - ] || [ "$2" = - ] && { echo -; return; }
	awk "BEGIN { printf \"%.0f\", 1e6 / $2 - 1e6 / $1 }"
}

# one request first: firebreak-proxy mints (and caches) the leaf here, and
# a refusal shows now rather than as a zero
redirect_to 15001
got=$(in_c wrk -t1 -c1 -d1s "https://$NAME/" 2>&1)
grep -q '^Requests/sec' <<<"$got" && ! grep -q 'Non-2xx\|Socket errors' <<<"$got" ||
	die "a brokered request failed: $got $(cat "$TMP/firebreak.err")"

declare -A KA NEW HS
cols="firebreak nginx"
[ -n "$MITM" ] && cols="$cols mitmproxy"
port() { case $1 in firebreak) echo 15001;; nginx) echo 15002;; mitmproxy) echo 15003;; esac; }
for c in $cols; do
	KA[$c]=$(rate "$(port $c)")
	NEW[$c]=$(rate "$(port $c)" "Connection: close")
	HS[$c]=$(cost "${KA[$c]}" "${NEW[$c]}")
done
KA[nginx1]="n/a"
NEW[nginx1]=$(rate 15004 "Connection: close")
HS[nginx1]=$(cost "${KA[nginx]}" "${NEW[nginx1]}")
[ -z "$MITM" ] && { KA[mitmproxy]="n/a"; NEW[mitmproxy]="n/a"; HS[mitmproxy]="n/a"; }
[ -z "$MITM" ] && echo "bench_broker: mitmproxy could not be installed or started: its column is n/a"

# proxied requests the origin did not answer with 200 would show in wrk
[ -s "$TMP/firebreak.err" ] && echo "bench_broker: firebreak-proxy said: $(head -n 3 "$TMP/firebreak.err")" >&2

verdict() { awk "BEGIN { exit !($1) }" 2>/dev/null && echo met || echo missed; }
ka_t="≥ nginx, ≥ 20× mitmproxy"
hs_t="≤ 1.1 × nginx"
printf '\nbrokered GET / (%s s each, %s connections, %s CPUs)\n' "$DURATION" "$CONC" "$(nproc)"
printf '%-22s %10s %10s %10s %10s   %s\n' "" firebreak nginx mitmproxy nginx/conn target
printf '%-22s %10s %10s %10s %10s   %s\n' "keep-alive req/s" "${KA[firebreak]}" "${KA[nginx]}" \
	"${KA[mitmproxy]}" "${KA[nginx1]}" "$ka_t"
printf '%-22s %10s %10s %10s %10s\n' "new-connection req/s" "${NEW[firebreak]}" "${NEW[nginx]}" \
	"${NEW[mitmproxy]}" "${NEW[nginx1]}"
printf '%-22s %10s %10s %10s %10s   %s\n' "handshake µs/conn" "${HS[firebreak]}" "${HS[nginx]}" \
	"${HS[mitmproxy]}" "${HS[nginx1]}" "$hs_t"
num() { [[ $1 =~ ^-?[0-9]+$ ]]; }
if num "${KA[firebreak]}" && num "${KA[nginx]}"; then
	echo "keep-alive ≥ nginx: $(verdict "${KA[firebreak]} >= ${KA[nginx]}")"
fi
if num "${KA[firebreak]}" && num "${KA[mitmproxy]}"; then
	echo "keep-alive ≥ 20× mitmproxy: $(verdict "${KA[firebreak]} >= 20 * ${KA[mitmproxy]}")"
fi
if num "${HS[firebreak]}" && num "${HS[nginx]}"; then
	echo "handshake within 10% of nginx: $(verdict "${HS[firebreak]} <= 1.1 * ${HS[nginx]}")"
fi
if num "${HS[firebreak]}" && num "${HS[nginx1]}"; then
	echo "handshake within 10% of nginx/conn (no upstream pool):" \
		"$(verdict "${HS[firebreak]} <= 1.1 * ${HS[nginx1]}")"
fi
