#!/bin/bash
# run_cut_retry.sh — a forwarded UDP flow, streaming both ways, whose
# range a policy update takes away.  The new table stops it at once, in
# both directions, whether or not the proxy's cut of its conntrack entry
# succeeds; the cut is what removes the entry.  helper_ctfail makes the
# kernel answer the first ctnetlink request, or every one, with ENOBUFS:
# a retry must still remove the entry, moments later; when every attempt
# fails, the entry lives on and only the table keeps the flow stopped.
. "$(dirname "$0")/lib.sh"

HELPER=$(pwd)/$FB_BUILD/tests/helper_ctfail
[ -x "$HELPER" ] || { skip run_cut_retry "$HELPER not built"; exit 0; }
fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }
fb_origin_addrs udp,198.51.100.10,9

# Either end of the flow: the guest dials, the origin answers its first
# datagram ("streaming"); from then on each sends one every 10 ms for
# 4 s, then prints "stopped NS" (NS: wall clock of the last datagram it
# received), or "uncut" if one came in its last 0.5 s.
cat >"$FB_TMP/flow.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if sys.argv[1] == "origin":
    s.bind(("198.51.100.10", 9))
    open(sys.argv[2], "w").close()
    _, peer = s.recvfrom(64)
    s.connect(peer)
    s.send(b"x")
else:
    s.connect(("198.51.100.10", 9))
    s.settimeout(2)
    s.send(b"hello")
    s.recv(64)
    print("streaming", flush=True)
s.setblocking(False)
last = start = time.time()
while time.time() - start < 4:
    try:
        s.send(b"x")
        while s.recv(64):
            last = time.time()
    except OSError:  # nothing to read, or an ICMP error: not data
        pass
    time.sleep(0.01)
if time.time() - last < 0.5:
    print("uncut", flush=True)
else:
    print("stopped %d" % int(last * 1e9), flush=True)
PY
chmod 644 "$FB_TMP/flow.py"

# ms OUT: the ms from the update (t0) to the last datagram one end
# received, or "uncut"
ms() {
	local ns
	ns=$(sed -n 's/^stopped \([0-9]*\)$/\1/p' "$1")
	if [ -n "$ns" ]; then
		echo $(((ns / 1000 - t0) / 1000))
	elif grep -qx uncut "$1"; then
		echo uncut
	fi
}

# in_sandbox CMD...: CMD in the last sandbox's network namespace, entered
# through its proxy's (the launcher mounts the namespace where only its
# own mount namespace sees it)
in_sandbox() {
	local proxy
	proxy=$(pgrep -f -- "/firebreak-proxy .*--sandbox-id $FB_LAST_ID ")
	nsenter --net="/proc/$proxy/ns/net" "$@"
}

# flow FAILS: the flow, its update, with the first FAILS ctnetlink
# requests failing (-1: all).  Sets MS and OMS (ms from the update to the
# last datagram the guest, the origin received, or "uncut"), and ENTRY
# (the sandbox's conntrack entry of the flow 2.5 s after the update,
# when the retries, 1.5 s, are over; "unread" if it could not be read).
flow() {
	local out=$FB_TMP/flow.$1.out oout=$FB_TMP/origin.$1.out
	local ready=$FB_TMP/push.$RANDOM pid push t0 ct
	ip netns exec "$INET" "$PY" "$FB_TMP/flow.py" origin "$ready" \
		>"$oout" 2>&1 &
	push=$!
	FB_PIDS+=($push)
	for _ in $(seq 100); do [ -e "$ready" ] && break; sleep 0.02; done
	printf 'allow: []\nsubnets:\n  allow: ["198.51.100.0/24"]\n' \
		>"$FB_TMP/policy.yaml"
	fb_next_id
	in_host timeout -k 5 20 "$HELPER" "$1" "$FIREBREAK" run \
		--state-dir "$FB_TMP/state" --name "$FB_LAST_ID" \
		--policy "$FB_TMP/policy.yaml" "${PUBLICS[@]}" \
		-- "$PY" "$FB_TMP/flow.py" guest >"$out" 2>&1 &
	pid=$!
	fb_wait_line '^streaming' "$out"
	printf 'allow: []\n' >"$FB_TMP/policy.yaml"
	t0=${EPOCHREALTIME/./}
	kill -HUP "$(fb_launcher_pid "$FB_LAST_ID")"
	sleep 2.5
	ENTRY=unread
	ct=$(in_sandbox cat /proc/net/nf_conntrack) &&
		ENTRY=$(grep 'dst=198.51.100.10 sport=[0-9]* dport=9 ' <<<"$ct")
	wait "$pid"
	wait "$push"
	sed 's/^/# /' "$out" "$oout"
	MS=$(ms "$out")
	OMS=$(ms "$oout")
}

# failed N: the proxy said N times that a cut failed
failed() { [ "$(grep -c 'cutting forwarded flows: .*No buffer space' "$FB_TMP/flow.$1.out")" = "$2" ]; }
# stopped: the flow stopped both ways within a second of the update
stopped() {
	[ "$MS" != uncut ] && [ "${MS:-9999}" -lt 1000 ] &&
		[ "$OMS" != uncut ] && [ "${OMS:-9999}" -lt 1000 ]
}

flow 0
check "a cut that succeeds: the flow stops both ways (${MS} and ${OMS} ms after the update)" \
	holds 'stopped && failed 0 0'
check "... its conntrack entry is gone" [ -z "$ENTRY" ]
check "... nothing left behind" [ -z "$(fb_leftovers "$FB_LAST_ID")" ]
flow 1
check "the first cut fails: the flow stops both ways (${MS} and ${OMS} ms after the update)" \
	holds 'stopped && failed 1 1'
check "... a retry removes its conntrack entry" [ -z "$ENTRY" ]
check "... nothing left behind" [ -z "$(fb_leftovers "$FB_LAST_ID")" ]
flow -1
check "every cut failing (the first and four retries), the table stops the flow both ways (${MS} and ${OMS} ms after the update)" \
	holds 'stopped && failed -1 5'
check "... though its conntrack entry lives on (${ENTRY:-none})" \
	holds '[ -n "$ENTRY" ] && [ "$ENTRY" != unread ]'
check "... nothing left behind" [ -z "$(fb_leftovers "$FB_LAST_ID")" ]
