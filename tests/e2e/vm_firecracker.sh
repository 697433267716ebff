#!/bin/bash
# The firecracker backend against fake_firecracker.py, which serves
# Firecracker's API in the binary's place and checks every request: the
# calls, their order and content, the status line, the error paths, and
# that a run leaves nothing behind.
. "$(dirname "$0")/lib.sh"

LOG=$FB_TMP/fc.log

fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }
. "$(dirname "$0")/firecracker_lib.sh"    # $FAKE, $GUEST, $USER_ARGS

# fc_run ENV... -- ARGS...: firebreak run with the fake, a fresh log, the
# environment given; stdout in $OUT, stderr in $ERR, status in $RC.  A
# descriptor left open by the caller (7, on $FB_TMP/stray) goes along.
fc_run() {
	local envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	: >"$LOG" && chmod 666 "$LOG"
	fb_next_id
	env FAKE_FC_LOG="$LOG" "${envs[@]}" ip netns exec "$HOST" \
		timeout -k 5 20 "$FIREBREAK" run --state-dir "$FB_TMP/state" \
		--name "$FB_LAST_ID" --backend firecracker \
		--firecracker "$FAKE" --guest "$GUEST" "${USER_ARGS[@]}" "$@" \
		>"$FB_TMP/out" 2>"$FB_TMP/err" 7>"$FB_TMP/stray"
	RC=$?
	OUT=$(cat "$FB_TMP/out")
	ERR=$(cat "$FB_TMP/err")
	[ -z "$ERR" ] || echo "# stderr: $ERR"
}

# Nothing of the last run left: namespaces, tables, links, state, and no
# process still naming or working in its state dir.
nothing_left() {
	[ -z "$(fb_leftovers "$FB_LAST_ID")" ] &&
		[ -z "$(fb_procs_under "$FB_TMP/state/$FB_LAST_ID")" ]
}

# api_check NAME PYTHON: PYTHON sees `log` (the fake's entries), `calls`
# (the requests), `sock` (the expected socket); it must be true.
api_check() {
	local name=$1 expr=$2
	if "$PY" - "$LOG" "$FB_TMP/state/$FB_LAST_ID/firecracker/api.sock" \
		"$expr" <<'PY'
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
calls = [e for e in log if "method" in e]
sock = sys.argv[2]
ok = eval("(" + sys.argv[3] + ")")
if not ok:
    print("# log: " + json.dumps(log))
sys.exit(0 if ok else 1)
PY
	then ok "$name"; else not_ok "$name"; fi
}

fc_run -- --vcpus 2 --memory 512 -- true
check "true in a VM: status 0" [ "$RC" = 0 ]
check "the console passes, the status line does not" \
	[ "$OUT" = "fake guest: booted /proc/self/fd/$(sed -n 's|.*"kernel_image_path": "/proc/self/fd/\([0-9]*\)".*|\1|p' "$LOG")" ]
api_check "firecracker started with --api-sock in the sandbox's state dir" \
	'log[0]["argv"] == ["--api-sock", "api.sock"] and
	 log[0]["cwd"] + "/api.sock" == sock'
api_check "firecracker runs in the sandbox namespace, where the tap is" \
	'log[0]["netdevs"] == ["guest0", "lo", "uplink0"]'
api_check "the calls, in order, each answered 204" \
	'[(c["method"], c["path"], c["status"]) for c in calls] == [
	    ("PUT", "/boot-source", 204),
	    ("PUT", "/network-interfaces/eth0", 204),
	    ("PUT", "/machine-config", 204),
	    ("PUT", "/actions", 204)]'
api_check "firecracker holds no descriptor the caller of firebreak run left open" \
	'not any(t.endswith("/stray") for t in log[0]["fds"])'
api_check "boot source: the guest image, as descriptors firecracker inherits" \
	'all(calls[0]["body"][k].startswith("/proc/self/fd/")
	     for k in ("kernel_image_path", "initrd_path"))'
api_check "boot args: console, guest address, gateway, resolver, status port" \
	'set(calls[0]["body"]["boot_args"].split()) >= {
	    "console=ttyS0", "reboot=k", "fb.ip=10.200.0.2/30",
	    "fb.gw=10.200.0.1", "fb.dns=10.200.0.1", "fb.ip6=fd00:fb::2/64",
	    "fb.gw6=fd00:fb::1", "fb.status=ttyS0"}'
api_check "network interface: the sandbox's tap" \
	'calls[1]["body"] == {"iface_id": "eth0", "host_dev_name": "guest0",
	                      "guest_mac": "52:54:00:fb:00:02"}'
api_check "machine config: --vcpus and --memory" \
	'calls[2]["body"] == {"vcpu_count": 2, "mem_size_mib": 512, "smt": False}'
api_check "InstanceStart last" \
	'calls[-1]["body"] == {"action_type": "InstanceStart"}'
api_check "the initrd carries the sandbox's piece: command and CA" \
	'log[-1]["initrd"]["fb/cmd"] == "'"'true'"'\n" and
	 "BEGIN CERTIFICATE" in log[-1]["initrd"]["fb/ca.pem"]'
check "true in a VM: nothing left behind" nothing_left

fc_run -- -- sh -c 'exit 3'
api_check "a command with arguments reaches the guest as shell words" \
	'log[-1]["initrd"]["fb/cmd"] == "'"'sh' '-c' 'exit 3'"'\n"'
api_check "machine config by default: 1 vCPU, 256 MiB" \
	'calls[2]["body"] == {"vcpu_count": 1, "mem_size_mib": 256, "smt": False}'

fc_run FAKE_FC_EXIT=7 -- -- false
check "the guest's status is the run's status" [ "$RC" = 7 ]

# Lines that only start like the status line are output; the console
# arrives a byte at a time, so each is seen in pieces.
lookalikes=$'FB_EXIT=x\nFB_EXIT=12 more\nFFB_EXIT=4\nFB_EXIT\n'
fc_run FAKE_FC_EXIT=9 FAKE_FC_CONSOLE="$lookalikes" -- -- true
check "lines like the status line pass; the last, real one sets the status" \
	[ "$RC" = 9 -a "$(tail -n +2 "$FB_TMP/out")" = "${lookalikes%$'\n'}" ]

fc_run FAKE_FC_EXIT=5 FAKE_FC_HANG=1 -- -- true
check "a VM that does not stop after its status is stopped; status kept" \
	[ "$RC" = 5 ]
check "a VM that does not stop: nothing left behind" nothing_left

# Without --user, firecracker runs as nobody, with the guest image only
# through the descriptors it inherits.
USER_ARGS_SAVED=("${USER_ARGS[@]}")
USER_ARGS=()
fc_run -- -- true
api_check "firecracker runs as nobody by default" 'log[0]["uid"] == 65534'
api_check "as nobody, it reads the guest image it was handed" \
	'calls[0]["status"] == 204'
if [ ${#USER_ARGS_SAVED[@]} = 0 ]; then
	check "as nobody, the VM runs" [ "$RC" = 0 ]
else
	check "as nobody, where /dev/net/tun is root's: Firecracker's refusal, named" \
		[ "$RC" = 1 -a -n "$(grep -E '^firebreak run: firecracker: PUT /network-interfaces/eth0: 400: Could not create the network device: .*Permission denied' <<<"$ERR")" ]
fi
check "as nobody: nothing left behind" nothing_left
USER_ARGS=("${USER_ARGS_SAVED[@]}")

# SIGTERM to the launcher while the guest runs: passed to firecracker.
id=$FB_ID_PREFIX-${#FB_IDS[@]}   # the id fc_run takes in the background
: >"$LOG"                        # no InstanceStart of the run before
(fc_run FAKE_FC_EXIT=none FAKE_FC_HANG=1 -- -- true; echo "$RC" >"$FB_TMP/rc") &
runner=$!
for _ in $(seq 100); do
	grep -q InstanceStart "$LOG" 2>/dev/null && break
	sleep 0.05
done
kill -TERM "$(fb_launcher_pid "$id")"
wait "$runner"
fb_next_id
check "SIGTERM to the launcher stops the VM: status 143" \
	[ "$(cat "$FB_TMP/rc")" = 143 ]
check "SIGTERM: nothing left behind" nothing_left

fc_run FAKE_FC_EXIT=none -- -- true
check "no status from the guest: 125 and one line saying so" \
	[ "$RC" = 125 -a "$ERR" = "firebreak run: the guest stopped without reporting a status (firecracker exited with 0)" ]
check "no status from the guest: nothing left behind" nothing_left

# refused NAME PATTERN ENV... -- ARGS...: fails with one matching line,
# leaves nothing.
refused() {
	local name=$1 pattern=$2; shift 2
	fc_run "$@"
	check "$name: fails" [ "$RC" -ne 0 ]
	check "$name: one clear line" \
		[ "$(wc -l <<<"$ERR")" = 1 -a -n "$(grep -E -- "$pattern" <<<"$ERR")" ]
	check "$name: nothing left behind" nothing_left
}

refused "firecracker binary missing" \
	"^firebreak run: backend firecracker: $FB_TMP/none/firecracker: No such file or directory" \
	-- --firecracker "$FB_TMP/none/firecracker" -- true
check "firecracker binary missing: found before anything was built" \
	[ ! -e "$FB_TMP/state/$FB_LAST_ID" ]
refused "guest image missing" \
	"^firebreak run: guest image $FB_TMP/noguest/vmlinux: No such file or directory" \
	-- --guest "$FB_TMP/noguest" -- true
refused "the API answers 400" \
	"^firebreak run: firecracker: PUT /machine-config: 400: refused by the test for PUT /machine-config$" \
	FAKE_FC_FAIL="PUT /machine-config" -- -- true
api_check "the API answers 400: no InstanceStart after it" \
	'[c["path"] for c in calls] == ["/boot-source",
	    "/network-interfaces/eth0", "/machine-config"]'
refused "the API refuses the start" \
	"^firebreak run: firecracker: PUT /actions: 400: refused by the test for PUT /actions$" \
	FAKE_FC_FAIL="PUT /actions" -- -- true

err=$(in_host "$FIREBREAK" run --backend firecracker --vcpus 0 -- true 2>&1)
check "--vcpus 0: a usage error" \
	[ $? = 2 -a "$err" = "firebreak run: --vcpus '0': expected a number from 1 to 32" ]
err=$(in_host "$FIREBREAK" run --firecracker "$FAKE" -- true 2>&1)
rc=$?
echo "# $err"
check "--firecracker without --backend firecracker: a usage error" \
	[ $rc = 2 -a -n "$(grep -xE 'firebreak run: --firecracker.* need.* --backend firecracker' <<<"$err")" ]
