#!/bin/bash
# nft_traffic.sh — real packets through the sandbox table `inet firebreak`.
#
#   guest ns                 sandbox ns (table applied here)        outer ns ("internet")
#   gv 10.250.0.2   ──veth── sg 10.250.0.1    su 198.18.0.2 ──veth── ou 198.18.0.1
#      fd00:250::2              fd00:250::1      2001:db8:18::2          2001:db8:18::1
#                                                                   lo: 198.18.1.1 (allowed)
#                                                                       198.18.1.66 (denied inside allowed)
#                                                                       198.18.2.1 (neither)
#                                                                       2001:db8:1::1/::66, 2001:db8:2::1
#                                                          oi 198.18.200.1 ──veth── io 198.18.200.2  net ns
#                                                             2001:db8:200::1          2001:db8:200::2
#
# The outer namespace also carries the launcher's uplink table, which
# masquerades the sandbox's uplink network towards the net namespace.
#
# Every address lives in namespaces this test creates; nothing is routed
# anywhere else.  Prints "ok - NAME" / "not ok - NAME" lines.
set -u
cd "$(dirname "$0")/../.."
BUILD=${FB_BUILD:-build/plain}
HELPER=$BUILD/tests/helper_nftapply
PY=/usr/bin/python3
G=fbnft-$$-guest S=fbnft-$$-sbox O=fbnft-$$-outer I=fbnft-$$-net
TMP=$(mktemp -d)
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	for n in $G $S $O $I; do ip netns del "$n" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT

fails=0
ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1${2:+ # $2}"; fails=$((fails + 1)); }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }

if [ ! -x "$HELPER" ]; then
	echo "skip - nft_traffic # $HELPER not built"
	exit 0
fi

cat >"$TMP/t.py" <<'EOF'
import os, socket, sys, threading, time

def listener(kind, port):
	s = socket.socket(socket.AF_INET6, kind)
	s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
	s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	s.bind(("::", port))
	return s

def serve_tcp(port, reply):
	s = listener(socket.SOCK_STREAM, port)
	s.listen(64)
	print("ready", flush=True)
	def one(c):
		try:
			greet = reply
			if reply == "@peer":
				greet = c.getpeername()[0].replace("::ffff:", "")
			c.sendall((greet + "\n").encode())
			while True:
				d = c.recv(4096)
				if not d:
					break
				c.sendall(d)
		except OSError:
			pass
		c.close()
	while True:
		c, _ = s.accept()
		threading.Thread(target=one, args=(c,), daemon=True).start()

def serve_udp(port, path):
	s = listener(socket.SOCK_DGRAM, port)
	print("ready", flush=True)
	while True:
		d, a = s.recvfrom(2048)
		with open(path, "a") as f:
			f.write("%s %s\n" % (a[0], d.decode(errors="replace")))

# icmp: an echo request to each host; prints reply, prohibited or timeout
def icmp(*hosts):
	import select, struct
	for host in hosts:
		v6 = ":" in host
		s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET,
				  socket.SOCK_RAW,
				  socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
		msg = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, 0x4662, 1) + b"fb"
		if not v6:
			sum16 = sum(struct.unpack("!%dH" % (len(msg) // 2), msg))
			sum16 = (sum16 >> 16) + (sum16 & 0xffff)
			msg = msg[:2] + struct.pack("!H", ~(sum16 + (sum16 >> 16)) & 0xffff) + msg[4:]
		s.sendto(msg, (host, 0))
		result, end = "timeout", time.time() + 0.5
		while time.time() < end:
			if not select.select([s], [], [], end - time.time())[0]:
				break
			d = s.recv(2048)
			if not v6:
				d = d[(d[0] & 15) * 4:]
			if d[0] == (129 if v6 else 0):
				result = "reply"
				break
			if (v6 and d[:2] == b"\x01\x01") or (not v6 and d[:2] == b"\x03\x0d"):
				result = "prohibited"
				break
		print(result)

# stream: talk every 5 ms; when the stream breaks, write the wall time
def stream(host, port, out):
	c = socket.create_connection((host, int(port)), timeout=2)
	f = c.makefile("rb")
	f.readline()
	with open(out + ".up", "w") as u:
		u.write("up\n")
	end = time.time() + 10
	err = "still up"
	while time.time() < end:
		try:
			c.sendall(b"x\n")
			if f.readline() != b"x\n":
				err = "eof"
				break
		except OSError as e:
			err = type(e).__name__
			break
		time.sleep(0.005)
	with open(out, "w") as o:
		o.write("%.6f %s\n" % (time.time(), err))

def udp_socket(host):
	return socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
			     socket.SOCK_DGRAM)

# udp-push: once a datagram arrives at host, one back to its sender every
# 5 ms (from host: what a wildcard socket sends leaves from the outgoing
# link's address); the wall time of the last datagram received goes to
# path
def udp_push(host, port, path):
	s = udp_socket(host)
	s.bind((host, port))
	print("ready", flush=True)
	_, peer = s.recvfrom(2048)
	s.setblocking(False)
	while True:
		try:
			s.sendto(b"x", peer)
			while s.recv(2048):
				with open(path, "w") as f:
					f.write("%.6f\n" % time.time())
		except OSError:  # nothing to read, or an ICMP error
			pass
		time.sleep(0.005)

# udp-stream: a datagram every 5 ms for 2 s once the origin answers; then
# the wall time of the last datagram received goes to out
def udp_stream(host, port, out):
	s = udp_socket(host)
	s.connect((host, int(port)))
	s.settimeout(2)
	s.send(b"x")
	s.recv(2048)
	with open(out + ".up", "w") as u:
		u.write("up\n")
	s.setblocking(False)
	last = time.time()
	end = last + 2
	while time.time() < end:
		try:
			s.send(b"x")
			while s.recv(2048):
				last = time.time()
		except OSError:
			pass
		time.sleep(0.005)
	with open(out, "w") as o:
		o.write("%.6f\n" % last)

def sum16(b):
	import struct
	b += b"\0" * (len(b) % 2)
	s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
	s = (s >> 16) + (s & 0xffff)
	return ~(s + (s >> 16)) & 0xffff

# quote: from the guest, as root, an ICMP port-unreachable to `origin`
# quoting a TCP segment origin:oport -> inner:iport (which conntrack
# relates to that flow), then `word`
def quote(src, origin, inner, oport, iport, word):
	import struct
	v6 = ":" in origin
	fam = socket.AF_INET6 if v6 else socket.AF_INET
	a = lambda x: socket.inet_pton(fam, x)
	tcp = struct.pack("!HHIIBBHHH", int(oport), int(iport), 1, 1, 0x50,
			  0x10, 1000, 0, 0)
	if v6:
		seg = struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64) + \
			a(origin) + a(inner) + tcp
		msg = struct.pack("!BBHI", 1, 4, 0, 0) + seg + word.encode()
		ph = a(src) + a(origin) + struct.pack("!I3xB", len(msg), 58)
		msg = msg[:2] + struct.pack("!H", sum16(ph + msg)) + msg[4:]
		pkt = struct.pack("!IHBB", 6 << 28, len(msg), 58, 64) + \
			a(src) + a(origin) + msg
	else:
		hdr = lambda n, p, s, d: struct.pack("!BBHHHBBH", 0x45, 0, 20 + n,
			1, 0, 64, p, 0) + a(s) + a(d)
		fix = lambda h: h[:10] + struct.pack("!H", sum16(h)) + h[12:]
		seg = fix(hdr(len(tcp), 6, origin, inner)) + tcp
		msg = struct.pack("!BBHI", 3, 3, 0, 0) + seg + word.encode()
		msg = msg[:2] + struct.pack("!H", sum16(msg)) + msg[4:]
		pkt = fix(hdr(len(msg), 1, src, origin)) + msg
	socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_RAW).sendto(
		pkt, (origin, 0))

# nd: from the guest, as root, a neighbour solicitation (hop limit 255)
# from `src` to `dst`, then `word`
def nd(src, dst, word):
	import struct
	a = lambda x: socket.inet_pton(socket.AF_INET6, x)
	msg = struct.pack("!BBHI", 135, 0, 0, 0) + a(dst) + word.encode()
	ph = a(src) + a(dst) + struct.pack("!I3xB", len(msg), 58)
	msg = msg[:2] + struct.pack("!H", sum16(ph + msg)) + msg[4:]
	pkt = struct.pack("!IHBB", 6 << 28, len(msg), 58, 255) + a(src) + \
		a(dst) + msg
	socket.socket(socket.AF_INET6, socket.SOCK_RAW,
		      socket.IPPROTO_RAW).sendto(pkt, (dst, 0))

# sniff: every ICMP and ICMPv6 packet that carries `word`, to path
def sniff(word, path, proto="icmp"):
	import select
	socks = [socket.socket(socket.AF_INET, socket.SOCK_RAW,
			       socket.IPPROTO_TCP)] if proto == "tcp" else \
		[socket.socket(socket.AF_INET, socket.SOCK_RAW,
			       socket.IPPROTO_ICMP),
		 socket.socket(socket.AF_INET6, socket.SOCK_RAW,
			       socket.IPPROTO_ICMPV6)]
	print("ready", flush=True)
	while True:
		for s in select.select(socks, [], [])[0]:
			d, a = s.recvfrom(65535)
			if word.encode() in d:
				with open(path, "a") as f:
					f.write("%s\n" % a[0])

# rst-leak: a guest kernel that ignores the rules.  Connects, stops its
# own stack from sending (TCP_REPAIR) and writes out.up; once out.go
# exists, sends by hand a reset in the flow's window carrying "FBLEAK".
def rst_leak(host, port, out):
	import struct
	c = socket.create_connection((host, int(port)), timeout=2)
	c.recv(100)
	c.setsockopt(socket.IPPROTO_TCP, 19, 1)		# TCP_REPAIR
	c.setsockopt(socket.IPPROTO_TCP, 20, 2)		# TCP_REPAIR_QUEUE: send
	seq = struct.unpack("I", c.getsockopt(socket.IPPROTO_TCP, 21, 4))[0]
	src, sport = c.getsockname()
	open(out + ".up", "w").close()
	while not os.path.exists(out + ".go"):
		time.sleep(0.01)
	body = b"FBLEAK"
	hdr = struct.pack("!HHIIBBHHH", sport, int(port), seq, 0, 5 << 4, 0x04,
			  0, 0, 0)
	pseudo = socket.inet_aton(src) + socket.inet_aton(host) + \
		struct.pack("!BBH", 0, 6, len(hdr) + len(body))
	data = pseudo + hdr + body
	total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
	total = (total >> 16) + (total & 0xffff)
	csum = ~(total + (total >> 16)) & 0xffff
	hdr = hdr[:16] + struct.pack("!H", csum) + hdr[18:]
	r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
	r.sendto(hdr + body, (host, 0))

# hold: a TCP connection from this namespace, as the proxy's would be;
# its local port to path
def hold(host, port, path):
	c = socket.create_connection((host, int(port)), timeout=2)
	with open(path, "w") as f:
		f.write("%d\n" % c.getsockname()[1])
	time.sleep(30)

cmd = sys.argv[1]
args = sys.argv[2:]
{"serve-tcp": lambda: serve_tcp(int(args[0]), args[1]),
 "quote": lambda: quote(*args),
 "nd": lambda: nd(*args),
 "sniff": lambda: sniff(*args),
 "hold": lambda: hold(*args),
 "rst-leak": lambda: rst_leak(*args),
 "serve-udp": lambda: serve_udp(int(args[0]), args[1]),
 "udp-push": lambda: udp_push(args[0], int(args[1]), args[2]),
 "stream": lambda: stream(*args),
 "udp-stream": lambda: udp_stream(*args),
 "icmp": lambda: icmp(*args)}[cmd]()
EOF

# ---- topology ---------------------------------------------------------
# nsenter: a network namespace only, cheaper than `ip netns exec`
in_ns() { local ns=$1; shift; nsenter --net=/run/netns/"$ns" "$@"; }
in_g() { in_ns $G "$@"; }
in_s() { in_ns $S "$@"; }
set -e
for n in $G $S $O $I; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add gv netns $G type veth peer name sg netns $S
ip link add su netns $S type veth peer name ou netns $O
ip link add oi netns $O type veth peer name io netns $I
ip -n $G addr add 10.250.0.2/24 dev gv
ip -n $G addr add fd00:250::2/64 dev gv nodad
ip -n $S addr add 10.250.0.1/24 dev sg
ip -n $S addr add fd00:250::1/64 dev sg nodad
ip -n $S addr add 198.18.0.2/24 dev su
ip -n $S addr add 2001:db8:18::2/64 dev su nodad
ip -n $O addr add 198.18.0.1/24 dev ou
ip -n $O addr add 2001:db8:18::1/64 dev ou nodad
ip -n $O addr add 198.18.200.1/24 dev oi
ip -n $O addr add 2001:db8:200::1/64 dev oi nodad
ip -n $I addr add 198.18.200.2/24 dev io
ip -n $I addr add 2001:db8:200::2/64 dev io nodad
for a in 198.18.1.1/32 198.18.1.66/32 198.18.1.67/32 198.18.2.1/32 \
	 2001:db8:1::1/128 2001:db8:1::66/128 2001:db8:2::1/128; do
	ip -n $O addr add "$a" dev lo
done
for l in "$G gv" "$S sg" "$S su" "$O ou" "$O oi" "$I io"; do
	set -- $l; ip -n "$1" link set "$2" up
done
ip -n $G route add default via 10.250.0.1
ip -n $G -6 route add default via fd00:250::1
ip -n $S route add default via 198.18.0.1
ip -n $S -6 route add default via 2001:db8:18::1
ip -n $O route add 10.250.0.0/24 via 198.18.0.2
ip -n $O -6 route add fd00:250::/64 via 2001:db8:18::2
for n in $S $O; do
	in_ns $n sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
done
set +e


start() { # NS OUTFILE ARGS... : a server, waited for until ready
	local ns=$1 out=$2; shift 2
	# nsenter directly, not a shell function: $! must be the server itself
	nsenter --net=/run/netns/"$ns" $PY -S "$TMP/t.py" "$@" >"$out" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do grep -q ready "$out" 2>/dev/null && return 0; sleep 0.02; done
	echo "server $* did not start"; return 1
}

start $O "$TMP/origin.log" serve-tcp 8080 origin || exit 1
start $O "$TMP/o53.log" serve-tcp 53 resolver || exit 1
start $O "$TMP/oudp.log" serve-udp 443 "$TMP/udp443" || exit 1
start $S "$TMP/dns.log" serve-udp 15053 "$TMP/dns" || exit 1
start $S "$TMP/gw.log" serve-tcp 2222 gateway-ssh || exit 1
start $S "$TMP/dnstcp.log" serve-tcp 15053 dns-tcp || exit 1
start $I "$TMP/net.log" serve-tcp 8081 @peer || exit 1

POLICY=(--guest sg --proxy-port 15001 --dns-port 15053
	--resolver 198.18.1.67:53
	--deny 10.0.0.0/8 --deny 198.18.0.0/24 --deny 198.18.1.64/26
	--deny fd00::/8 --deny 2001:db8:1::64/126 --deny 2001:db8:18::/64
	--allow 198.18.1.0/24 --allow 2001:db8:1::/64)
check "apply the sandbox table" in_s "$HELPER" apply "${POLICY[@]}"

# conn NS HOST PORT [TIMEOUT]: sets LINE (the server's greeting), MS (the
# elapsed milliseconds) and RC: 0 connected, 3 refused or reset, 4 timeout
conn() {
	local t0
	t0=$(date +%s%N)
	LINE=$(in_ns "$1" timeout "${4:-2}" bash -c \
		'exec 3<>"/dev/tcp/$0/$1" && read -r l <&3 && echo "$l"' \
		"$2" "$3" 2>"$TMP/err")
	RC=$?
	MS=$((($(date +%s%N) - t0) / 1000000))
	case $RC in
	0) ;;
	124) RC=4 ;;
	*) if grep -qiE "refused|reset" "$TMP/err"; then RC=3; else RC=5; fi ;;
	esac
}

# three datagrams from the guest
send_udp() {
	in_g bash -c 'for i in 1 2 3; do echo probe >"/dev/udp/$0/$1"; done' "$1" "$2"
}

counter() { in_s "$HELPER" counters | awk -v n="$1" '$1 == n { print $2 }'; }

for fam in 4 6; do
	if [ $fam = 4 ]; then allowed=198.18.1.1 denied=198.18.1.66 other=198.18.2.1
		gw=10.250.0.1 uplink=198.18.0.1
	else allowed=2001:db8:1::1 denied=2001:db8:1::66 other=2001:db8:2::1
		gw=fd00:250::1 uplink=2001:db8:18::1; fi

	conn $G $allowed 8080
	check "ipv$fam: allowed CIDR reachable, forwarded not proxied" \
		[ "$RC" = 0 -a "$LINE" = origin ]

	conn $G $denied 8080
	check "ipv$fam: denied address inside the allowed CIDR is reset fast (${MS}ms)" \
		[ "$RC" = 3 -a "${MS:-9999}" -lt 1000 ]

	conn $G $other 8080
	check "ipv$fam: other TCP goes to the proxy port; none listening -> refused fast (${MS}ms, rc $RC)" \
		[ "$RC" = 3 -a "${MS:-9999}" -lt 1000 ]

	start $S "$TMP/proxy$fam.log" serve-tcp 15001 proxy || exit 1
	proxy_pid=${PIDS[-1]}
	conn $G $other 8080
	check "ipv$fam: other TCP is redirected to the proxy" \
		[ "$RC" = 0 -a "$LINE" = proxy ]
	conn $G $uplink 8080
	check "ipv$fam: a denied address is reset, not proxied" [ "$RC" = 3 ]
	conn $G $gw 15001 0.5
	check "ipv$fam: straight to the proxy's port, not redirected: dropped" \
		[ "$RC" = 4 ]
	kill $proxy_pid; wait $proxy_pid 2>/dev/null

	before=$(counter dropped)
	send_udp $other 443
	sleep 0.1
	check "ipv$fam: UDP to port 443 is dropped and counted" \
		[ ! -s "$TMP/udp443" -a "$(counter dropped)" -ge $((before + 3)) ]

	send_udp $other 53
	sleep 0.1
	check "ipv$fam: UDP 53 goes to the DNS port" \
		grep -q "probe" "$TMP/dns"
	rm -f "$TMP/dns"
	conn $G $denied 53
	check "ipv$fam: TCP 53 goes to the DNS port, whatever the address" \
		[ "$RC" = 0 -a "$LINE" = dns-tcp ]

	conn $G $gw 2222 0.5
	check "ipv$fam: guest to the gateway's other ports is dropped (timeout)" \
		[ "$RC" = 4 ]

	echo=$(in_g $PY -S "$TMP/t.py" icmp $allowed $denied $other | tr '\n' ' ')
	check "ipv$fam: ICMP echo: allowed forwarded, denied prohibited, other dropped ($echo)" \
		[ "$echo" = "reply prohibited timeout " ]
done

check "counters: allowed and rejected counted real traffic" \
	[ "$(counter allowed)" -ge 2 -a "$(counter rejected)" -ge 2 ]

# ---- output chain: the namespace's own dials -------------------------
conn $S 198.18.1.66 8080
check "output: the sandbox's own dial to a denied address is refused (${MS}ms)" \
	[ "$RC" = 3 -a "${MS:-9999}" -lt 1000 ]
conn $S 198.18.1.67 53
check "output: the resolver is reachable on its port despite the deny set" \
	[ "$RC" = 0 -a "$LINE" = resolver ]
conn $S 198.18.1.67 8080
check "output: the resolver's other ports stay denied" [ "$RC" = 3 ]
check "output: refusals counted" [ "$(counter output_rejected)" -ge 2 ]

# ---- the conntrack cut -------------------------------------------------
for fam in 4 6; do
	if [ $fam = 4 ]; then allowed=198.18.1.1; else allowed=2001:db8:1::1; fi
	rm -f "$TMP/stream" "$TMP/stream.up"
	nsenter --net=/run/netns/$G $PY -S "$TMP/t.py" stream $allowed 8080 "$TMP/stream" &
	PIDS+=($!); spid=$!
	for _ in $(seq 100); do [ -e "$TMP/stream.up" ] && break; sleep 0.02; done
	sleep 0.1
	# the new policy no longer allows the CIDR; then the flows are cut
	NEW=("${POLICY[@]}")
	NEW=("${NEW[@]/198.18.1.0\/24/203.0.113.0/24}")
	NEW=("${NEW[@]/2001:db8:1::\/64/2001:db8:99::/64}")
	in_s "$HELPER" apply "${NEW[@]}"
	read -r cut t_cut < <(in_s "$HELPER" cut --allow 203.0.113.0/24 --allow 2001:db8:99::/64)
	wait $spid
	read -r t_broke why <"$TMP/stream" 2>/dev/null
	ms=$($PY -c "print(int((${t_broke:-1e12} - ${t_cut:-0}) * 1000))")
	check "ipv$fam: an established stream is cut within 100 ms of the update ($why after ${ms}ms, $cut cut)" \
		[ "${cut:-0}" -ge 1 -a "$why" != "still up" -a "$ms" -lt 100 ]
	in_s "$HELPER" apply "${POLICY[@]}"
done

# ---- a cut TCP flow: nothing of the guest's leaves, resets included ----
# A guest kernel can write a reset with a payload, in the window, and keep
# doing so; and the flow's conntrack entry, left for the origin's replies
# in flight, goes with the second, delayed cut (--tcp).
start $O "$TMP/sniff-tcp.log" sniff FBLEAK "$TMP/leaked" tcp || exit 1
rm -f "$TMP/rl.up" "$TMP/rl.go" "$TMP/leaked"
nsenter --net=/run/netns/$G $PY -S "$TMP/t.py" rst-leak 198.18.1.1 8080 "$TMP/rl" &
PIDS+=($!); rpid=$!
for _ in $(seq 100); do [ -e "$TMP/rl.up" ] && break; sleep 0.02; done
in_s "$HELPER" apply "${NEW[@]}"
read -r cut _ < <(in_s "$HELPER" cut --allow 203.0.113.0/24 --allow 2001:db8:99::/64)
touch "$TMP/rl.go"
wait $rpid
sleep 0.3
check "a cut flow: a reset with a payload from the guest does not leave ($cut cut)" \
	[ ! -s "$TMP/leaked" ]
entries() { in_s grep -c "^ipv4 .* tcp .* dport=8080 .*mark=1717698561" /proc/net/nf_conntrack; }
before=$(entries)
read -r cut _ < <(in_s "$HELPER" cut --tcp --allow 203.0.113.0/24 --allow 2001:db8:99::/64)
check "the delayed cut deletes the cut TCP flows' entries ($before before, $(entries) after, $cut cut)" \
	[ "$before" -ge 1 -a "$(entries)" = 0 ]
in_s "$HELPER" apply "${POLICY[@]}"

# ---- a UDP flow the conntrack cut misses --------------------------------
# The narrower table alone, no cut: its conntrack entry lives on, yet
# nothing of the flow passes either way.
for fam in 4 6; do
	if [ $fam = 4 ]; then allowed=198.18.1.1; else allowed=2001:db8:1::1; fi
	rm -f "$TMP/heard" "$TMP/ustream" "$TMP/ustream.up"
	start $O "$TMP/push$fam.log" udp-push $allowed 9000 "$TMP/heard" || exit 1
	push_pid=${PIDS[-1]}
	nsenter --net=/run/netns/$G $PY -S "$TMP/t.py" udp-stream $allowed 9000 "$TMP/ustream" &
	PIDS+=($!); spid=$!
	for _ in $(seq 100); do [ -e "$TMP/ustream.up" ] && break; sleep 0.02; done
	sleep 0.1
	in_s "$HELPER" apply "${NEW[@]}"
	t_apply=$(date +%s.%N)
	wait $spid
	entry=$(in_s grep -c "^ipv$fam .* udp .* dport=9000 .*mark=1717698561" \
		/proc/net/nf_conntrack)
	read -r t_guest <"$TMP/ustream" 2>/dev/null
	read -r t_origin <"$TMP/heard" 2>/dev/null
	ms=$($PY -c "print(int((max(${t_guest:-1e12}, ${t_origin:-1e12}) - $t_apply) * 1000))")
	check "ipv$fam: uncut, a UDP flow stops both ways within 100 ms of the update (last datagram after ${ms}ms, $entry entry)" \
		[ "$entry" = 1 -a "$ms" -lt 100 ]
	kill $push_pid; wait $push_pid 2>/dev/null
	in_s "$HELPER" apply "${POLICY[@]}"
done

# ---- a guest that forges its source address ----------------------------
# Addresses of the outside world on the guest's own lo, used as source:
# nothing so sent reaches the sandbox's ports (whose answers would go to
# that address: a DNS reply repeats what the guest wrote) or is
# forwarded; the same datagrams from the guest's own address pass.
ip -n $G addr add 203.0.113.7/32 dev lo
ip -n $G addr add 2001:db8:77::7/128 dev lo nodad
start $O "$TMP/o5300.log" serve-udp 5300 "$TMP/udp5300" || exit 1
udp_from() { # FROM TO PORT WORD
	in_g $PY -S -c 'import socket, sys
src, dst, port, word = sys.argv[1:]
s = socket.socket(socket.AF_INET6 if ":" in src else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
s.sendto(word.encode(), (dst, int(port)))' "$@"
}
for fam in 4 6; do
	if [ $fam = 4 ]; then own=10.250.0.2 forged=203.0.113.7 gw=10.250.0.1 allowed=198.18.1.1
	else own=fd00:250::2 forged=2001:db8:77::7 gw=fd00:250::1 allowed=2001:db8:1::1; fi
	before=$(counter dropped)
	for src in $own $forged; do
		udp_from $src $gw 53 "dns-from-$src"
		udp_from $src $allowed 5300 "fwd-from-$src"
	done
	sleep 0.2
	check "ipv$fam: the guest's own source reaches the DNS port and is forwarded" \
		grep -q "dns-from-$own" "$TMP/dns" && grep -q "fwd-from-$own" "$TMP/udp5300"
	leaked=$(cat "$TMP/dns" "$TMP/udp5300" 2>/dev/null | grep -c "from-$forged")
	check "ipv$fam: a forged source reaches neither ($leaked seen), and is counted as dropped" \
		[ "$leaked" = 0 -a "$(counter dropped)" -ge $((before + 2)) ]
done

# Neighbour discovery passes the source check (DAD probes come from ::),
# but only from addresses no router forwards: not a forged one.
rm -f "$TMP/quoted"
start $O "$TMP/sniffnd.log" sniff forged-nd "$TMP/forged-nd" || exit 1
in_g $PY -S "$TMP/t.py" nd 2001:db8:77::7 2001:db8:1::1 forged-nd
in_g $PY -S "$TMP/t.py" nd fd00:250::2 2001:db8:1::1 forged-nd
sleep 0.2
check "ipv6: neighbour discovery from a forged source is not forwarded ($(tr '\n' ' ' <"$TMP/forged-nd" 2>/dev/null))" \
	[ "$(cat "$TMP/forged-nd" 2>/dev/null)" = fd00:250::2 ]

# ---- ICMP errors the guest writes about the proxy's flows --------------
# A guest that quotes an origin's segment to the proxy in an ICMP error
# addressed to that origin has conntrack call it related to the proxy's
# flow; forwarded, it would carry whatever follows the quote to the
# origin, past the proxy.  Its own allowed flows are still related.
start $O "$TMP/sniff.log" sniff quoted-by-guest "$TMP/quoted" || exit 1
for fam in 4 6; do
	if [ $fam = 4 ]; then own=10.250.0.2 other=198.18.2.1 up=198.18.0.2
	else own=fd00:250::2 other=2001:db8:2::1 up=2001:db8:18::2; fi
	rm -f "$TMP/port"
	in_s $PY -S "$TMP/t.py" hold $other 8080 "$TMP/port" &
	hold_pid=$!
	for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.02; done
	in_g $PY -S "$TMP/t.py" quote $own $other $up 8080 "$(cat "$TMP/port")" \
		quoted-by-guest
	sleep 0.2
	check "ipv$fam: an ICMP error the guest writes about the proxy's flow is not forwarded" \
		[ ! -s "$TMP/quoted" ]
	kill $hold_pid; wait $hold_pid 2>/dev/null
	rm -f "$TMP/quoted"
done

# ---- the uplink table (launcher side, in the outer namespace) ----------
# The net namespace has no route back to the sandbox's uplink network:
# only masquerading lets the sandbox's own dials through.
check "uplink: apply the masquerading table" \
	in_ns $O "$HELPER" uplink fbnft-up ou 198.18.0.0/24 2001:db8:18::/64
conn $S 198.18.200.2 8081
check "uplink: the sandbox's dial leaves masqueraded (seen as $LINE)" \
	[ "$RC" = 0 -a "$LINE" = 198.18.200.1 ]
conn $S 2001:db8:200::2 8081
check "uplink: IPv6 too (seen as $LINE)" \
	[ "$RC" = 0 -a "$LINE" = 2001:db8:200::1 ]
in_ns $O nft add table ip foreign
in_ns $O "$HELPER" delete fbnft-up
conn $S 198.18.200.2 8081 0.5
check "uplink: deleted, nothing is masqueraded" [ "$RC" != 0 ]
check "uplink: delete left the foreign table" \
	in_ns $O nft list table ip foreign >/dev/null

# ---- delete -------------------------------------------------------------
in_s nft add table ip foreign
check "delete removes our table only" \
	bash -c "nsenter --net=/run/netns/$S $HELPER delete firebreak &&
		 ! nsenter --net=/run/netns/$S nft list table inet firebreak 2>/dev/null &&
		 nsenter --net=/run/netns/$S nft list table ip foreign >/dev/null"
conn $G 198.18.2.1 8080
check "without the table nothing is redirected" [ "$LINE" = origin ]

exit 0
