#!/bin/bash
# run_cut_retry.sh — a forwarded UDP flow outlives a policy update that
# takes its range away for as long as its conntrack entry does: the new
# table drops what the guest sends, but the origin keeps pushing
# datagrams in over the entry.  When the proxy's cut of that entry fails
# (helper_ctfail makes the kernel answer the first ctnetlink request, or
# every one, with ENOBUFS), its retry must still stop the flow, moments
# later; when every attempt fails, the flow is seen to run on, which is
# what the retry is for.
. "$(dirname "$0")/lib.sh"

HELPER=$(pwd)/$FB_BUILD/tests/helper_ctfail
[ -x "$HELPER" ] || { skip run_cut_retry "$HELPER not built"; exit 0; }
fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }
fb_origin_addrs udp,198.51.100.10,9

# the origin: once a datagram arrives, one back to its sender every 10 ms
cat >"$FB_TMP/push.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.10", 9))
open(sys.argv[1], "w").close()
_, peer = s.recvfrom(64)
while True:
    s.sendto(b"x", peer)
    time.sleep(0.01)
PY
# the guest: one datagram out, then "streaming" and, when nothing has
# come in for 0.5 s, "stopped NS" (NS: wall clock of the last one);
# "uncut" if it still runs after 3 s
cat >"$FB_TMP/listen.py" <<'PY'
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("198.51.100.10", 9))
s.settimeout(2)
s.send(b"hello")
s.recv(64)
print("streaming", flush=True)
s.settimeout(0.5)
last = start = time.time()
try:
    while time.time() - start < 3:
        s.recv(64)
        last = time.time()
    print("uncut", flush=True)
except socket.timeout:
    print("stopped %d" % int(last * 1e9), flush=True)
PY
chmod 644 "$FB_TMP/push.py" "$FB_TMP/listen.py"

# flow FAILS: $MS, the ms from the update to the flow's last datagram,
# or "uncut", with the first FAILS ctnetlink requests failing (-1: all)
flow() {
	local out=$FB_TMP/flow.$1.out ready=$FB_TMP/push.$RANDOM pid push t0 ns
	ip netns exec "$INET" "$PY" "$FB_TMP/push.py" "$ready" &
	push=$!
	FB_PIDS+=($push)
	for _ in $(seq 100); do [ -e "$ready" ] && break; sleep 0.02; done
	printf 'allow: []\nsubnets:\n  allow: ["198.51.100.0/24"]\n' \
		>"$FB_TMP/policy.yaml"
	fb_next_id
	in_host timeout -k 5 20 "$HELPER" "$1" "$FIREBREAK" run \
		--state-dir "$FB_TMP/state" --name "$FB_LAST_ID" \
		--policy "$FB_TMP/policy.yaml" "${PUBLICS[@]}" \
		-- "$PY" "$FB_TMP/listen.py" >"$out" 2>&1 &
	pid=$!
	for _ in $(seq 150); do
		grep -q '^streaming' "$out" && break
		sleep 0.02
	done
	printf 'allow: []\n' >"$FB_TMP/policy.yaml"
	t0=${EPOCHREALTIME/./}
	kill -HUP "$(fb_launcher_pid "$FB_LAST_ID")"
	wait "$pid"
	kill "$push"
	sed 's/^/# /' "$out"
	ns=$(sed -n 's/^stopped \([0-9]*\)$/\1/p' "$out")
	MS=
	if [ -n "$ns" ]; then
		MS=$(((ns / 1000 - t0) / 1000))
	elif grep -qx uncut "$out"; then
		MS=uncut
	fi
}

# failed N: the proxy said N times that a cut failed
failed() { [ "$(grep -c 'cutting forwarded flows: .*No buffer space' "$FB_TMP/flow.$1.out")" = "$2" ]; }

flow 0
check "a cut that succeeds stops the flow (${MS} ms after the update)" \
	holds '[ "$MS" != uncut ] && [ "${MS:-9999}" -lt 1000 ] && failed 0 0'
check "... nothing left behind" [ -z "$(fb_leftovers "$FB_LAST_ID")" ]
# the flow stops only when a cut succeeds (below): here, the retry's
flow 1
check "the first cut fails, a retry stops the flow (${MS} ms after the update)" \
	holds '[ "$MS" != uncut ] && [ "${MS:-9999}" -lt 1000 ] && failed 1 1'
check "... nothing left behind" [ -z "$(fb_leftovers "$FB_LAST_ID")" ]
flow -1
check "every cut failing (the first and four retries), the flow runs on ($MS)" \
	holds '[ "$MS" = uncut ] && failed -1 5'
check "... nothing left behind" [ -z "$(fb_leftovers "$FB_LAST_ID")" ]
