#!/bin/bash
# The daemon passes policy requests to a sandbox's proxy, which parses
# what its guest sends and may be taken over.  A proxy that drips its
# answer holds the daemon (and every other client and sandbox) for the
# forward's deadline at most, and one that floods it cannot grow the
# daemon past the largest answer a policy can have.
. "$(dirname "$0")/daemon_lib.sh"

fb_daemon_one sleep 304
id=$FB_LAST_ID

# bad MODE: a fake control socket in the proxy's place, serving MODE
bad() {
	rm -f "$FB_TMP/ready"
	"$PY" "$(dirname "$0")/control_fake.py" "$STATE/$id/control.sock" \
		"$FB_TMP/ready" "$1" &
	FB_PIDS+=($!)
	fb_wait_line listening "$FB_TMP/ready" 2>/dev/null
}

# timed OUT CURL-ARGS...: "CODE SECONDS" of one request, into OUT
timed() {
	local out=$1; shift
	curl -s --max-time 40 --unix-socket "$SOCK" -o "$out.body" \
		-w '%{http_code} %{time_total}\n' "$@" >"$out"
}
within() { awk -v t="$2" -v b="$3" 'BEGIN { exit !(t < b) }' && [ "$1" ]; }

bad drip || { not_ok "fake control socket"; exit 1; }
timed "$FB_TMP/fwd" "http://vmhost/sandboxes/$id/policy" &
fwd=$!
sleep 1
timed "$FB_TMP/ls" http://vmhost/sandboxes
wait "$fwd"
read -r code secs <"$FB_TMP/fwd"
echo "# dripping proxy: $code in ${secs}s: $(cat "$FB_TMP/fwd.body")"
check "a dripping proxy: the forward ends with 502 by its deadline (${secs}s)" \
	within "$([ "$code" = 502 ] && echo y)" "$secs" 20
read -r code secs <"$FB_TMP/ls"
check "a dripping proxy: another client is answered by then (${secs}s)" \
	within "$([ "$code" = 200 ] && echo y)" "$secs" 20

bad flood || { not_ok "fake control socket"; exit 1; }
timed "$FB_TMP/fwd" "http://vmhost/sandboxes/$id/policy"
read -r code secs <"$FB_TMP/fwd"
echo "# flooding proxy: $code in ${secs}s: $(cat "$FB_TMP/fwd.body")"
rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$FB_DAEMON/status")
check "a flooding proxy: the forward ends with 502 (${secs}s)" \
	within "$([ "$code" = 502 ] && echo y)" "$secs" 20
check "a flooding proxy: the daemon's peak memory stays bounded (${rss} kB)" \
	[ "${rss:-999999999}" -lt 400000 ]

# The fields the daemon copies from the proxy's answer into its own hold
# no line break or control byte a proxy gone wrong could start a field with.
bad inject || { not_ok "fake control socket"; exit 1; }
head=$(curl -s --max-time 20 --unix-socket "$SOCK" -D - -o /dev/null \
	"http://vmhost/sandboxes/$id/policy" | tr -d '\r')
echo "$head" | sed 's/^/# /'
check "a proxy's answer cannot add a field to the daemon's" \
	holds '[ -n "$head" ] && ! grep -qi "^set-cookie\|^x-injected" <<<"$head" &&
		! grep -q "$(printf "\x0b")" <<<"$head"'

check "the daemon still serves: rm answers" fbd rm "$id"
check "nothing of the sandbox left" [ -z "$(fb_leftovers "$id")" ]
fb_daemon_kill TERM
check "the daemon reported no sanitizer error" \
	bash -c "! grep -E 'Sanitizer|runtime error' '$FB_TMP/vmhost.log'"
