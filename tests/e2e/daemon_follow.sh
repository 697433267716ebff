#!/bin/bash
# `logs --follow` streams a log whose growth the guest decides.  A
# follower that stops reading, or reads slower than the log grows, must
# not make the daemon hold the difference: what it has not sent stays in
# the file until the follower takes it, and nothing is lost.
. "$(dirname "$0")/daemon_lib.sh"

# Under ASan what the daemon frees waits in a quarantine of up to 256 MiB,
# which would count as memory it holds: measure without one.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0

fb_daemon_one sleep 305
id=$FB_LAST_ID
log=$STATE/$id/audit.log
touch "$log"

client=$(dirname "$0")/follow_client.py
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$FB_DAEMON/status"; }

"$PY" "$client" "$SOCK" "$id" stall &
FB_PIDS+=($!)
sleep 0.5
# the proxy's appends, at a rate no proxy reaches: 160 MiB at once
head -c $((160 << 20)) /dev/zero | tr '\0' x >>"$log"
sleep 2
peak=$(hwm)
check "a follower that reads nothing: the daemon's peak memory stays low (${peak} kB)" \
	[ "${peak:-999999999}" -lt 100000 ]
# about 3 MB/s: the daemon's queue never drains whole between its ticks
before=$(hwm)
timeout 25 "$PY" "$client" "$SOCK" "$id" slow 10
check "a follower slower than the log: it is served meanwhile" [ $? = 0 ]
peak=$(hwm)
check "a follower slower than the log: the daemon keeps nothing it sent (peak ${before} -> ${peak} kB)" \
	[ "$((${peak:-999999999} - ${before:-0}))" -lt 8000 ]
size=$(stat -c %s "$log")
got=$(timeout 30 "$PY" "$client" "$SOCK" "$id" all "$size")
check "a follower that keeps up gets every byte of the log ($got of $size)" \
	[ "$got" = "$size" ]
check "the daemon still serves: rm answers" fbd rm "$id"
check "nothing of the sandbox left" [ -z "$(fb_leftovers "$id")" ]
fb_daemon_kill TERM
check "the daemon reported no sanitizer error" \
	bash -c "! grep -E 'Sanitizer|runtime error' '$FB_TMP/vmhost.log'"
