#!/bin/bash
# proxy_nft_update.sh — what a policy update does to the proxy's own nft
# table: a change of names alone leaves the table in force as it is (it is
# already the one the new policy wants), a change of ranges replaces it
# before the reply, and a refused update touches nothing.  The proxy runs
# alone with --nft in a namespace of the test's own, on a veth pair.
# The range it denies, 8.8.8.0/24, is only ever an element of a set:
# nothing is sent anywhere.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

px_netns fbn
px_guest_link
POLICY=$FB_TMP/policy.yaml
SOCK=$FB_TMP/control.sock
printf 'allow:\n  - a.test\n' >"$POLICY"
ip netns exec "$NS" "$FB_BUILD/bin/firebreak-proxy" --nft --guest-if gst \
	--policy "$POLICY" --listen 127.0.0.1:15001 \
	--dns-listen 127.0.0.1:15053 --control "$SOCK" \
	--resolver 127.0.0.53 2>"$FB_TMP/proxy.err" &
PROXY_PID=$!
px_wait_file "$SOCK" || { not_ok setup "proxy did not start: $(cat "$FB_TMP/proxy.err")"; exit 1; }

# The table's handle: a new one each time the table is replaced.
handle() {
	ip netns exec "$NS" nft -a list table inet firebreak |
		sed -n 's/^table inet firebreak { # handle \([0-9]*\)$/\1/p'
}
put() {
	px_curl_control "$SOCK" -o "$FB_TMP/put.out" -w '%{http_code}' -X PUT \
		--data-binary "$1" http://fb/policy
}
deny4() { ip netns exec "$NS" nft list set inet firebreak deny4; }

h0=$(handle)
check "the proxy applied its table at start" [ -n "$h0" ]
check "a change of names alone is applied (200)" \
	[ "$(put '{"allow": ["b.test", "c.test"]}')" = 200 ]
check "... and keeps the table in force as it is" [ "$(handle)" = "$h0" ]
check "a change of ranges is applied (200)" \
	[ "$(put '{"allow": ["b.test"], "subnets": {"deny": ["8.8.8.0/24"]}}')" = 200 ]
h1=$(handle)
check "... and replaces the table before the reply" \
	[ -n "$h1" -a "$h1" != "$h0" ]
check "... whose deny set now holds the new range" \
	grep -q '8.8.8.0/24' <(deny4)
check "a refused update answers 400" \
	[ "$(put '{"allow": ["b.test"], "subnets": {"deny": ["8.8.8.1/24"]}}')" = 400 ]
check "... and leaves the table alone" [ "$(handle)" = "$h1" ]
check "names alone again: the table stays" \
	[ "$(put '{"allow": ["d.test"], "subnets": {"deny": ["8.8.8.0/24"]}}')" = 200 -a \
	  "$(handle)" = "$h1" ]
taken_away() {
	[ "$(put '{"allow": ["d.test"]}')" = 200 ] && [ "$(handle)" != "$h1" ] &&
		! grep -q '8.8.8.0/24' <(deny4)
}
check "a range taken away is applied too" taken_away
