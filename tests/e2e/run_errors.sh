#!/bin/bash
# Bad input and a hostile environment: each gives one clear error line,
# a failing status, and leaves nothing behind.
. "$(dirname "$0")/lib.sh"

fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }

# refused NAME PATTERN ARGS...: firebreak run fails with exactly one line
# on stderr matching PATTERN, and the host namespace shows nothing of it.
refused() {
	local name=$1 pattern=$2 err rc; shift 2
	fb_next_id
	err=$("$@" 2>&1 >/dev/null)
	rc=$?
	echo "# $err"
	check "$name: fails" [ "$rc" -ne 0 ]
	check "$name: one clear line" \
		[ "$(wc -l <<<"$err")" = 1 -a -n "$(grep -E "$pattern" <<<"$err")" ]
	check "$name: nothing left behind" \
		[ -z "$(fb_leftovers "$FB_LAST_ID")" ]
}

run_args() { # the usual run, as the command line tests hand it on
	echo timeout -k 5 20 "$FIREBREAK" run --state-dir "$FB_TMP/state" \
		--name "$FB_ID_PREFIX-${#FB_IDS[@]}"
}

printf 'subnets:\n  allow: ["10.0.0.0/33"]\n' >"$FB_TMP/bad.yaml"
refused "policy that fails to load" \
	"^firebreak run: policy: $FB_TMP/bad.yaml:2:[0-9]+: .*prefix length" \
	in_host $(run_args) --policy "$FB_TMP/bad.yaml" -- true
refused "policy file missing" \
	"^firebreak run: policy: $FB_TMP/none.yaml: " \
	in_host $(run_args) --policy "$FB_TMP/none.yaml" -- true
# The command's own output would share the audit stream, forged lines
# and all.
refused "the audit log to standard output" \
	"^firebreak run: --audit-log -: the command's output shares the stream" \
	in_host $(run_args) --audit-log - -- true

# A namespace of that name exists already (a live sandbox, or not ours).
in_host ip netns add "fb-$FB_ID_PREFIX-x"
FB_IDS+=("$FB_ID_PREFIX-x")
refused "namespace name collision" \
	"^firebreak run: namespace fb-$FB_ID_PREFIX-x exists$" \
	in_host timeout 20 "$FIREBREAK" run --state-dir "$FB_TMP/state" \
		--name "$FB_ID_PREFIX-x" -- true
check "namespace name collision: the other namespace is untouched" \
	[ -e "/run/netns/fb-$FB_ID_PREFIX-x" ]
ip netns del "fb-$FB_ID_PREFIX-x"

# A state directory another user can write into: one a process guest
# made under /tmp, say, with a link where resolv.conf will be written.
mkdir -m 777 "$FB_TMP/theirs"
echo precious >"$FB_TMP/victim"
setpriv --reuid 65534 --regid 65534 --clear-groups sh -c \
	'mkdir "$0/$1" && ln -s "$2" "$0/$1/resolv.conf"' \
	"$FB_TMP/theirs" "$FB_ID_PREFIX-${#FB_IDS[@]}" "$FB_TMP/victim"
refused "state directory others can write" \
	"^firebreak run: state directory: $FB_TMP/theirs is writable by others \(mode 777\)$" \
	in_host timeout 20 "$FIREBREAK" run --state-dir "$FB_TMP/theirs" \
		--name "$FB_ID_PREFIX-${#FB_IDS[@]}" -- true
check "state directory others can write: nothing written through their link" \
	[ "$(cat "$FB_TMP/victim")" = precious ]
check "... nor anything made in it" [ ! -e "$FB_TMP/theirs/slots" ]
setpriv --reuid 65534 --regid 65534 --clear-groups mkdir -m 755 "$FB_TMP/theirs/own"
refused "state directory of another user" \
	"^firebreak run: state directory: $FB_TMP/theirs/own is owned by uid 65534, not by root$" \
	in_host timeout 20 "$FIREBREAK" run --state-dir "$FB_TMP/theirs/own" \
		--name "$FB_ID_PREFIX-${#FB_IDS[@]}" -- true
check "state directory of another user: nothing made in it" \
	[ ! -e "$FB_TMP/theirs/own/slots" ]

refused "not root" "^firebreak run: needs root \(CAP_NET_ADMIN and CAP_SYS_ADMIN\)$" \
	in_host setpriv --reuid 65534 --regid 65534 --clear-groups $(run_args) -- true
refused "root without CAP_NET_ADMIN" \
	"^firebreak run: needs root \(CAP_NET_ADMIN and CAP_SYS_ADMIN\)$" \
	in_host setpriv --bounding-set -net_admin --inh-caps -net_admin \
		$(run_args) -- true

helper=$(dirname "$FIREBREAK")/../tests/helper_nonftables
if [ -x "$helper" ]; then
	refused "kernel without nf_tables" \
		"^firebreak run: the kernel has no nf_tables support: .*Protocol not supported$" \
		in_host "$helper" $(run_args) -- true
else
	skip "kernel without nf_tables" "$helper not built"
fi

refused "--name with a character an interface name cannot carry" \
	"^firebreak run: --name 'A_b': use 1 to 12 of a-z, 0-9 and '-', other than \"slots\"$" \
	in_host timeout 20 "$FIREBREAK" run --name A_b -- true
# <state dir>/slots is the uplink slots' directory, not a sandbox's
refused "--name slots, the slot pool's directory" \
	"^firebreak run: --name 'slots': use 1 to 12 of a-z, 0-9 and '-', other than \"slots\"$" \
	in_host timeout 20 "$FIREBREAK" run --state-dir "$FB_TMP/state" \
		--name slots -- true
check "--name slots: nothing of it among the slot locks" \
	[ ! -e "$FB_TMP/state/slots/ca.key" -a ! -e /run/netns/fb-slots ]
refused "unknown --user" "^firebreak run: --user 'no-such-user-x': no such user$" \
	in_host $(run_args) --user no-such-user-x -- true

# A launcher killed outright (SIGKILL, the OOM killer) cannot clean up:
# the next launcher on the state directory removes what it left, and its
# name is free again.
killed_run() {
	fb_next_id
	fb_run -- sleep 60 >/dev/null 2>&1 &
	for _ in $(seq 100); do
		[ -e "$FB_TMP/state/$FB_LAST_ID/control.sock" ] && break
		sleep 0.05
	done
	fb_kill_gone "$(fb_launcher_pid "$FB_LAST_ID")"
	sleep 0.2
}
killed_run
a=$FB_LAST_ID
check "a launcher killed: its remains are there" \
	[ -n "$(fb_leftovers "$a")" ]
FB_LAST_ID=$a
err=$(fb_run -- true 2>&1)
rc=$?
echo "# $err"
check "a launcher killed: its name runs again" \
	holds '[ "$rc" = 0 ] && grep -qx "firebreak: removed sandbox $a, left by a launcher that was killed" <<<"$err"'
check "a launcher killed: nothing of it left after the next run" \
	[ -z "$(fb_leftovers "$a")" ]
killed_run
b=$FB_LAST_ID
fb_next_id
fb_run -- true >/dev/null 2>&1
check "a launcher killed: a run of another name removes its remains" \
	[ -z "$(fb_leftovers "$b" "$FB_LAST_ID")" ]
