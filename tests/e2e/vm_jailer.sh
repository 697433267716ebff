#!/bin/bash
# The firecracker backend under Firecracker's jailer (--jailer), against
# fake_jailer.py, which checks the jailer's arguments and chroot strictly
# and then runs fake_firecracker.py as the jailer would: the arguments,
# the chroot-relative guest image, the status, and a jail that is gone
# after the run, whether the VM ran or failed to start.  Then the same
# through firebreak-vmhost's "jailer" field.
. "$(dirname "$0")/daemon_lib.sh"   # lib.sh, and $STATE

JAILER=$(cd "$(dirname "$0")" && pwd)/fake_jailer.py
LOG=$FB_TMP/fc.log
JLOG=$FB_TMP/jailer.log

fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }
# $FAKE, $GUEST, and $USER_ARGS / $RUN_UID: the jailer drops to that user
. "$(dirname "$0")/firecracker_lib.sh"

# jl_run ENV... -- ARGS...: firebreak run under the fake jailer; stdout
# in $OUT, stderr in $ERR, status in $RC.
jl_run() {
	local envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	: >"$LOG" && chmod 666 "$LOG"
	: >"$JLOG"
	fb_next_id
	env FAKE_FC_LOG="$LOG" FAKE_JAILER_LOG="$JLOG" \
		FAKE_JAILER_STATE_DIR="$STATE" "${envs[@]}" ip netns exec "$HOST" \
		timeout -k 5 20 "$FIREBREAK" run --state-dir "$STATE" \
		--name "$FB_LAST_ID" --backend firecracker \
		--firecracker "$FAKE" --jailer "$JAILER" --guest "$GUEST" \
		"${USER_ARGS[@]}" "$@" >"$FB_TMP/out" 2>"$FB_TMP/err"
	RC=$?
	OUT=$(cat "$FB_TMP/out")
	ERR=$(cat "$FB_TMP/err")
	[ -z "$ERR" ] || echo "# stderr: $ERR"
}

nothing_left() {
	[ ! -e "$STATE/$FB_LAST_ID/jail" ] &&
		[ -z "$(fb_leftovers "$FB_LAST_ID")" ] &&
		[ -z "$(fb_procs_under "$STATE/$FB_LAST_ID")" ]
}

# log_check NAME PYTHON: PYTHON sees `log` (the fake firecracker's
# entries), `calls` (its requests), `jailer` (the fake jailer's entry or
# None), `id` and `root` (the chroot the jailer must have used).
log_check() {
	local name=$1 expr=$2
	if "$PY" - "$LOG" "$JLOG" "$FB_LAST_ID" "$STATE" "$expr" <<'PY'
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
calls = [e for e in log if "method" in e]
jl = [json.loads(l) for l in open(sys.argv[2])]
jailer = jl[0] if jl else None
id, state = sys.argv[3], sys.argv[4]
root = "%s/%s/jail/fake_firecracker.py/%s/root" % (state, id, id)
ok = eval("(" + sys.argv[5] + ")")
if not ok:
    print("# log: " + json.dumps(log) + "\n# jailer: " + json.dumps(jl))
sys.exit(0 if ok else 1)
PY
	then ok "$name"; else not_ok "$name"; fi
}

jl_run FAKE_FC_EXIT=7 -- -- sh -c 'exit 7'
check "under the jailer: the guest's status is the run's status" [ "$RC" = 7 ]
log_check "the jailer got its arguments: id, exec file, user, chroot base, netns" \
	'jailer["argv"] == ["--id", id, "--exec-file", "'"$FAKE"'",
	    "--uid", "'"$RUN_UID"'", "--gid", "'"$RUN_UID"'",
	    "--chroot-base-dir", "%s/%s/jail" % (state, id),
	    "--netns", "/run/netns/fb-" + id,
	    "--", "--api-sock", "/api.sock"]'
log_check "firecracker ran as the user, in the sandbox namespace, its socket in the chroot" \
	'log[0]["argv"] == ["--api-sock", "/api.sock"] and
	 log[0]["chroot"] == root and log[0]["uid"] == '"$RUN_UID"' and
	 log[0]["netdevs"] == ["guest0", "lo", "uplink0"]'
log_check "boot source: /vmlinux and /initrd, in the chroot" \
	'calls[0]["body"]["kernel_image_path"] == "/vmlinux" and
	 calls[0]["body"]["initrd_path"] == "/initrd" and
	 calls[0]["status"] == 204'
log_check "the chroot's initrd is the run's: it carries the command" \
	'log[-1]["initrd"]["fb/cmd"] == "'"'sh' '-c' 'exit 7'"'\n"'
log_check "the VM was configured and started" \
	'[(c["path"], c["status"]) for c in calls] == [("/boot-source", 204),
	    ("/network-interfaces/eth0", 204), ("/machine-config", 204),
	    ("/actions", 204)]'
check "the console passes under the jailer" [ "$OUT" = "fake guest: booted /vmlinux" ]
check "under the jailer: the jail is gone, nothing left behind" nothing_left

# A state dir of 70 bytes: the jail's socket, <root>/api.sock, has a path
# longer than a unix socket's address holds (108 bytes), and the launcher
# reaches it all the same.
STATE_SAVED=$STATE
STATE=$FB_TMP/s
while [ ${#STATE} -lt 70 ]; do STATE+=x; done
mkdir -m 755 "$STATE"
jl_run -- -- true
check "a jail's socket path past 108 bytes: the VM runs" [ "$RC" = 0 ]
log_check "... its socket in the chroot" \
	'log[0]["argv"] == ["--api-sock", "/api.sock"] and
	 log[0]["chroot"] == root and len(root + "/api.sock") > 108'
left=$(find "$STATE" -mindepth 1 ! -path "$STATE/slots")
[ -z "$left" ] || echo "# left: $left"
check "... nothing left behind" [ -z "$left" ]
check "... no process left" nothing_left
STATE=$STATE_SAVED

jl_run FAKE_FC_FAIL="PUT /actions" -- -- true
check "the API refuses the start under the jailer: one clear line" \
	[ "$RC" -ne 0 -a "$(wc -l <<<"$ERR")" = 1 -a \
	  "$ERR" = "firebreak run: firecracker: PUT /actions: 400: refused by the test for PUT /actions" ]
check "the API refuses the start: the jail is gone, nothing left behind" nothing_left

JAILER_SAVED=$JAILER
JAILER=$FB_TMP/none/jailer
jl_run -- -- true
JAILER=$JAILER_SAVED
check "jailer missing: fails with one line naming it" \
	[ "$RC" -ne 0 -a "$(wc -l <<<"$ERR")" = 1 -a \
	  -n "$(grep -E "^firebreak run: backend firecracker: jailer $FB_TMP/none/jailer: No such file or directory" <<<"$ERR")" ]
check "jailer missing: found before anything was built" \
	[ ! -e "$STATE/$FB_LAST_ID" ]
check "jailer missing: nothing left behind" nothing_left

err=$(in_host "$FIREBREAK" run --jailer "$JAILER" -- true 2>&1)
rc=$?
check "--jailer without --backend firecracker: a usage error" \
	[ $rc = 2 -a -n "$(grep -xE 'firebreak run: .*--jailer need.* --backend firecracker' <<<"$err")" ]

# Through the daemon: POST /sandboxes {"jailer"}, and `firebreak create
# --jailer`.  The daemon finds firecracker on its PATH and gives the guest
# side a clean environment, so the jailer here is a wrapper that sets the
# fakes' variables.
mkdir -p "$FB_TMP/bin"
ln -s "$FAKE" "$FB_TMP/bin/firecracker"
printf '#!/bin/sh\nFAKE_FC_LOG=%s FAKE_JAILER_LOG=%s FAKE_JAILER_STATE_DIR=%s FAKE_FC_EXIT=4 exec %s "$@"\n' \
	"$LOG" "$JLOG" "$STATE" "$JAILER" >"$FB_TMP/bin/jailer"
chmod 755 "$FB_TMP/bin/jailer"
PATH=$FB_TMP/bin:$PATH fb_daemon_start >"$FB_TMP/console" || { not_ok "daemon starts"; exit 1; }
USER_NAME=nobody
[ "$RUN_UID" = 0 ] && USER_NAME=root

: >"$LOG" && chmod 666 "$LOG"
: >"$JLOG"
fb_next_id
id=$FB_LAST_ID
out=$(fbd create --id "$id" --backend firecracker --image "$GUEST" \
	--jailer "$FB_TMP/bin/jailer" --user "$USER_NAME" -- sh -c 'exit 4' 2>&1)
check "daemon: create under the jailer prints the id" [ "$out" = "$id" ]
for _ in $(seq 250); do
	[ "$(state_of "$id" 's["status"]')" = stopped ] && break
	sleep 0.02
done
check "daemon: under the jailer the sandbox stops with the guest's status" \
	[ "$(state_of "$id" '(s["status"], s["exit_status"])')" = "('stopped', 4)" ]
log_check "daemon: the jailer ran firecracker from the daemon's PATH, chroot in the state dir" \
	'jailer["argv"][3] == "'"$FAKE"'" and
	 jailer["argv"][9] == "%s/%s/jail" % (state, id) and
	 calls[0]["body"]["kernel_image_path"] == "/vmlinux" and
	 calls[0]["status"] == 204'
check "daemon: the jail is gone once the VM is" [ ! -e "$STATE/$id/jail" ]
fbd rm "$id" >/dev/null 2>&1
check "daemon: after rm nothing is left" nothing_left

# bad_create NAME PATTERN JSON: 400 with a matching message, nothing made
bad_create() {
	code=$(api -o "$FB_TMP/e" -w '%{http_code}' -X POST -d "$3" \
		http://vmhost/sandboxes)
	sed 's/^/# /' "$FB_TMP/e"
	check "daemon: $1: 400 naming it" \
		bash -c "[ $code = 400 ] && grep -qE '$2' $FB_TMP/e"
	check "daemon: $1: nothing left behind" nothing_left
}
fb_next_id
bad_create "jailer missing" \
	"jailer $FB_TMP/none/jailer: No such file or directory" \
	'{"id":"'"$FB_LAST_ID"'","command":["true"],"backend":"firecracker","image":"'"$GUEST"'","jailer":"'"$FB_TMP"'/none/jailer"}'
bad_create "a relative jailer path" "jailer: expected the absolute path" \
	'{"id":"'"$FB_LAST_ID"'","command":["true"],"backend":"firecracker","jailer":"jailer"}'
bad_create "a jailer for the process backend" \
	"jailer: only the firecracker backend" \
	'{"id":"'"$FB_LAST_ID"'","command":["true"],"jailer":"'"$FB_TMP"'/bin/jailer"}'
