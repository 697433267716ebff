#!/bin/bash
# What a guest can reach under a CIDR policy, IPv4 and IPv6: allowed
# ranges are forwarded, everything else is refused fast or dropped; a
# connection the policy leaves to names meets the proxy, which refuses it.
. "$(dirname "$0")/lib.sh"

fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }

origins=(
	tcp,198.51.100.10,80,hello       # in subnets.allow
	tcp,198.51.100.200,80,hello      # in subnets.deny, inside the allowed /24
	tcp,203.0.113.10,80,hello        # public, not allowed by address
	udp,203.0.113.10,443
	udp,203.0.113.10,9999
	tcp,2001:db8:100::10,80,hello    # allowed
	tcp,2001:db8:100::90,80,hello    # denied inside the allowed /120
	tcp,2001:db8:100::1:10,80,hello  # public, not allowed by address
	udp,2001:db8:100::1:10,443
	# the metadata service and IPv6 forms that embed its address
	tcp,169.254.169.254,80,hello
	tcp,64:ff9b::a9fe:a9fe,80,hello  # NAT64
	tcp,2002:a9fe:a9fe::1,80,hello   # 6to4
)
fb_origins "${origins[@]}" || { not_ok "origins"; exit 1; }
# the host's own services, on every address it has
fb_outer_origins tcp,0.0.0.0,8081,hello tcp,::,8082,hello ||
	{ not_ok "host origins"; exit 1; }

cat >"$FB_TMP/policy.yaml" <<'EOF'
allow: []
subnets:
  allow: ["198.51.100.0/24", "2001:db8:100::/120"]
  deny: ["198.51.100.128/25", "2001:db8:100::80/122"]
EOF

probes=(
	tcp,198.51.100.10,80 tcp,198.51.100.200,80 tcp,203.0.113.10,80
	udp,203.0.113.10,443 udp,203.0.113.10,9999
	tcp,2001:db8:100::10,80 tcp,2001:db8:100::90,80
	tcp,2001:db8:100::1:10,80 udp,2001:db8:100::1:10,443
	tcp,169.254.169.254,80 tcp,::ffff:169.254.169.254,80
	tcp,64:ff9b::a9fe:a9fe,80 tcp,2002:a9fe:a9fe::1,80
	tcp,10.200.0.1,22 tcp,fd00:fb::1,22
	tcp,192.0.2.1,8081 tcp,2001:db8:1::1,8082
)

# Controls: from the host every origin answers, so what the guest sees
# below is the sandbox's doing.
control=$(in_host "$PY" "$FB_TMP/probe.py" tcp,198.51.100.200,80 \
	tcp,203.0.113.10,80 udp,203.0.113.10,443 tcp,2001:db8:100::90,80 \
	tcp,169.254.169.254,80 tcp,64:ff9b::a9fe:a9fe,80 \
	tcp,2002:a9fe:a9fe::1,80)
check "control: every origin answers the host" \
	[ "$(grep -c ' \(open\|reply\) ' <<<"$control")" = 7 ]

fb_next_id
out=$(fb_run --policy "$FB_TMP/policy.yaml" "${PUBLICS[@]}" \
	-- $(fb_probe "${probes[@]}") 2>&1)
echo "$out" | sed 's/^/# /'

# expect PROBE RESULTS [MAX_MS]: the probe's result is one of RESULTS,
# within MAX_MS when given.
expect() {
	local probe=$1 want=$2 max=${3:-} p got ms
	while read -r p got ms; do
		[ "$p" = "$probe" ] || continue
		[[ " $want " == *" $got "* ]] || return 1
		[ -z "$max" ] || [ "${ms%ms}" -le "$max" ]
		return
	done <<<"$out"
	return 1
}

check "allowed CIDR reachable (IPv4)" expect tcp,198.51.100.10,80 open
check "allowed CIDR reachable (IPv6)" expect tcp,2001:db8:100::10,80 open
check "denied CIDR inside an allowed one: reset, fast (IPv4)" \
	expect tcp,198.51.100.200,80 refused 300
check "denied CIDR inside an allowed one: reset, fast (IPv6)" \
	expect tcp,2001:db8:100::90,80 refused 300
check "address not allowed: refused by the proxy, fast (IPv4)" \
	expect tcp,203.0.113.10,80 "denied refused" 300
check "address not allowed: refused by the proxy, fast (IPv6)" \
	expect tcp,2001:db8:100::1:10,80 "denied refused" 300
check "UDP to 443 dropped (IPv4)" expect udp,203.0.113.10,443 noreply
check "UDP to another port dropped" expect udp,203.0.113.10,9999 noreply
check "UDP to 443 dropped (IPv6)" expect udp,2001:db8:100::1:10,443 noreply
check "169.254.169.254 refused" expect tcp,169.254.169.254,80 refused 300
check "::ffff:169.254.169.254 refused" \
	expect tcp,::ffff:169.254.169.254,80 refused 300
check "64:ff9b::a9fe:a9fe (NAT64) refused" \
	expect tcp,64:ff9b::a9fe:a9fe,80 refused 300
check "2002:a9fe:a9fe::1 (6to4) refused" \
	expect tcp,2002:a9fe:a9fe::1,80 refused 300
check "gateway's other ports closed (IPv4)" \
	expect tcp,10.200.0.1,22 "refused timeout"
check "gateway's other ports closed (IPv6)" \
	expect tcp,fd00:fb::1,22 "refused timeout"
check "host's own addresses unreachable (IPv4)" \
	expect tcp,192.0.2.1,8081 "refused timeout"
check "host's own addresses unreachable (IPv6)" \
	expect tcp,2001:db8:1::1,8082 "refused timeout"
check "nothing left behind" [ -z "$(fb_leftovers "$FB_LAST_ID")" ]

# A policy that opens the host's own network (its public or VPC subnet,
# say, for a database there) opens the other machines on it, not the
# host: its services see a sandbox as a local peer, past whatever
# firewall it keeps on its outside interface.
fb_origins tcp,192.0.2.2,8083,hello tcp,2001:db8:1::2,8084,hello ||
	{ not_ok "origins beside the host"; exit 1; }
cat >"$FB_TMP/lan.yaml" <<'EOF'
allow: []
subnets:
  allow: ["192.0.2.0/24", "2001:db8:1::/64"]
EOF
fb_next_id
out=$(fb_run --policy "$FB_TMP/lan.yaml" --public 192.0.2.0/24 \
	--public 2001:db8:1::/64 -- $(fb_probe tcp,192.0.2.2,8083 \
	tcp,2001:db8:1::2,8084 tcp,192.0.2.1,8081 tcp,2001:db8:1::1,8082) 2>&1)
echo "$out" | sed 's/^/# /'
check "host's network allowed: its other machines reachable (IPv4)" \
	expect tcp,192.0.2.2,8083 open
check "host's network allowed: its other machines reachable (IPv6)" \
	expect tcp,2001:db8:1::2,8084 open
check "host's network allowed: the host itself unreachable (IPv4)" \
	expect tcp,192.0.2.1,8081 "refused timeout"
check "host's network allowed: the host itself unreachable (IPv6)" \
	expect tcp,2001:db8:1::1,8082 "refused timeout"
check "host's network allowed: nothing left behind" \
	[ -z "$(fb_leftovers "$FB_LAST_ID")" ]

# A host service on a unix socket at $1, open to everyone: the first
# thing a client sends lands in $2.
unix_service() {
	"$PY" -c 'import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
s.listen(1)
c, _ = s.accept()
open(sys.argv[2], "wb").write(c.recv(64))' "$1" "$2" &
	FB_PIDS+=($!)
	for _ in $(seq 100); do [ -S "$1" ] && break; sleep 0.02; done
}

# The host's services on unix sockets under /run (D-Bus, a database's
# local socket): a path no network namespace hides, open to everyone.
SOCK=/run/fbt-$$-svc.sock
unix_service "$SOCK" "$FB_TMP/svc.got"
fb_next_id
# (from the test's directory: a checkout under /tmp is not in the
# sandbox, and the guest would say so on stderr)
out=$(cd "$FB_TMP" && fb_run --policy deny-all -- "$PY" -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    s.sendall(b"from the guest")
    print("connected")
except OSError as e:
    print(e.strerror)' "$SOCK" 2>&1)
echo "$out" | sed 's/^/# /'
sleep 0.2
check "the host's unix sockets under /run unreachable" \
	holds '[ ! -s "$FB_TMP/svc.got" ] && [ "$out" = "No such file or directory" ]'
rm -f "$SOCK"

# /tmp, /var/tmp and /dev/shm hold the host's users' sockets (X11, tmux,
# ssh-agent), the files they leave each other and POSIX shared memory,
# all by path.  The guest gets an empty one of each, its own to use, and
# a /sys whose network devices are its own.
HT=$(mktemp -d /tmp/fbt-$$-host.XXXXXX)
OWN=fbt-$$-own
HOST_FILES=("$HT" /var/tmp/fbt-$$-file /dev/shm/fbt-$$-shm
	    {/tmp,/var/tmp,/dev/shm}/"$OWN" /tmp/"$OWN".sock)
trap 'rm -rf "${HOST_FILES[@]}"; fb_cleanup' EXIT
chmod 755 "$HT"
echo host >/var/tmp/fbt-$$-file
echo host >/dev/shm/fbt-$$-shm     # shm_open("/fbt-$$-shm") opens this
chmod 666 /var/tmp/fbt-$$-file /dev/shm/fbt-$$-shm
unix_service "$HT/sock" "$FB_TMP/tmp.got"
cat >"$FB_TMP/private.py" <<'PYEOF'
import os, socket, stat, sys

sock, own, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sock)
    s.sendall(b"from the guest")
    print("host socket connected")
except OSError as e:
    print("host socket", e.strerror)
for p in paths:
    print("host path", p, "seen" if os.path.lexists(p) else "unseen")
for d in ("/tmp", "/var/tmp", "/dev/shm"):
    print("dir", d, oct(stat.S_IMODE(os.stat(d).st_mode)),
          len(os.listdir(d)), "entries")
    with open(os.path.join(d, own), "w") as f:
        f.write("mine")
    with open(os.path.join(d, own)) as f:
        print("own file", d, f.read())
srv = socket.socket(socket.AF_UNIX)
srv.bind("/tmp/" + own + ".sock")
srv.listen(1)
c = socket.socket(socket.AF_UNIX)
c.connect("/tmp/" + own + ".sock")
c.sendall(b"ping")
print("own socket", srv.accept()[0].recv(4).decode())
seen = {}
for line in open("/proc/self/mounts"):
    at, fs, opts = line.split()[1:4]
    seen[at] = fs + " " + opts      # the last one mounted there shows
for at in ("/tmp", "/var/tmp", "/dev/shm", "/sys"):
    print("mount", at, seen.get(at, "none"))
print("sys class net", *sorted(os.listdir("/sys/class/net")))
print("interfaces", *sorted(n for _, n in socket.if_nameindex()))
print("resolv", open("/etc/resolv.conf").read().split()[-1])
PYEOF
chmod 644 "$FB_TMP/private.py"
# The state directory under /tmp too: resolv.conf comes from there.
fb_next_id
out=$(fb_run --policy deny-all --state-dir "$HT/state" -- "$PY" \
	"$FB_TMP/private.py" "$HT/sock" "$OWN" "$HT" /var/tmp/fbt-$$-file \
	/dev/shm/fbt-$$-shm 2>&1)
echo "$out" | sed 's/^/# /'
sleep 0.2
line() { sed -n "s|^$1 ||p" <<<"$out"; }
check "the host's unix sockets under /tmp unreachable" \
	holds '[ ! -s "$FB_TMP/tmp.got" ] &&
	       [ "$(line "host socket")" = "No such file or directory" ]'
check "the host's files in /tmp, /var/tmp and /dev/shm unseen" \
	[ "$(grep -c '^host path .* unseen$' <<<"$out")" = 3 ]
check "the guest's /tmp, /var/tmp and /dev/shm: empty, mode 1777" \
	[ "$(grep -c '^dir /[a-z/]* 0o1777 0 entries$' <<<"$out")" = 3 ]
check "the guest writes and reads its own files there" \
	[ "$(grep -c '^own file /[a-z/]* mine$' <<<"$out")" = 3 ]
check "the guest listens and connects on a unix socket in its /tmp" \
	[ "$(line "own socket")" = ping ]
check "none of the guest's files reach the host's directories" \
	bash -c "! ls -d {/tmp,/var/tmp,/dev/shm}/$OWN /tmp/$OWN.sock >/dev/null 2>&1"
check "/tmp and /var/tmp: tmpfs, nosuid, nodev, size-limited" \
	holds '[ "$(line "mount /tmp" | grep -c "^tmpfs .*nosuid,nodev.*size=")" = 1 ] &&
	       [ "$(line "mount /var/tmp" | grep -c "^tmpfs .*nosuid,nodev.*size=")" = 1 ]'
check "/dev/shm: tmpfs, nosuid, nodev, noexec, size-limited" \
	grep -q '^mount /dev/shm tmpfs .*nosuid,nodev,noexec.*size=' <<<"$out"
check "/sys: a read-only sysfs" grep -q '^mount /sys sysfs ro,' <<<"$out"
check "/sys/class/net lists the guest's interfaces, no others ($(line "sys class net"))" \
	holds '[ -n "$(line interfaces)" ] &&
	       [ "$(line "sys class net")" = "$(line interfaces)" ]'
check "a state directory under /tmp: the guest still gets its resolv.conf" \
	[ "$(line resolv)" = 10.200.0.1 ]
check "nothing left behind with the state directory under /tmp" \
	[ -z "$(FB_TMP=$HT fb_leftovers "$FB_LAST_ID")" ]

# A working directory is held, not looked up: one in the host's /tmp
# would stay the host's.  It is not in the sandbox: the command starts in
# /, and says why.
fb_next_id
out=$(cd "$HT" && fb_run --policy deny-all -- pwd 2>&1)
rc=$?
echo "$out" | sed 's/^/# /'
check "a working directory in the host's /tmp: the command starts in /, told why" \
	holds '[ "$rc" = 0 ] && [ "$out" = "firebreak run: the working directory $HT is not in the sandbox (its /run, /tmp, /var/tmp and /dev/shm are its own): the command starts in /
/" ]'
check "nothing left behind after the working directory in /tmp" \
	[ -z "$(fb_leftovers "$FB_LAST_ID")" ]

# System V IPC, found by key and open to whoever its mode allows.
qid=$(ipcmk -Q -p 0666 | awk '{ print $NF }')
fb_next_id
out=$(fb_run --policy deny-all -- ipcs -q 2>&1)
ipcrm -q "$qid"
echo "$out" | sed 's/^/# /'
check "the host's System V IPC unseen" \
	holds '[ -n "$qid" ] && grep -q "Message Queues" <<<"$out" &&
	       ! grep -qE "^0x[0-9a-f]+ +$qid " <<<"$out"'

# IPv6 egress only where the host has IPv6 to forward to: without a
# default route there, the guest's IPv6 stays inside and IPv4 still works.
in_host ip -6 route del default
fb_next_id
out=$(fb_run --policy "$FB_TMP/policy.yaml" "${PUBLICS[@]}" \
	-- $(fb_probe tcp,198.51.100.10,80 tcp,2001:db8:100::10,80,0.5) 2>&1)
echo "$out" | sed 's/^/# /'
check "host without IPv6 route: IPv4 egress still works" \
	expect tcp,198.51.100.10,80 open
check "host without IPv6 route: no IPv6 egress" \
	expect tcp,2001:db8:100::10,80,0.5 "unreachable timeout refused"
check "host without IPv6 route: nothing left behind" \
	[ -z "$(fb_leftovers "$FB_LAST_ID")" ]
