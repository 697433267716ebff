# lib.sh — shared helpers for the end-to-end tests; source it.
#
# The world a test builds (every name carries $$, so tests run in
# parallel without meeting):
#
#   $HOST (netns fbt-$$-host)            plays the machine firebreak runs on:
#     inet0  192.0.2.1/24                `firebreak run` is started in here
#            2001:db8:1::1/64            (fb_run), so its uplink, masquerade
#     default routes via $INET            and forwarding live here
#   $INET (netns fbt-$$-inet)            plays the internet:
#     up0    192.0.2.2/24, 2001:db8:1::2/64
#     origins on lo: 198.51.100.0/24, 203.0.113.0/24, 2001:db8:100::/64
#
# No route leads anywhere else, so no packet can reach a real network.
# The origin ranges are documentation ranges, hence non-public: tests
# declare them public with $PUBLICS, the way an operator would.
#
#   fb_world                  build both namespaces
#   fb_origins SPEC...        serve in $INET: tcp,ADDR,PORT,MODE (MODE hello:
#                             greet and close; echo: echo until closed) or
#                             udp,ADDR,PORT (echo)
#   fb_outer_origins SPEC...  the same, in $HOST
#   fb_run ARGS...            firebreak run in $HOST, with a state dir of the
#                             test's own and the sandbox id $FB_ID_PREFIX-N
#   fb_launcher_pid ID        the pid of the firebreak run for sandbox ID
#   in_host CMD... / in_inet CMD...
#   ok NAME / not_ok NAME WHY / check NAME CMD... / skip NAME WHY
#   fb_leftovers ID...        what a run left behind in $HOST (empty: nothing)
#   fb_kill_gone PID          SIGKILL a process not this shell's child and
#                             wait until it no longer runs
#   fb_wait_line PATTERN FILE until FILE has a line grep PATTERN matches
#                             (3 s); 1 if it never does
#
# Everything created is removed on exit, also when the test fails.

set -u

FB_BUILD=${FB_BUILD:-build/plain}
FB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FIREBREAK=$FB_ROOT/$FB_BUILD/bin/firebreak
HOST=fbt-$$-host
INET=fbt-$$-inet
# Not under /tmp: a process-backend guest gets its own /run, /tmp,
# /var/tmp and /dev/shm, and would not find its scripts there.  The build
# directory is searchable by nobody, as the guest runs (tests/run.sh
# opens the checkout's parents), unless the checkout is in one of those.
case "$FB_ROOT/" in
/tmp/* | /var/tmp/* | /dev/shm/* | /run/*)
	FB_TMP_BASE=/var/lib/firebreak-e2e ;;
*)	FB_TMP_BASE=$FB_ROOT/$FB_BUILD/e2e ;;
esac
mkdir -p -m 755 "$FB_TMP_BASE"
FB_TMP=$(mktemp -d "$FB_TMP_BASE/fbt-$$.XXXXXX")
chmod 755 "$FB_TMP"           # the guest runs as nobody and reads probe.py
FB_ID_PREFIX=t$$
PY=/usr/bin/python3
PUBLICS=(--public 198.51.100.0/24 --public 203.0.113.0/24
	 --public 2001:db8:100::/64)
FB_PIDS=()
FB_IDS=()
FB_RM=()	# further files and directories the test made, removed at exit

in_host() { ip netns exec "$HOST" "$@"; }
in_inet() { ip netns exec "$INET" "$@"; }

ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1${2:+: $2}"; }
skip() { echo "skip - $1${2:+: $2}"; }
check() {
	local name=$1; shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# check NAME holds 'COND': for a compound condition.  In
# `check NAME [ a ] && [ b ]` the shell gives check only `[ a ]`; the
# single-quoted COND reaches it whole and is evaluated there.
holds() {
	eval "$1"
}

fb_wait_line() {
	local _
	for _ in $(seq 150); do
		grep -q "$1" "$2" && return 0
		sleep 0.02
	done
	return 1
}

# `wait` only takes this shell's children.  A zombie counts as gone: it
# runs no more and holds no socket, whenever its parent reaps it.
fb_kill_gone() {
	kill -KILL "$1"
	while [ -e "/proc/$1" ] &&
		[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
	do
		sleep 0.01
	done
}

fb_cleanup() {
	local pid id
	for pid in "${FB_PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${FB_PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	# A run that failed to clean up after itself is a failure the test
	# reports; here it is only removed.
	for id in "${FB_IDS[@]}"; do
		[ -e "/run/netns/fb-$id" ] && ip netns del "fb-$id"
	done
	ip netns del "$HOST" 2>/dev/null
	ip netns del "$INET" 2>/dev/null
	for m in "${FB_MOUNTS[@]}"; do
		umount "$m" 2>/dev/null
	done
	rm -rf "$FB_TMP" "${FB_RM[@]}"
	rmdir "$FB_TMP_BASE" 2>/dev/null	# the last test's
}
trap fb_cleanup EXIT
trap 'exit 130' INT TERM

fb_world() {
	ip netns add "$HOST" && ip netns add "$INET" || return 1
	in_host ip link set lo up
	in_inet ip link set lo up
	in_host ip link add inet0 type veth peer name up0 netns "$INET"
	in_host ip addr add 192.0.2.1/24 dev inet0
	in_host ip addr add 2001:db8:1::1/64 dev inet0 nodad
	in_host ip link set inet0 up
	in_inet ip addr add 192.0.2.2/24 dev up0
	in_inet ip addr add 2001:db8:1::2/64 dev up0 nodad
	in_inet ip link set up0 up
	in_host ip route add default via 192.0.2.2
	in_host ip -6 route add default via 2001:db8:1::2
	in_host sysctl -qw net.ipv6.conf.all.forwarding=1
	cp "$(dirname "${BASH_SOURCE[0]}")/probe.py" "$FB_TMP/probe.py"
	chmod 644 "$FB_TMP/probe.py"
}

# Give $INET the addresses a spec list needs (on lo: this kernel may
# have no dummy interfaces).
fb_origin_addrs() {
	local spec addr
	for spec in "$@"; do
		addr=$(cut -d, -f2 <<<"$spec")
		case $addr in
		*:*) in_inet ip addr add "$addr/128" dev lo 2>/dev/null ;;
		*) in_inet ip addr add "$addr/32" dev lo 2>/dev/null ;;
		esac
	done
	return 0
}

# Start the origin server in namespace $1 and wait until it listens.
fb_serve_in() {
	local ns=$1 ready=$FB_TMP/ready.$RANDOM; shift
	ip netns exec "$ns" "$PY" "$(dirname "${BASH_SOURCE[0]}")/origin.py" \
		"$ready" "$@" &
	FB_PIDS+=($!)
	for _ in $(seq 100); do
		[ -e "$ready" ] && return 0
		sleep 0.02
	done
	echo "# origin server in $ns did not start" >&2
	return 1
}

fb_origins() { fb_origin_addrs "$@" && fb_serve_in "$INET" "$@"; }
fb_outer_origins() { fb_serve_in "$HOST" "$@"; }

# The next sandbox id of this test.
fb_next_id() {
	FB_LAST_ID=$FB_ID_PREFIX-${#FB_IDS[@]}
	FB_IDS+=("$FB_LAST_ID")
}

# firebreak run inside $HOST; sets FB_LAST_ID.  Runs in the foreground:
# use `fb_run ... &` for a sandbox that lives alongside the test.
fb_run() {
	in_host timeout -k 5 20 "$FIREBREAK" run --state-dir "$FB_TMP/state" \
		--name "$FB_LAST_ID" "$@"
}

# The pid of the launcher of sandbox $1: the oldest process with its command
# line (relay and init share it), and not timeout (which passes a
# signal on to its whole process group, the guest included).
fb_launcher_pid() {
	pgrep -o -f -- "^$FIREBREAK run --state-dir $FB_TMP/state --name $1 "
}

# The guest side of a probe: python as nobody, reading the test's script.
fb_probe() { echo "$PY" "$FB_TMP/probe.py" "$@"; }

# The processes naming DIR in their arguments or working under it: their
# pids.
fb_procs_under() {
	local p
	pgrep -f -- "$1/"
	for p in /proc/[0-9]*; do
		case $(readlink "$p/cwd" 2>/dev/null) in
		"$1"/*) echo "${p#/proc/}" ;;
		esac
	done
	return 0
}

# What sandboxes left in $HOST: namespaces, tables, links, state.
fb_leftovers() {
	local id
	for id in "$@"; do
		in_host ip netns list 2>/dev/null | grep -w "fb-$id"
		in_host nft list tables | grep -w "firebreak-$id"
		in_host ip -br link | grep -w "fb-$id"
		ls "$FB_TMP/state/$id" 2>/dev/null
	done
	ls "$FB_TMP/state/slots" 2>/dev/null
	return 0
}
