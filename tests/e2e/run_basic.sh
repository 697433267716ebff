#!/bin/bash
# firebreak run, the process backend: the command's namespaces, user and
# resolver, its exit status, and a clean slate after every way it can end.
. "$(dirname "$0")/lib.sh"

fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }

# One run reports everything about its own process.
fb_next_id
out=$(fb_run -- sh -c 'echo "uid $(id -u) gid $(id -g) groups $(id -G)"
	echo "pid $$"
	echo "maxpid $(ls /proc | grep "^[0-9]" | sort -n | tail -1)"
	cat /etc/resolv.conf
	ip -br addr show eth0
	ip route show default; ip -6 route show default
	exit 7' 2>&1)
rc=$?
id1=$FB_LAST_ID
check "exit status is the command's" [ "$rc" = 7 ]
check "runs as nobody with no extra groups" \
	grep -qx 'uid 65534 gid 65534 groups 65534' <<<"$out"
check "own PID namespace (the command is PID 2 under init)" \
	grep -qx 'pid 2' <<<"$out"
check "own /proc shows only the sandbox's processes" \
	grep -qE '^maxpid ([2-9]|1[0-9])$' <<<"$out"
check "resolv.conf names the gateway" \
	grep -qx 'nameserver 10.200.0.1' <<<"$out"
check "guest has 10.200.0.2 and fd00:fb::2 on eth0" \
	grep -qE '^eth0(@[a-z0-9]+)? +UP +10\.200\.0\.2/30 fd00:fb::2/64' <<<"$out"
check "default routes via the gateway" \
	grep -q 'default via 10.200.0.1' <<<"$out"
check "IPv6 default route via the gateway" \
	grep -q 'default via fd00:fb::1' <<<"$out"
check "host's resolv.conf untouched" \
	bash -c '! grep -q "nameserver 10.200.0.1" /etc/resolv.conf'
check "nothing left after a normal exit" [ -z "$(fb_leftovers "$id1")" ]

# A descriptor the caller of firebreak run left open is not passed on to
# the proxy, which lives as long as the sandbox (a pipe held open there
# keeps its reader waiting for an end of file).
fb_next_id
exec 7>"$FB_TMP/stray"
fb_run -- sleep 2 >/dev/null 2>&1 &
run=$!
exec 7>&-
pp=
for _ in $(seq 40); do
	pp=$(pgrep -f -- "firebreak-proxy .*--sandbox-id $FB_LAST_ID( |\$)") && break
	sleep 0.05
done
stray=$(ls -l "/proc/${pp:-0}/fd" 2>/dev/null | grep -c "$FB_TMP/stray")
check "the proxy ($pp) holds no descriptor its launcher's caller left open" \
	holds '[ -n "$pp" ] && [ "$stray" = 0 ]'
wait $run

# The process backend's root is the host's: with every capability it
# could unmount the empty /run, enter the sandbox's namespace and delete
# its policy; with none it still owns the proxy's control socket (a new
# policy), the CA key and /etc/passwd.
fb_next_id
out=$(fb_run --user 0 -- sh -c 'id -u' 2>&1)
rc=$?
echo "# $out"
check "--user 0 refused for the process backend" \
	holds '[ "$rc" = 1 ] && [ "$out" = "firebreak run: user root: the process backend'"'"'s root is the host'"'"'s; run the command as another user" ]'
check "--user 0 refused: nothing left behind" \
	[ -z "$(fb_leftovers "$FB_LAST_ID")" ]

# No capability survives the command's exec, not even in the bounding
# set a setuid program (no_new_privs aside) would draw from.
fb_next_id
out=$(fb_run -- grep ^Cap /proc/self/status 2>&1)
echo "$out" | sed 's/^/# /'
check "the command has no capabilities, bounding set included" \
	holds '[ "$(grep -c "^Cap\(Prm\|Eff\|Bnd\|Amb\):.*0000000000000000$" <<<"$out")" = 4 ]'

# The command shares the launcher's terminal for its output, but it is
# not the command's controlling terminal: TIOCSTI, which would push
# keystrokes into the root shell that ran firebreak, to run once it
# exits, is refused.  Run on a pty of the test's own; and no signal comes
# to the command ignored.
fb_next_id
out=$("$PY" -c '
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
data = b""
while True:
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    data += d
os.waitpid(pid, 0)
sys.stdout.write(data.decode(errors="replace").replace("\r", ""))
' ip netns exec "$HOST" timeout -k 5 20 "$FIREBREAK" run --state-dir "$FB_TMP/state" \
	--name "$FB_LAST_ID" -- "$PY" -c '
import fcntl, termios
try:
    fcntl.ioctl(1, termios.TIOCSTI, b"#")
    print("tiocsti: injected")
except OSError as e:
    print("tiocsti: refused", e.errno)
')
echo "$out" | sed 's/^/# /'
check "the launcher's terminal is not the command's: TIOCSTI refused" \
	grep -q '^tiocsti: refused' <<<"$out"
fb_next_id
out=$(trap '' PIPE; fb_run -- grep ^SigIgn /proc/self/status 2>/dev/null)
# (the standard signals: glibc keeps 32 and 33 to itself, and an
# environment that ignores them passes that on)
check "a signal the launcher ignores is not ignored by the command ($out)" \
	holds '[ -n "$out" ] && [ $((0x${out##*[[:space:]]} & 0x7fffffff)) = 0 ]'

# An mqueue file system mounted on the host (systemd's /dev/mqueue, or
# anywhere) shows the host's POSIX queues whatever the IPC namespace: the
# command gets one of its own there, without the host's queue.
# (Under /dev, which the command sees as the host's wherever the checkout
# is: under /tmp, the test's own directory is not in the sandbox.)
mq=/dev/fbmq-$$
mkdir -m 755 "$mq" && FB_RM+=("$mq")
mount -t mqueue none "$mq" && FB_MOUNTS+=("$mq")
"$PY" -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o666))' \
	"$mq/fbhostq"
fb_next_id
out=$(fb_run -- ls -A "$mq" 2>/dev/null)
check "a host's mqueue mount shows the command none of the host's queues ($(ls "$mq" | tr '\n' ' ')on the host, '$out' in the sandbox)" \
	holds '[ -e "$mq/fbhostq" ] && [ -z "$out" ]'
rm -f "$mq/fbhostq" # a queue outlives its mount: mq_unlink
umount "$mq"
rmdir "$mq"

# A command killed by a signal: 128 + the signal, and a clean slate.
fb_next_id
fb_run -- sh -c 'kill -9 $$' >/dev/null 2>&1
rc=$?
check "killed command: status 137" [ "$rc" = 137 ]
check "nothing left after the command was killed" \
	[ -z "$(fb_leftovers "$FB_LAST_ID")" ]

# SIGTERM to firebreak reaches the command, which ignores nothing.
fb_next_id
fb_run -- sleep 30 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do
	[ -e "/run/netns/fb-$FB_LAST_ID" ] && break
	sleep 0.02
done
sleep 0.2
t0=$(date +%s%N)
kill -TERM "$(fb_launcher_pid "$FB_LAST_ID")"
wait "$pid"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "SIGTERM: firebreak exits 143 (the command's death by SIGTERM)" \
	[ "$rc" = 143 ]
check "SIGTERM: done promptly (${ms} ms, < 3 s)" [ "$ms" -lt 3000 ]
check "nothing left after SIGTERM" [ -z "$(fb_leftovers "$FB_LAST_ID")" ]

# The command killed from outside the sandbox.
fb_next_id
fb_run -- sleep 31.$$ >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do
	victim=$(pgrep -u 65534 -f "^sleep 31.$$") && break
	sleep 0.02
done
kill -KILL "$victim"
wait "$pid"
rc=$?
check "command killed from outside: status 137" [ "$rc" = 137 ]
check "nothing left after the command was killed from outside" \
	[ -z "$(fb_leftovers "$FB_LAST_ID")" ]

fb_next_id
fb_run -- /nonexistent/command >/dev/null 2>&1
check "a command that does not exist: 127" [ $? = 127 ]
check "nothing left after a command that does not exist" \
	[ -z "$(fb_leftovers "$FB_LAST_ID")" ]
