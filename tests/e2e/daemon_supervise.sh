#!/bin/bash
# firebreak-vmhost supervising: a proxy killed with SIGKILL is running again
# within a second with the policy in force, and while it is down the
# sandbox's connections are refused, not let through; a guest that exits
# is recorded as stopped with its status; after a kill -9 of the daemon
# a new one removes everything the old one left.
. "$(dirname "$0")/daemon_lib.sh"

fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }
fb_origins tcp,203.0.113.10,80,hello || { not_ok "origins"; exit 1; }
fb_daemon_start || { not_ok "daemon starts"; exit 1; }

# The bound on a restart: 1 s; a sanitizer build's proxy starts several
# times slower, so there the bound is 3 s.
case $FB_BUILD in
*asan*) BOUND=3000 ;;
*) BOUND=1000 ;;
esac
in_time() { [ -n "$1" ] && [ "$1" -lt "$BOUND" ]; }

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

# Wait until ID's state file names a live proxy other than $2 (written once
# it answers); the ms since $3.
wait_new_proxy() {
	local s re='"proxy":([0-9]+)'
	for _ in $(seq 2000); do
		s=$(<"$STATE/$1/state.json")
		if [[ $s =~ $re ]] && [ "${BASH_REMATCH[1]}" != 0 ] &&
		   [ "${BASH_REMATCH[1]}" != "$2" ]; then
			echo $(($(now_ms) - $3))
			return 0
		fi
		sleep 0.005
	done
	return 1
}

fb_next_id
a=$FB_LAST_ID
printf 'allow: [example.com]\n' >"$FB_TMP/p.yaml"
fbd create --id "$a" --policy "$FB_TMP/p.yaml" -- sleep 302 >/dev/null
api -X PATCH --data-binary '{"allow":{"example.org":[]}}' \
	"http://vmhost/sandboxes/$a/policy" >/dev/null
before=$(api "http://vmhost/sandboxes/$a/policy")

# 1. Killed: back within a second.
old=$(state_of "$a" 's["pids"]["proxy"]')
t0=$(now_ms)
kill -KILL "$old"
ms=$(wait_new_proxy "$a" "$old" "$t0")
check "proxy killed: a new one runs (${ms:-never} ms, < $BOUND)" \
	in_time "$ms"
check "the restarted proxy enforces the policy in force (PUT and PATCH)" \
	[ "$(api "http://vmhost/sandboxes/$a/policy")" = "$before" ]
check "the restart is counted" \
	grep -q '"proxy_restarts":1' <<<"$(api "http://vmhost/sandboxes/$a")"
# Generations go on from the last one handed out: a tag read before the
# restart matches nothing after it.
etag=$(api -D - -o /dev/null "http://vmhost/sandboxes/$a/policy" | tr -d '\r' |
	sed -n 's/^ETag: //Ip')
check "the restarted proxy's generation follows the last one seen ($etag)" \
	[ "$etag" = '"3"' ]
st=$(api -o /dev/null -w '%{http_code}' -X PUT -H 'If-Match: "1"' \
	--data-binary 'allow: [example.net]' "http://vmhost/sandboxes/$a/policy")
check "a PUT under the tag from before the restart is refused ($st)" [ "$st" = 412 ]
check "... and the policy stays as it was" \
	[ "$(api "http://vmhost/sandboxes/$a/policy")" = "$before" ]
# A change the daemon cannot save (a full disk, say) is not made: a proxy
# restarted later would bring back the policy before it.
mkdir "$STATE/$a/policy.current.tmp"
out=$(api -w ' %{http_code}' -X PUT --data-binary 'allow: [example.net]' \
	"http://vmhost/sandboxes/$a/policy")
check "a PUT the daemon cannot save: 500, saying so ($out)" \
	holds '[[ $out == *"cannot be saved, so it was not changed"* && $out == *" 500" ]]'
check "... and the policy in force is the one before" \
	[ "$(api "http://vmhost/sandboxes/$a/policy")" = "$before" ]
rmdir "$STATE/$a/policy.current.tmp"

# 2. While it is down (the daemon held still so the window stays open),
# connections are refused; afterwards they reach the proxy again.
r=$(guest_probe "$a" connect,203.0.113.10,80)
check "proxy up: the redirect reaches the proxy" grep -q ' connected ' <<<"$r"
kill -STOP "$FB_DAEMON"
old=$(state_of "$a" 's["pids"]["proxy"]')
fb_kill_gone "$old"
r=$(guest_probe "$a" connect,203.0.113.10,80 tcp,203.0.113.10,80)
sed 's/^/# /' <<<"$r"
check "proxy down: connections refused" grep -q '^connect,.* refused ' <<<"$r"
check "proxy down: the origin is never reached" \
	bash -c "! grep -q ' open ' <<<'$r'"
t0=$(now_ms)
kill -CONT "$FB_DAEMON"
ms=$(wait_new_proxy "$a" "$old" "$t0")
check "daemon resumed: the proxy is back (${ms:-never} ms, < $BOUND)" \
	in_time "$ms"
r=$(guest_probe "$a" connect,203.0.113.10,80)
check "proxy back: the redirect reaches it again" grep -q ' connected ' <<<"$r"

# 3. A guest that exits: stopped, with its status.
fb_next_id
b=$FB_LAST_ID
fbd create --id "$b" -- sh -c 'sleep 0.2; exit 7' >/dev/null
for _ in $(seq 100); do
	[ "$(state_of "$b" 's["status"]')" = stopped ] && break
	sleep 0.02
done
check "guest exit: the sandbox is stopped with status 7" \
	[ "$(state_of "$b" '(s["status"], s["exit_status"], s["pids"]["guest"])')" \
		= "('stopped', 7, 0)" ]
check "guest exit: ls says so" \
	grep -qE "^$b +process +stopped .* 7 +sh -c" <<<"$(fbd ls)"

# 4. Two proxies that cannot start (the secret file their policy names
# is gone): retried in one round on one timer whose delay doubles, the
# daemon answering meanwhile; each back once the file is.
printf 'k1' >"$FB_TMP/secret"
printf 'allow:\n  api.example.com:\n    - transform:\n        - headers: { x-api-key: "${file:%s}" }\n' \
	"$FB_TMP/secret" >"$FB_TMP/s.yaml"
fb_next_id
c=$FB_LAST_ID
fbd create --id "$c" --policy "$FB_TMP/s.yaml" -- sleep 303 >/dev/null
fb_next_id
e=$FB_LAST_ID
fbd create --id "$e" --policy "$FB_TMP/s.yaml" -- sleep 303 >/dev/null
pc=$(state_of "$c" 's["pids"]["proxy"]')
pe=$(state_of "$e" 's["pids"]["proxy"]')
mv "$FB_TMP/secret" "$FB_TMP/secret.away"
kill -KILL "$pc" "$pe"
sleep 3
n=$(grep -c "proxy restart: .*retrying" "$FB_TMP/vmhost.log")
check "two proxies that cannot start: retried with a growing delay ($n tries in 3 s)" \
	holds '[ "$n" -ge 4 ] && [ "$n" -le 16 ]'
t0=$(now_ms)
api http://vmhost/sandboxes >/dev/null
check "... the daemon answering meanwhile ($(($(now_ms) - t0)) ms)" \
	[ $(($(now_ms) - t0)) -lt 1000 ]
mv "$FB_TMP/secret.away" "$FB_TMP/secret"
t0=$(now_ms)
check "... both back once the file is" \
	holds 'wait_new_proxy "$c" "$pc" "$t0" >/dev/null && wait_new_proxy "$e" "$pe" "$t0" >/dev/null'
fbd rm "$c" >/dev/null
fbd rm "$e" >/dev/null

# SIGHUP asks a daemon to reload, or says its terminal closed: neither
# ends the sandboxes.
kill -HUP "$FB_DAEMON"
fb_wait_line 'SIGHUP: nothing to reload' "$FB_TMP/vmhost.log"
check "SIGHUP: the daemon runs on, its sandboxes with it" \
	holds 'kill -0 "$FB_DAEMON" && [ "$(state_of "$a" "s[\"status\"]")" = running ] &&
		grep -q "\"id\":\"$a\",.*\"status\":\"running\"" <<<"$(api "http://vmhost/sandboxes/$a")"'

# 4. kill -9 of the daemon: its sandboxes die with it; a new daemon
# removes what is left, but not what another launcher has taken since.
fb_next_id
x=$FB_LAST_ID
fbd create --id "$x" -- sleep 306 >/dev/null
fb_daemon_kill KILL
check "after kill -9 the state files remain for the next daemon" \
	test -e "$STATE/$a/state.json" -a -e "$STATE/$b/state.json"
# what a firecracker relay killed with its launcher leaves: a jail tree
mkdir -p "$STATE/$a/jail/firecracker/$a/root/dev/net" &&
	echo k >"$STATE/$a/jail/firecracker/$a/root/vmlinux" &&
	ln -s / "$STATE/$a/jail/firecracker/$a/root/escape"
# A reboot since (its launcher.lock names another boot) freed $x's
# namespace and table, and a firebreak run on another state directory
# took its name: that live sandbox is not the remains to remove.
sed -i 's/ [0-9a-f-]*$/ 00000000-0000-4000-8000-000000000000/' "$STATE/$x/launcher.lock"
in_host ip netns del "fb-$x"
in_host nft list tables | grep "firebreak-$x\$" | sed 's/^table //' |
	while read -r fam name; do in_host nft delete table "$fam" "$name"; done
# ... and with it the uplink link, which goes with the namespace once the
# killed daemon's processes in it have exited (a moment after the kill)
for _ in $(seq 200); do
	in_host ip link show "fb-$x" >/dev/null 2>&1 || break
	sleep 0.05
done
# (in the host's mount namespace, so that its namespace is one the next
# daemon can see, as a launcher not started under ip netns exec makes it)
nsenter --net="/run/netns/$HOST" timeout -k 5 60 "$FIREBREAK" run \
	--state-dir "$FB_TMP/other" --name "$x" -- sleep 40 >/dev/null 2>&1 &
other=$!
FB_PIDS+=($other)
for _ in $(seq 200); do
	[ -e "/run/netns/fb-$x" ] && pgrep -fx 'sleep 40' >/dev/null && break
	sleep 0.05
done
ns_before=$(stat -c %i "/run/netns/fb-$x" 2>/dev/null)
fb_daemon_start || { not_ok "daemon restarts"; exit 1; }
check "restarted daemon: another launcher's live sandbox of a left name is untouched" \
	holds '[ -n "$ns_before" ] && [ "$(stat -c %i "/run/netns/fb-$x" 2>/dev/null)" = "$ns_before" ] &&
		in_host nft list tables | grep -q "firebreak-$x\$"'
kill "$other"
wait "$other" 2>/dev/null
check "restarted daemon: no sandbox of the old one listed" \
	[ "$(api http://vmhost/sandboxes)" = "[]" ]
check "restarted daemon: nothing of the old sandboxes left" \
	[ -z "$(fb_leftovers "$a" "$b")" ]
check "restarted daemon: the left jail tree is gone, its symlink not followed" \
	[ ! -e "$STATE/$a" -a -d /usr/bin ]
check "restarted daemon: no old proxy or guest runs" \
	bash -c "! pgrep -f -- '[f]irebreak-proxy .*--sandbox-id t$$-' &&
		! pgrep -fx 'sleep 302'"
grep -E 'restarted|removed sandbox' "$FB_TMP/vmhost.log" | sed 's/^/# /'
fb_daemon_kill TERM
check "daemon stopped: state directory empty but for the audit logs kept, socket gone" \
	test -z "$(ls "$STATE" | grep -v '^slots$\|^audit.d$')" -a ! -e "$SOCK"
check "the sandboxes a crashed daemon left have their audit logs kept" \
	holds 'ls "$STATE/audit.d/$a".*Z.log "$STATE/audit.d/$b".*Z.log >/dev/null'
check "the daemon reported no sanitizer error" \
	bash -c "! grep -E 'Sanitizer|runtime error' '$FB_TMP/vmhost.log'"
check "daemon stopped: no namespace or table of ours in the host" \
	bash -c "! ip netns list 2>/dev/null | grep -q 'fb-t$$-' &&
		! ip netns exec $HOST nft list tables | grep -q firebreak"
