#!/bin/bash
# A second firebreak-vmhost beside a running one: on the same state
# directory it would take the first one's live sandboxes for remains and
# remove them, on the same socket it would take the first one's clients.
# It refuses to start, and the first daemon's sandbox runs on.
. "$(dirname "$0")/daemon_lib.sh"

fb_daemon_one sleep 303
id=$FB_LAST_ID
guest=$(state_of "$id" 's["pids"]["guest"]')
check "the first daemon's sandbox runs" [ -n "$guest" ] && [ "$guest" -gt 0 ]

# second NAME SOCKET STATE PATTERN: a daemon on SOCKET and STATE fails with
# one line matching PATTERN, and the first daemon's sandbox is untouched.
second() {
	local name=$1 out rc
	out=$(in_host timeout 10 "$VMHOST" --socket "$2" --state-dir "$3" \
		--resolver 192.0.2.2 2>&1)
	rc=$?
	echo "# $out"
	check "$name: refuses to start" [ "$rc" = 1 ]
	check "$name: says why" \
		[ "$(wc -l <<<"$out")" = 1 -a -n "$(grep -E "$4" <<<"$out")" ]
	check "$name: the first daemon's sandbox still runs" \
		[ "$(state_of "$id" 's["status"]')" = running -a -e "/proc/$guest" ]
	check "$name: its namespace and table are there" \
		bash -c "[ -e /run/netns/fb-$id ] &&
			ip netns exec $HOST nft list tables | grep -qw firebreak-$id"
	check "$name: the first daemon still answers on its socket" \
		grep -q "\"id\":\"$id\",.*\"status\":\"running\"" \
			<<<"$(api "http://vmhost/sandboxes/$id")"
}

second "same state directory" "$FB_TMP/other.sock" "$STATE" \
	"^firebreak-vmhost: --state-dir $STATE: another firebreak-vmhost uses it"
check "same state directory: the second daemon left no socket" \
	[ ! -e "$FB_TMP/other.sock" ]
mkdir -m 755 "$FB_TMP/other"
second "same socket" "$SOCK" "$FB_TMP/other" \
	"^firebreak-vmhost: --socket $SOCK: another firebreak-vmhost listens there$"

fb_daemon_kill TERM
check "first daemon stopped: its sandbox is removed" \
	[ -z "$(fb_leftovers "$id")" ]
check "first daemon stopped: its lock is gone with it" \
	test -z "$(ls "$STATE" | grep -v '^slots$')" -a ! -e "$SOCK"
fb_daemon_start || not_ok "a daemon starts once the first is gone"
check "a daemon starts on the state directory once the first is gone" \
	[ "$(api http://vmhost/sandboxes)" = "[]" ]
fb_daemon_kill KILL
fb_daemon_start || not_ok "a daemon starts after one was killed"
check "a daemon starts after one was killed (the kernel let go of its lock)" \
	[ "$(api http://vmhost/sandboxes)" = "[]" ]
fb_daemon_kill TERM
check "the daemons reported no sanitizer error" \
	bash -c "! grep -E 'Sanitizer|runtime error' '$FB_TMP/vmhost.log'"
