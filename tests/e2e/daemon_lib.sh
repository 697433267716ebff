# daemon_lib.sh — firebreak-vmhost in the test's $HOST namespace; source it
# after nothing else (it sources lib.sh).
#
#   fb_daemon_start          start it (sets FB_DAEMON), wait for its socket
#   fb_daemon_kill SIG       signal it and wait until it is gone
#   api ARGS...              curl on its socket (URLs: http://vmhost/...)
#   fbd CMD ARGS...          `firebreak CMD --socket ...`
#   state_of ID EXPR         a value of ID's state file (python, s = the dict)
#   guest_probe ID PROBE...  probe.py in ID's guest network namespace
#   fb_daemon_one CMD...     the world, a daemon and one sandbox running
#                            CMD (its id in FB_LAST_ID), or the test ends

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VMHOST=$(dirname "$FIREBREAK")/firebreak-vmhost
SOCK=$FB_TMP/vmhost.sock
STATE=$FB_TMP/state

# Started from a directory under /tmp, as an operator's shell may be: the
# guests must not inherit it (their /tmp is their own).
DAEMON_CWD=$(mktemp -d /tmp/fbt-$$-cwd.XXXXXX)
FB_RM+=("$DAEMON_CWD")

fb_daemon_start() {
	# not through in_host: $! must be the daemon (the subshell execs)
	(cd "$DAEMON_CWD" && exec ip netns exec "$HOST" "$VMHOST" \
		--socket "$SOCK" --state-dir "$STATE" --resolver 192.0.2.2 \
		"${PUBLICS[@]}" 2>>"$FB_TMP/vmhost.log") &
	FB_DAEMON=$!
	FB_PIDS+=("$FB_DAEMON")
	for _ in $(seq 250); do
		api -o /dev/null http://vmhost/sandboxes && return 0
		sleep 0.02
	done
	echo "# firebreak-vmhost did not start:" >&2
	sed 's/^/# /' "$FB_TMP/vmhost.log" >&2
	return 1
}

fb_daemon_kill() {
	kill "-$1" "$FB_DAEMON"
	wait "$FB_DAEMON" 2>/dev/null
}

api() { curl -s --max-time 10 --unix-socket "$SOCK" "$@"; }
fbd() { "$FIREBREAK" "$1" --socket "$SOCK" "${@:2}"; }

state_of() {
	"$PY" -c 'import json, sys
s = json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$STATE/$1/state.json" "$2" 2>/dev/null
}

guest_probe() {
	local guest
	guest=$(state_of "$1" 's["pids"]["guest"]') || return 1
	shift
	nsenter --net="/proc/$guest/ns/net" "$PY" "$FB_TMP/probe.py" "$@"
}

fb_daemon_one() {
	fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }
	fb_daemon_start || { not_ok "daemon starts"; exit 1; }
	fb_next_id
	fbd create --id "$FB_LAST_ID" -- "$@" >/dev/null ||
		{ not_ok "a sandbox starts"; exit 1; }
}
