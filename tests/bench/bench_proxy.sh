#!/bin/bash
# bench_proxy.sh — firebreak-proxy next to HAProxy (req.ssl_sni), nginx
# (ssl_preread) and plain kernel forwarding, in one run, on one topology:
#
#   client ns ──veth── proxy ns ──veth── origin ns
#   10.98.0.2          10.98.0.1         198.51.100.10 :443 nginx (TLS origin)
#                      198.51.100.1      198.51.100.10 :53  dnsd.py
#
# The client dials the origin's address; in the proxy namespace an nft
# redirect hands the connection to the proxy under test, which reads the
# SNI and dials the origin: transparent, as in a sandbox.  firebreak-proxy
# programs its own sandbox table there (--nft --guest-if), the one it runs
# with in production; HAProxy and nginx get a plain redirect rule.  The
# kernel column has no proxy at all: the namespace only routes.
#
# Each proxy gets one core's worth of process (HAProxy nbthread 1, nginx
# worker_processes 1; firebreak-proxy is one thread by design), so the
# columns compare the same budget.  firebreak-proxy writes its audit log
# (two JSON lines per connection) as in production; the others log nothing.
#
# Needs root.  Installs haproxy and nginx when missing.  Every namespace,
# process and file it creates is removed on exit.  Environment:
#   FB_BUILD        build dir whose binaries to use (default build/plain)
#   BENCH_SECONDS   length of each rate and bulk measurement (default 5)
#   BENCH_CONC      connections in flight for the rate figure (default 16)
#   BENCH_HOLD      open connections for the RSS figure (default 10000, or
#                   what the open-file limit leaves: each one costs a proxy
#                   two descriptors or more)
set -u
cd "$(dirname "$0")/../.."
FB_BUILD=${FB_BUILD:-build/plain}
LOAD=$PWD/$FB_BUILD/bench/bench_proxy_load
PROXY=$PWD/$FB_BUILD/bin/firebreak-proxy
DURATION=${BENCH_SECONDS:-5}
CONC=${BENCH_CONC:-16}
FD_MAX=$(ulimit -Hn)
[ "$FD_MAX" = unlimited ] && FD_MAX=1048576
MAXCONN=$(((FD_MAX - 100) / 2))
HOLD_N=${BENCH_HOLD:-$((MAXCONN - 100 < 10000 ? MAXCONN - 100 : 10000))}
RULES=10000
UPDATES=100	# p99 of 100 is the second slowest; of 20 it was the slowest
NAME=bench.test
ORIGIN=198.51.100.10
LISTEN=10.98.0.1:15001

DEBS="haproxy nginx libnginx-mod-stream nftables iproute2 openssl curl python3" \
	tests/deps.sh || exit 1
for f in "$LOAD" "$PROXY"; do
	[ -x "$f" ] || { echo "bench_proxy: $f is missing (make BUILD=$FB_BUILD tests)" >&2; exit 1; }
done

C=fbb-$$-client
M=fbb-$$-proxy
O=fbb-$$-origin
TMP=$(mktemp -d /tmp/fbb-$$.XXXXXX)
chmod 755 "$TMP"	# nginx workers (nobody) read the bulk file
PIDS=()
PROXY_PID=

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	for ns in "$C" "$M" "$O"; do
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
[ -n "${BENCH_DEBUG:-}" ] && trap 'cat "$T"/*.err; cleanup' EXIT

die() { echo "bench_proxy: $*" >&2; exit 1; }
# (background jobs call ip netns exec directly: $! is then the program
# itself, which ip execs, and not a subshell that a kill would miss)
in_c() { ip netns exec "$C" "$@"; }
in_m() { ip netns exec "$M" "$@"; }

# ---- topology --------------------------------------------------------
ulimit -n "$FD_MAX" || die "cannot raise the open-file limit to $FD_MAX"
for ns in "$C" "$M" "$O"; do
	ip netns add "$ns" || die "ip netns add $ns"
	ip -n "$ns" link set lo up
	# many short connections in a row: do not run out of ports
	ip netns exec "$ns" sysctl -q -w \
		net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
done
ip -n "$C" link add cl type veth peer name mc netns "$M" || die "veth client"
ip -n "$M" link add mo type veth peer name om netns "$O" || die "veth origin"
ip -n "$C" addr add 10.98.0.2/24 dev cl
ip -n "$M" addr add 10.98.0.1/24 dev mc
ip -n "$M" addr add 198.51.100.1/24 dev mo
ip -n "$O" addr add $ORIGIN/24 dev om
for l in "$C cl" "$M mc" "$M mo" "$O om"; do
	set -- $l
	ip -n "$1" link set "$2" up
done
ip -n "$C" route add default via 10.98.0.1
ip -n "$O" route add default via 198.51.100.1
in_m sysctl -q -w net.ipv4.ip_forward=1

# ---- origin: nginx over TLS, a tiny answer and an endless file ---------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$TMP/origin.key" -out "$TMP/origin.pem" -days 2 \
	-subj "/CN=$NAME" -addext "subjectAltName=DNS:$NAME" 2>/dev/null ||
	die "origin certificate"
truncate -s 64G "$TMP/bulk"	# sparse: read from holes, no disk
mkdir -p "$TMP/origin" "$TMP/nginx"
temp_paths() {
	local t
	for t in client_body proxy fastcgi uwsgi scgi; do
		echo "${t}_temp_path $1/$t;"
	done
}
cat >"$TMP/origin.conf" <<EOF
worker_processes 2;
worker_rlimit_nofile $FD_MAX;
pid $TMP/origin/nginx.pid;
events { worker_connections $MAXCONN; }
http {
	access_log off;
	default_type application/octet-stream;
	$(temp_paths "$TMP/origin")
	ssl_session_cache off;
	ssl_session_tickets off;
	keepalive_timeout 0;
	client_header_timeout 300s;
	server {
		listen $ORIGIN:443 ssl backlog=4096;
		ssl_certificate $TMP/origin.pem;
		ssl_certificate_key $TMP/origin.key;
		location = / { return 200 "ok\n"; }
		location = /bulk { alias $TMP/bulk; }
	}
}
EOF
ip netns exec "$O" nginx -p "$TMP/origin" -e "$TMP/origin/error.log" -c "$TMP/origin.conf" \
	-g 'daemon off;' &
PIDS+=($!)
ip netns exec "$O" python3 tests/e2e/dnsd.py "$TMP/dns.log" "$TMP/dns.ready" $ORIGIN 53 \
	"$NAME=$ORIGIN" &
PIDS+=($!)

# until ADDR:PORT accepts in namespace NS (10 s)
wait_port() {
	local i
	for i in $(seq 200); do
		ip netns exec "$1" bash -c "exec 3<>/dev/tcp/${2%:*}/${2#*:}" 2>/dev/null &&
			return 0
		sleep 0.05
	done
	return 1
}
wait_port "$O" $ORIGIN:443 || die "origin did not start: $(cat "$TMP/origin/error.log")"
for _ in $(seq 100); do [ -e "$TMP/dns.ready" ] && break; sleep 0.05; done

# ---- what a process costs --------------------------------------------
# A process and its children (nginx's workers).
tree() {
	local p
	for p in "$@"; do
		echo "$p"
		tree $(pgrep -P "$p" || true)
	done
}
# tree_sum FILE PROGRAM PID...: what the awk PROGRAM reads from
# /proc/P/FILE, summed over the processes and their children
tree_sum() {
	local file=$1 prog=$2 p t=0
	shift 2
	for p in $(tree "$@"); do
		t=$((t + $(awk "$prog" "/proc/$p/$file" 2>/dev/null || echo 0)))
	done
	echo $t
}
cpu_ticks() { tree_sum stat '{print $14 + $15}' "$@"; }
rss_kib() { tree_sum status '/^VmRSS:/ {print $2}' "$@"; }
HZ=$(getconf CLK_TCK)

# "key=value ..." output of the load generator -> one value
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }

# ---- proxies under test --------------------------------------------------
redirect_to_proxy() {
	in_m nft -f - <<EOF
table ip fbbench {
	chain pre {
		type nat hook prerouting priority dstnat;
		iifname "mc" tcp dport 443 redirect to :${LISTEN#*:}
	}
}
EOF
}

start_haproxy() {
	cat >"$TMP/haproxy.cfg" <<EOF
global
	nbthread 1
	maxconn $MAXCONN
defaults
	mode tcp
	timeout connect 5s
	timeout client 300s
	timeout server 300s
	maxconn $MAXCONN
frontend sni
	bind $LISTEN
	tcp-request inspect-delay 5s
	tcp-request content accept if { req.ssl_hello_type 1 }
	use_backend origin if { req.ssl_sni -i $NAME }
backend origin
	server origin $ORIGIN:443
EOF
	redirect_to_proxy || return 1
	ip netns exec "$M" haproxy -db -f "$TMP/haproxy.cfg" 2>"$TMP/haproxy.err" &
	PROXY_PID=$!
}

start_nginx() {
	cat >"$TMP/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
worker_rlimit_nofile $FD_MAX;
pid $TMP/nginx/nginx.pid;
events { worker_connections $((2 * MAXCONN)); }	# client and upstream
stream {
	map \$ssl_preread_server_name \$origin {
		$NAME $ORIGIN:443;
	}
	server {
		listen $LISTEN backlog=4096;
		ssl_preread on;
		proxy_pass \$origin;
	}
}
EOF
	redirect_to_proxy || return 1
	ip netns exec "$M" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx.conf" \
		-g 'daemon off;' &
	PROXY_PID=$!
}

# --max-conns: the 10k held connections are bounded by the descriptor
# limit, as for the other proxies, not by the default cap, which keeps
# six descriptors a connection in hand.
start_firebreak() {
	printf 'allow:\n  - %s\n' "$NAME" >"$TMP/policy.yaml"
	ip netns exec "$M" "$PROXY" --policy "$TMP/policy.yaml" --listen $LISTEN \
		--dns-listen ${LISTEN%:*}:15053 \
		--control "$TMP/fb.sock" --audit-log "$TMP/audit.log" \
		--sandbox-id bench --resolver $ORIGIN --public 198.51.100.0/24 \
		--nft --guest-if mc --max-conns 100000 2>"$TMP/firebreak.err" &
	PROXY_PID=$!
}

stop_proxy() {
	kill "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
	PROXY_PID=
	in_m nft delete table ip fbbench 2>/dev/null
	in_m nft delete table inet firebreak 2>/dev/null
}

# start_hold N OUT: N idle connections through the proxy, held for 30 s
# by a load process ($hold_pid); returns once it has reported on OUT.
start_hold() {
	local i
	ip netns exec "$C" "$LOAD" hold $ORIGIN 443 $NAME "$1" 30 >"$2" &
	hold_pid=$!
	PIDS+=("$hold_pid")
	for i in $(seq 400); do
		grep -q '^held=' "$2" && break
		sleep 0.1
	done
}

# ---- the measurements ------------------------------------------------------
declare -A R	# R[metric,column]

measure() {
	local col=$1 out t0 t1 b1 b8 hold_pid hold_out=$TMP/hold.$1 i

	if [ "$col" != kernel ]; then
		"start_$col" || die "$col did not start"
		PIDS+=("$PROXY_PID")
		# The idle figure is a proxy that has served nothing.
		# firebreak-proxy tells it is ready by its control socket, as a
		# launcher waits for it; a probe through the data path would
		# have it serve a connection first (the others have no such
		# signal, and are probed).
		if [ "$col" = firebreak ]; then
			for i in $(seq 200); do
				[ -S "$TMP/fb.sock" ] && break
				sleep 0.05
			done
			sleep 1
			R[rss_idle,$col]=$(calc "$(rss_kib "$PROXY_PID") / 1024" 2)
		fi
		wait_port "$C" $ORIGIN:443 && kill -0 "$PROXY_PID" 2>/dev/null ||
			die "$col did not start: $(cat "$TMP/$col.err" "$TMP/nginx/error.log" 2>/dev/null)"
		if [ "$col" != firebreak ]; then
			sleep 1
			R[rss_idle,$col]=$(calc "$(rss_kib "$PROXY_PID") / 1024" 2)
		fi
	fi

	out=$(in_c "$LOAD" conns $ORIGIN 443 $NAME 3 1)
	R[p50,$col]=$(field "$out" p50_us)
	R[p99,$col]=$(field "$out" p99_us)

	t0=$(cpu_ticks ${PROXY_PID:-})
	out=$(in_c "$LOAD" conns $ORIGIN 443 $NAME "$DURATION" "$CONC")
	t1=$(cpu_ticks ${PROXY_PID:-})
	R[rate,$col]=$(field "$out" rate)
	R[failed,$col]=$(field "$out" failed)
	R[cpu_conn,$col]=$(calc "($t1 - $t0) / $HZ * 1e6 / $(field "$out" done)" 0)

	t0=$(cpu_ticks ${PROXY_PID:-})
	b1=$(in_c "$LOAD" bulk $ORIGIN 443 $NAME "$DURATION" 1)
	b8=$(in_c "$LOAD" bulk $ORIGIN 443 $NAME "$DURATION" 8)
	t1=$(cpu_ticks ${PROXY_PID:-})
	R[bulk1,$col]=$(field "$b1" mbit)
	R[bulk8,$col]=$(field "$b8" mbit)
	R[cpu_gib,$col]=$(calc "($t1 - $t0) / $HZ * 1000 / (($(field "$b1" bytes) + $(field "$b8" bytes)) / 1073741824)" 0)

	start_hold "$HOLD_N" "$hold_out"
	sleep 1
	R[held,$col]=$(field "$(cat "$hold_out")" held)
	[ "$col" != kernel ] &&
		R[rss_10k,$col]=$(calc "$(rss_kib "$PROXY_PID") / 1024" 1)
	kill "$hold_pid"
	wait "$hold_pid" 2>/dev/null

	[ "$col" = firebreak ] && measure_updates
	[ "$col" != kernel ] && stop_proxy
	# let the closed connections drain before the next column starts
	sleep 2
}

# PUT /policy with RULES domains, UPDATES times, alternating between two
# policies that differ in every name, so that every PUT changes what is
# enforced; the reply comes once the new policy is in force (nft included,
# and every relayed connection re-decided).  Measured while the proxy
# relays up to 2000 idle connections of its own hold, and only once the
# connections of the RSS figure are gone: a PUT that arrives while the
# proxy is closing thousands of connections waits for that, which would be
# a figure of the teardown, not of the update.  Each PUT is timed by curl's
# %{time_total}: from the start of the transfer (connect, the whole body
# sent) to the reply's last byte, without curl's own start or file read.
# No warm-up: the first PUT after start counts, and is shown on its own
# (it faults in the memory of the first large policy; see policy/arena.c).
measure_updates() {
	local i v out times=() hold=$((HOLD_N < 2000 ? HOLD_N : 2000))
	local hold_pid hold_out=$TMP/hold.updates open
	stats_open() {
		curl -sS --unix-socket "$TMP/fb.sock" http://fb/stats |
			grep -o '"open":[0-9]*' | cut -d: -f2
	}
	for i in $(seq 600); do
		[ "$(stats_open)" = 0 ] && break
		sleep 0.1
	done
	start_hold "$hold" "$hold_out"
	hold=$(field "$(cat "$hold_out")" held)
	for i in $(seq 100); do
		open=$(stats_open)
		[ "$open" = "$hold" ] && break
		sleep 0.1
	done
	[ "$open" = "$hold" ] || die "updates: the proxy holds $open connections, not $hold"
	for v in a b; do
		awk -v n=$RULES -v v=$v -v name=$NAME 'BEGIN {
			printf "{\"allow\": [\"%s\"", name
			for (i = 0; i < n; i++)
				printf ", \"h%d-%s.rules.example\"", i, v
			print "], \"subnets\": {\"deny\": [\"203.0.113.0/24\"]}}" }' \
			>"$TMP/policy-$v.json"
	done
	for i in $(seq $UPDATES); do
		v=$([ $((i % 2)) = 0 ] && echo a || echo b)
		out=$(curl -sS -o "$TMP/put.out" -w '%{http_code} %{time_total}' \
			--unix-socket "$TMP/fb.sock" -X PUT \
			-H 'Content-Type: application/json' \
			--data-binary @"$TMP/policy-$v.json" http://fb/policy) ||
			die "PUT /policy: $out: $(cat "$TMP/firebreak.err")"
		[ "${out% *}" = 200 ] || die "PUT /policy answered ${out% *}: $(cat "$TMP/put.out")"
		times+=("${out#* }")
	done
	# every held connection is still there: the updates allow the name
	[ "$(stats_open)" = "$hold" ] || die "updates closed held connections"
	kill "$hold_pid"
	wait "$hold_pid" 2>/dev/null
	# the guest still reaches the origin under the new policy
	out=$(in_c "$LOAD" conns $ORIGIN 443 $NAME 1 1)
	[ "$(field "$out" failed)" = 0 ] || die "no traffic after the updates: $out"
	R[upd1,firebreak]=$(calc "${times[0]} * 1000" 2)
	read -r R[upd50,firebreak] R[upd99,firebreak] < <(printf '%s\n' "${times[@]}" |
		sort -g | awk '{ t[NR] = $1 * 1000 } END {
			printf "%.2f %.2f\n", t[int((NR + 1) / 2)], t[int(NR * 0.99 + 0.999)] }')
}

load_average() { cut -d' ' -f1 /proc/loadavg; }
echo "bench_proxy: $DURATION s per rate and bulk figure, $HOLD_N held connections," \
	"$(nproc) CPUs, load average $(load_average) at the start"
for col in kernel haproxy nginx firebreak; do
	echo "  measuring $col ..."
	measure $col
done

# ---- the table -----------------------------------------------------------
v() { echo "${R[$1,$2]:--}"; }
added() {
	[ -n "${R[$1,$2]:-}" ] && calc "${R[$1,$2]} - ${R[$1,kernel]}" 0 || echo -
}
per_conn() {
	[ -n "${R[rss_10k,$1]:-}" ] && [ "${R[held,$1]:-0}" -gt 0 ] &&
		calc "(${R[rss_10k,$1]} - ${R[rss_idle,$1]}) * 1024 / ${R[held,$1]}" 1 ||
		echo -
}
ge() { awk "BEGIN { exit !($1 >= $2) }" && echo pass || echo FAIL; }
le() { awk "BEGIN { exit !($1 <= $2) }" && echo pass || echo FAIL; }
row() { printf '%-34s %10s %10s %10s %10s  %-18s %s\n' "$@"; }
maxof() { awk "BEGIN { print ($1 > $2) ? $1 : $2 }"; }

bulk1_floor=$(calc "0.95 * ${R[bulk1,kernel]}" 0)
bulk8_floor=$(calc "0.95 * ${R[bulk8,kernel]}" 0)
rate_floor=$(maxof "${R[rate,haproxy]}" "${R[rate,nginx]}")
cpu_ceiling=$(calc "${R[cpu_conn,nginx]} / 2" 0)

echo
row metric firebreak haproxy nginx kernel target result
row "new TLS connections/s ($CONC at once)" "$(v rate firebreak)" "$(v rate haproxy)" \
	"$(v rate nginx)" "$(v rate kernel)" ">= $rate_floor" \
	"$(ge "${R[rate,firebreak]}" "$rate_floor")"
row "connect+TLS+response p50 (us)" "$(v p50 firebreak)" "$(v p50 haproxy)" \
	"$(v p50 nginx)" "$(v p50 kernel)" - -
row "  added by the proxy p50 (us)" "$(added p50 firebreak)" "$(added p50 haproxy)" \
	"$(added p50 nginx)" - - -
row "connect+TLS+response p99 (us)" "$(v p99 firebreak)" "$(v p99 haproxy)" \
	"$(v p99 nginx)" "$(v p99 kernel)" - -
row "  added by the proxy p99 (us)" "$(added p99 firebreak)" "$(added p99 haproxy)" \
	"$(added p99 nginx)" - - -
row "bulk, 1 stream (Mbit/s)" "$(v bulk1 firebreak)" "$(v bulk1 haproxy)" \
	"$(v bulk1 nginx)" "$(v bulk1 kernel)" ">= $bulk1_floor" \
	"$(ge "${R[bulk1,firebreak]}" "$bulk1_floor")"
row "bulk, 8 streams (Mbit/s)" "$(v bulk8 firebreak)" "$(v bulk8 haproxy)" \
	"$(v bulk8 nginx)" "$(v bulk8 kernel)" ">= $bulk8_floor" \
	"$(ge "${R[bulk8,firebreak]}" "$bulk8_floor")"
row "proxy CPU per connection (us)" "$(v cpu_conn firebreak)" "$(v cpu_conn haproxy)" \
	"$(v cpu_conn nginx)" - "<= $cpu_ceiling" \
	"$(le "${R[cpu_conn,firebreak]}" "$cpu_ceiling")"
row "proxy CPU per GiB (ms)" "$(v cpu_gib firebreak)" "$(v cpu_gib haproxy)" \
	"$(v cpu_gib nginx)" - - -
row "RSS idle (MiB)" "$(v rss_idle firebreak)" "$(v rss_idle haproxy)" \
	"$(v rss_idle nginx)" - "<= 2" "$(le "${R[rss_idle,firebreak]}" 2)"
row "RSS with $HOLD_N open (MiB)" "$(v rss_10k firebreak)" "$(v rss_10k haproxy)" \
	"$(v rss_10k nginx)" - - -
row "  RSS per open connection (KiB)" "$(per_conn firebreak)" "$(per_conn haproxy)" \
	"$(per_conn nginx)" - - -
row "  connections held" "$(v held firebreak)" "$(v held haproxy)" \
	"$(v held nginx)" "$(v held kernel)" "$HOLD_N" \
	"$([ "${R[held,firebreak]}" = "$HOLD_N" ] && echo pass || echo FAIL)"
row "policy update, $RULES rules, p50 (ms)" "$(v upd50 firebreak)" - - - - -
row "policy update, $RULES rules, p99 (ms)" "$(v upd99 firebreak)" - - - "<= 5" \
	"$(le "${R[upd99,firebreak]}" 5)"
row "  the first one after start (ms)" "$(v upd1 firebreak)" - - - - -
row "  failed connections (rate run)" "$(v failed firebreak)" "$(v failed haproxy)" \
	"$(v failed nginx)" "$(v failed kernel)" - -
echo
echo "Load average $(load_average) at the end: with other work on the machine,"
echo "compare the columns with each other, not with another run."
echo "RSS: VmRSS summed over the process and its children (nginx: master and"
echo "worker).  CPU: utime+stime of the same.  Latency: one connection at a"
echo "time, from connect() to the origin's EOF, measured in the client."
exit 0
