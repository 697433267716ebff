#!/bin/bash
# firebreak-vmhost's API and its command line: create, list, policy get /
# set / patch through the daemon, logs, rm; clear errors for a busy id,
# bad resources, an unknown backend, a missing hypervisor and a bad
# policy, none of which leaves anything behind.
. "$(dirname "$0")/daemon_lib.sh"

fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }
fb_origins tcp,203.0.113.10,80,hello || { not_ok "origins"; exit 1; }
fb_daemon_start || { not_ok "daemon starts"; exit 1; }
check "socket is mode 0600" [ "$(stat -c %a "$SOCK")" = 600 ]

# The slot pool's directory is not a sandbox's, even before it exists
# (the first sandbox makes it): recovering such a sandbox would remove
# every other launcher's slot lock.
code=$(api -o "$FB_TMP/e" -w '%{http_code}' -X POST \
	-d '{"id":"slots","command":["sleep","1"]}' http://vmhost/sandboxes)
check "id slots: 400, saying it is taken" \
	bash -c "[ $code = 400 ] && grep -q 'other than \"slots\"' $FB_TMP/e"
check "id slots: no state file among the slot locks" \
	[ ! -e "$STATE/slots/state.json" -a ! -e /run/netns/fb-slots ]

fb_next_id
id=$FB_LAST_ID
out=$(fbd create --id "$id" --policy deny-all --env GREETING=hi -- \
	sleep 300 2>&1)
check "create prints the id" [ "$out" = "$id" ]
check "the sandbox's namespace exists" [ -e "/run/netns/fb-$id" ]
check "its table exists in the daemon's namespace" \
	bash -c "ip netns exec $HOST nft list tables | grep -qw firebreak-$id"
check "state file: running, with live proxy and guest" \
	[ "$(state_of "$id" '(s["status"], min(s["pids"].values()) > 0)')" \
		= "('running', True)" ]
check "the guest runs the command as nobody" \
	pgrep -u 65534 -fx "sleep 300" >/dev/null
guest=$(pgrep -u 65534 -fx "sleep 300" | head -1)
check "the guest works from /, not the daemon's directory under /tmp" \
	[ "$(readlink "/proc/$guest/cwd")" = / ]
check "the guest's standard descriptors are /dev/null, not the daemon's log" \
	[ "$(readlink "/proc/$guest/fd/0" "/proc/$guest/fd/1" "/proc/$guest/fd/2" | sort -u)" = /dev/null ]
check "the guest's environment is clean: env given, no daemon variables" \
	bash -c "tr '\0' '\n' </proc/$guest/environ | grep -qx GREETING=hi &&
		! tr '\0' '\n' </proc/$guest/environ | grep -q '^FB_TMP='"

relay=$(state_of "$id" 's["pids"]["guest"]')
check "the guest's relay holds none of the daemon's namespaces or sockets" \
	bash -c "! ls -l /proc/$relay/fd | grep -qE 'net:|socket:'"

ls_out=$(fbd ls)
check "ls lists it as running" \
	grep -qE "^$id +process +running .* sleep 300$" <<<"$ls_out"
check "GET /sandboxes/ID answers JSON" \
	grep -q '"status":"running"' <<<"$(api "http://vmhost/sandboxes/$id")"
setup=$(api "http://vmhost/sandboxes/$id" | grep -o '"setup_ms":[0-9.]*' | cut -d: -f2)
check "... with the time its network and proxy took (${setup:-none} ms)" \
	awk -v t="${setup:-0}" 'BEGIN { exit !(t > 0 && t < 10000) }'

r=$(guest_probe "$id" connect,203.0.113.10,80 tcp,203.0.113.10,80)
sed 's/^/# /' <<<"$r"
check "deny-all: TCP from the guest meets the proxy, which refuses it" \
	bash -c "! grep -q ' open ' <<<'$r'"

code=$(api -o "$FB_TMP/pol" -w '%{http_code}' \
	"http://vmhost/sandboxes/$id/policy")
check "policy get through the daemon: 200 deny-all" \
	bash -c "[ $code = 200 ] && grep -q deny-all $FB_TMP/pol"
printf 'subnets:\n  allow: [203.0.113.0/24]\n' >"$FB_TMP/allow.yaml"
code=$(api -o "$FB_TMP/put" -w '%{http_code}' -X PUT \
	--data-binary @"$FB_TMP/allow.yaml" "http://vmhost/sandboxes/$id/policy")
check "policy set through the daemon: 200 and a new generation" \
	bash -c "[ $code = 200 ] && grep -q '\"generation\":2' $FB_TMP/put"
r=$(guest_probe "$id" tcp,203.0.113.10,80)
check "the new policy is enforced: the guest reaches the origin" \
	grep -q ' open ' <<<"$r"
code=$(api -o "$FB_TMP/bad" -w '%{http_code}' -X PUT --data-binary 'allow: 5' \
	"http://vmhost/sandboxes/$id/policy")
check "a bad policy: the proxy's 400 passed back with its position" \
	bash -c "[ $code = 400 ] && grep -q '1:8' $FB_TMP/bad"
code=$(api -o /dev/null -w '%{http_code}' -X PATCH -H 'If-Match: "1"' \
	--data-binary '{"subnets":{"deny":["203.0.113.0/24"]}}' \
	"http://vmhost/sandboxes/$id/policy")
check "If-Match is passed on: a stale generation gets 412" [ "$code" = 412 ]
# a list over two lines matches when any tag does, as at the proxy itself
gen=$(api -o /dev/null -D - "http://vmhost/sandboxes/$id/policy" |
	sed -n 's/^ETag: *"\([0-9]*\)".*/\1/ip')
code=$(api -o "$FB_TMP/im" -w '%{http_code}' -X PATCH -H "If-Match: \"$gen\"" \
	-H 'If-Match: "999"' --data-binary '{"allow":{"x.test":[]}}' \
	"http://vmhost/sandboxes/$id/policy")
check "If-Match over two lines is passed on whole: the current generation in it: 200" \
	bash -c "[ -n '$gen' ] && [ '$code' = 200 ]"
code=$(api -o "$FB_TMP/inm" -w '%{http_code}' -X PATCH -H 'If-None-Match: *' \
	--data-binary '{"allow":{"y.test":[]}}' "http://vmhost/sandboxes/$id/policy")
check "If-None-Match is passed on: * gets 412, there being a policy ($code)" \
	bash -c "[ '$code' = 412 ] && grep -q 'If-None-Match' $FB_TMP/inm"
code=$(api -o /dev/null -w '%{http_code}' -X PATCH \
	--data-binary '{"subnets":{"deny":["203.0.113.0/24"]}}' \
	"http://vmhost/sandboxes/$id/policy")
check "policy patch through the daemon: 200" [ "$code" = 200 ]
r=$(guest_probe "$id" tcp,203.0.113.10,80)
check "the patched policy is enforced: the origin is refused again" \
	bash -c "! grep -q ' open ' <<<'$r'"
check "the daemon keeps the patched policy for a restart" \
	grep -q '203.0.113.0/24' "$STATE/$id/policy.current"
check "firebreak policy get (the proxy's socket) shows the merge" \
	bash -c "'$FIREBREAK' policy get $id --state-dir $STATE |
		grep -q 203.0.113.0/24"

printf 'allow: [example.net]\nsubnets: {deny: [203.0.113.0/24]}\n' >"$FB_TMP/set.yaml"
check "firebreak policy set --socket goes through the daemon" \
	bash -c "'$FIREBREAK' policy set $id $FB_TMP/set.yaml --socket $SOCK >/dev/null"
check "... which keeps it for a restart" \
	grep -q example.net "$STATE/$id/policy.current"
check "firebreak policy get --socket shows it" \
	bash -c "'$FIREBREAK' policy get $id --socket $SOCK | grep -q example.net"
check "... and its generation, on stderr" \
	bash -c "'$FIREBREAK' policy get $id --socket $SOCK 2>&1 >/dev/null |
		grep -qx 'generation 5'"

# A policy that does not load: the message names the user's file, line
# and column, as `policy check` does, not the proxy's "<body>".
printf 'allow:\n  - "api*.example.com"\n' >"$FB_TMP/bad.yaml"
printf '{\n  "allow": 5\n}\n' >"$FB_TMP/bad.json"
err=$("$FIREBREAK" policy set "$id" "$FB_TMP/bad.yaml" --state-dir "$STATE" 2>&1)
echo "# $err"
check "policy set, a bad file: FILE:LINE:COL, the proxy's answer" \
	holds 'grep -qxF "$FB_TMP/bad.yaml:2:5: invalid domain \"api*.example.com\": wildcard must be a whole label (\"*.example.com\", not \"api*.example.com\")" <<<"$err" &&
		grep -qx "firebreak policy: the proxy answered 400" <<<"$err"'
err=$("$FIREBREAK" policy patch "$id" "$FB_TMP/bad.json" --state-dir "$STATE" 2>&1)
check "policy patch, a bad file: FILE:LINE:COL" \
	grep -qF "$FB_TMP/bad.json:2:12: expected a list" <<<"$err"
err=$("$FIREBREAK" policy set "$id" - --state-dir "$STATE" <"$FB_TMP/bad.yaml" 2>&1)
check "policy set from stdin: <stdin>:LINE:COL" \
	grep -qF "<stdin>:2:5: invalid domain" <<<"$err"
err=$("$FIREBREAK" policy set "$id" "$FB_TMP/bad.yaml" --socket "$SOCK" 2>&1)
check "policy set --socket, a bad file: FILE:LINE:COL, the daemon's answer" \
	holds 'grep -qF "$FB_TMP/bad.yaml:2:5: invalid domain" <<<"$err" &&
		grep -qx "firebreak policy: firebreak-vmhost answered 400" <<<"$err"'
err=$("$FIREBREAK" policy get nosuch --socket "$SOCK" 2>&1)
check "policy get --socket, no such sandbox: the daemon says so, not a proxy" \
	holds 'grep -qx "no such sandbox: nosuch" <<<"$err" &&
		grep -qx "firebreak policy: firebreak-vmhost answered 404" <<<"$err"'
err=$(fbd create --policy "$FB_TMP/bad.yaml" -- true 2>&1)
check "create --policy, a bad file: FILE:LINE:COL" \
	grep -qF "policy: $FB_TMP/bad.yaml:2:5: invalid domain" <<<"$err"

logs=$(fbd logs "$id")
check "logs: the audit log, down to the last policy change" \
	grep -q '"event.action":"policy".*"policy.generation":4' <<<"$logs"
check "... each change through the daemon names the daemon's client too" \
	grep -q "\"policy.generation\":2,.*\"user.name\":\"control uid=0 pid=$FB_DAEMON PUT for uid=0 pid=[0-9]*\"" <<<"$logs"
# followed IP: the guest connects to IP:80, and within 2.5 s the line of
# it reaches the follower
followed() {
	guest_probe "$id" "tcp,$1,80" >/dev/null
	for _ in $(seq 50); do
		grep -q "\"destination.ip\":\"$1\"" "$FB_TMP/follow" && return 0
		sleep 0.05
	done
	return 1
}
fbd logs --follow "$id" >"$FB_TMP/follow" &
follower=$!
sleep 0.3
check "logs --follow streams a line written after it started" \
	followed 198.51.100.77
# The log rotated under the follower (moved away, the proxy told to
# reopen): the lines of the new file follow, from its start.
mv "$STATE/$id/audit.log" "$STATE/$id/audit.log.1"
kill -HUP "$(state_of "$id" 's["pids"]["proxy"]')"
sleep 0.3
check "logs --follow goes on into a rotated log" followed 198.51.100.78
kill "$follower" 2>/dev/null
wait "$follower" 2>/dev/null
rm "$STATE/$id/audit.log.1" # the rotation's, not the daemon's to remove

# Errors: each names the problem, and leaves nothing.
err=$(fbd create --id "$id" -- sleep 1 2>&1)
check "busy id: refused, saying so" grep -q "sandbox $id exists" <<<"$err"
code=$(api -o "$FB_TMP/e" -w '%{http_code}' -X POST \
	-d "{\"id\":\"$id\",\"command\":[\"true\"]}" http://vmhost/sandboxes)
check "busy id: 409" [ "$code" = 409 ]
code=$(api -o "$FB_TMP/e" -w '%{http_code}' -X POST \
	-d '{"command":["true"],"resources":{"vcpus":0}}' http://vmhost/sandboxes)
check "bad resources: 400 naming the field" \
	bash -c "[ $code = 400 ] && grep -q '^resources.vcpus: ' $FB_TMP/e"
err=$(fbd create --memory-mib lots -- true 2>&1)
check "bad --memory-mib: the daemon names resources.memory_mib" \
	grep -q 'resources.memory_mib: expected an integer' <<<"$err"
# The daemon works from /: an --image relative to where `firebreak
# create` runs names a directory there, not under /.
err=$(cd "$FB_TMP" && fbd create --backend qemu --image guest-rel -- true 2>&1)
echo "# $err"
check "create --image, a relative path: under the client's directory" \
	grep -qF "guest image $FB_TMP/guest-rel/" <<<"$err"
code=$(api -o "$FB_TMP/e" -w '%{http_code}' -X POST \
	-d '{"command":["true"],"user":"nobody","user":"root"}' http://vmhost/sandboxes)
check "a key given twice: 400 naming it, nothing created ($(head -c 80 "$FB_TMP/e"))" \
	bash -c "[ $code = 400 ] && grep -q 'duplicate key \"user\"' $FB_TMP/e"
code=$(api -o "$FB_TMP/e" -w '%{http_code}' -X POST \
	-d '{"command":["true"],"user":"root"}' http://vmhost/sandboxes)
check "user root for the process backend: 400" \
	bash -c "[ $code = 400 ] && grep -q 'the process backend.s root is the host.s' $FB_TMP/e"
code=$(api -o "$FB_TMP/e" -w '%{http_code}' -X POST \
	-d '{"command":["true"],"backend":"xen"}' http://vmhost/sandboxes)
check "unknown backend: 400 listing the backends" \
	bash -c "[ $code = 400 ] && grep -q 'expected process, qemu or firecracker' $FB_TMP/e"
code=$(api -o "$FB_TMP/e" -w '%{http_code}' -X POST \
	-d '{"command":["true"],"backend":"firecracker"}' http://vmhost/sandboxes)
if command -v firecracker >/dev/null; then
	skip "missing hypervisor" "firecracker is installed here"
else
	check "missing hypervisor: 400 naming the program" \
		bash -c "[ $code = 400 ] && grep -q 'backend firecracker: firecracker: No such file' $FB_TMP/e"
fi
code=$(api -o "$FB_TMP/e" -w '%{http_code}' -X POST \
	-d '{"command":["true"],"backend":"qemu","image":"/nonexistent"}' \
	http://vmhost/sandboxes)
sed 's/^/# /' "$FB_TMP/e"
check "missing hypervisor or guest kernel: 400 naming what is missing" \
	bash -c "[ $code = 400 ] && grep -qE 'qemu-system-x86_64 is not installed|/nonexistent/vmlinux' $FB_TMP/e"
code=$(api -o "$FB_TMP/e" -w '%{http_code}' -X POST \
	-d '{"id":"bad-policy","command":["true"],"policy":"allow: 5"}' \
	http://vmhost/sandboxes)
check "bad policy: 400 with policy: <policy>:LINE:COL" \
	bash -c "[ $code = 400 ] && grep -q 'policy: <policy>:1:8: ' $FB_TMP/e"
check "a failed create leaves nothing" \
	bash -c "[ ! -e $STATE/bad-policy ] && [ ! -e /run/netns/fb-bad-policy ]"
code=$(api -o "$FB_TMP/e" -w '%{http_code}' -X POST -d '{"command":' \
	http://vmhost/sandboxes)
check "malformed body: 400" [ "$code" = 400 ]
# The body limit is 16 MiB: a body of exactly that is read whole (and
# found malformed); one byte more is refused from its head.
head -c $((16 << 20)) /dev/zero | tr '\0' x >"$FB_TMP/big"
code=$(api -o /dev/null -w '%{http_code}' -X POST -H 'Expect:' \
	--data-binary @"$FB_TMP/big" http://vmhost/sandboxes)
check "a body of 16 MiB, the limit: read, 400" [ "$code" = 400 ]
printf x >>"$FB_TMP/big"
code=$(api -o /dev/null -w '%{http_code}' -X POST \
	-H 'Expect: 100-continue' --data-binary @"$FB_TMP/big" \
	http://vmhost/sandboxes)
check "a body one byte over the limit: 413" [ "$code" = 413 ]
rm -f "$FB_TMP/big"
code=$(api -o /dev/null -w '%{http_code}' http://vmhost/sandboxes/nosuch)
check "unknown sandbox: 404" [ "$code" = 404 ]

# A client that asks for a large answer and does not read it is dropped
# after 20 s, and the answer with it.
fb_next_id
big=$FB_LAST_ID
fbd create --id "$big" -- sleep 305 >/dev/null
head -c 4000000 /dev/zero | tr '\0' x >>"$STATE/$big/audit.log"
got=$("$PY" -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"GET /sandboxes/" + sys.argv[2].encode() + b"/logs HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(23)
total = 0
try:
    while (d := s.recv(1 << 16)):
        total += len(d)
except OSError:
    pass
print(total)
' "$SOCK" "$big")
check "a client that does not read a 4 MB answer is dropped with it ($got bytes reached it)" \
	[ "${got:-4000000}" -lt 4000000 ]
fbd rm "$big" >/dev/null

fbd rm "$id"
check "rm: gone from ls" bash -c "! '$FIREBREAK' ls --socket $SOCK | grep -qw $id"
check "rm: nothing left (namespace, tables, links, files, slot)" \
	[ -z "$(fb_leftovers "$id")" ]
check "rm: the guest is gone" bash -c "! pgrep -u 65534 -fx 'sleep 300'"
kept=$(ls "$STATE/audit.d/$id".*Z.log 2>/dev/null)
check "rm: the audit log is kept, whole (${kept##*/})" \
	holds '[ "$(wc -l <<<"$kept")" = 1 ] &&
		grep -q "\"event.action\":\"policy\".*\"sandbox.id\":\"$id\"" "$kept" &&
		tail -n 1 "$kept" | grep -q "\"event.type\":\"end\"\|\"event.action\""'

# A sandbox still running when the daemon stops goes with it.
fb_next_id
fbd create --id "$FB_LAST_ID" -- sleep 301 >/dev/null
fb_daemon_kill TERM
check "daemon stop removes its sandboxes" \
	[ -z "$(fb_leftovers "$FB_LAST_ID")" ]
check "... and keeps their audit logs" \
	grep -q '"event.action":"policy"' "$STATE/audit.d/$FB_LAST_ID".*Z.log
check "daemon stop removes its socket" [ ! -e "$SOCK" ]
check "the daemon reported no sanitizer error" \
	bash -c "! grep -E 'Sanitizer|runtime error' '$FB_TMP/vmhost.log'"

# FIREBREAK_GUEST_DIR relative to where the daemon was started, not to
# the / it works from.
FIREBREAK_GUEST_DIR=guest-rel fb_daemon_start ||
	not_ok "a daemon with a relative FIREBREAK_GUEST_DIR starts"
err=$(fbd create --backend qemu -- true 2>&1)
echo "# $err"
check "FIREBREAK_GUEST_DIR, a relative path: under the daemon's first directory" \
	grep -qF "guest image $DAEMON_CWD/guest-rel/" <<<"$err"
fb_daemon_kill TERM

# A state directory another user can write into: the daemon writes the
# policy there before any sandbox is built, so it refuses to start.
mkdir -m 777 "$FB_TMP/theirs"
err=$(in_host timeout 10 "$VMHOST" --socket "$FB_TMP/theirs.sock" \
	--state-dir "$FB_TMP/theirs" 2>&1)
rc=$?
echo "# $err"
check "state directory others can write: the daemon refuses it" \
	holds '[ "$rc" = 1 ] && [ "$err" = "firebreak-vmhost: state directory: $FB_TMP/theirs is writable by others (mode 777)" ]'
check "state directory others can write: no socket" [ ! -e "$FB_TMP/theirs.sock" ]

# A proxy that dies as it starts: the create fails saying so, leaves
# nothing, and the daemon's log has no false alarm about what it removed
# (the sandbox's directory is the daemon's, emptied after the network).
mkdir "$FB_TMP/bin"
cp "$FIREBREAK" "$VMHOST" "$FB_TMP/bin/"
printf '#!/bin/sh\necho proxy: cannot start >&2\nexit 3\n' >"$FB_TMP/bin/firebreak-proxy"
chmod 755 "$FB_TMP/bin/firebreak-proxy"
VMHOST=$FB_TMP/bin/firebreak-vmhost
: >"$FB_TMP/vmhost.log"
fb_daemon_start || not_ok "a daemon with a failing proxy starts"
fb_next_id
code=$(api -o "$FB_TMP/e" -w '%{http_code}' -X POST \
	-d "{\"id\":\"$FB_LAST_ID\",\"command\":[\"true\"]}" http://vmhost/sandboxes)
sed 's/^/# /' "$FB_TMP/e"
check "a proxy that dies at start: 500 saying so" \
	bash -c "[ $code = 500 ] && grep -q 'firebreak-proxy exited with status 3 before it was ready' $FB_TMP/e"
check "a proxy that dies at start: nothing left" \
	[ -z "$(fb_leftovers "$FB_LAST_ID")" ]
fb_daemon_kill TERM
grep firebreak: "$FB_TMP/vmhost.log" | sed 's/^/# /'
check "a proxy that dies at start: no false alarm in the daemon's log" \
	bash -c "! grep -E 'remove .*: Directory not empty' '$FB_TMP/vmhost.log'"
