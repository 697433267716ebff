#!/bin/bash
# proxy_cut_fail.sh — a policy update whose cut of forwarded flows fails.
# Taking 8.8.8.0/24 out of subnets.allow makes the proxy cut the flows it
# forwarded there, through ctnetlink; helper_ctfail makes the kernel's
# answer to that a real ENOBUFS, the first N times or every time.  The
# update must stay in force, say so in its reply and audit line, retry on
# its own, and count it in /stats and /metrics.  The proxy runs alone with
# --nft in a namespace of the test's own; 8.8.8.0/24 is only ever an
# element of a set: nothing is sent anywhere.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

HELPER=$FB_BUILD/tests/helper_ctfail
[ -x "$HELPER" ] || { skip proxy_cut_fail "$HELPER not built"; exit 0; }
px_netns fbc
px_guest_link
POLICY=$FB_TMP/policy.yaml
SOCK=$FB_TMP/control.sock
AUDIT=$FB_TMP/audit.log
WIDE='{"allow": ["a.test"], "subnets": {"allow": ["8.8.8.0/24"]}}'
NARROW='{"allow": ["a.test"]}'

# start FAILS: a proxy whose first FAILS conntrack requests fail (-1: all)
start() {
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" && wait "$PROXY_PID"
	rm -f "$SOCK" "$AUDIT"
	printf '%s\n' "$WIDE" >"$POLICY"
	ip netns exec "$NS" "$HELPER" "$1" "$FB_BUILD/bin/firebreak-proxy" \
		--nft --guest-if gst --policy "$POLICY" \
		--listen 127.0.0.1:15001 --dns-listen 127.0.0.1:15053 \
		--control "$SOCK" --audit-log "$AUDIT" \
		--resolver 127.0.0.53 2>"$FB_TMP/proxy.err" &
	PROXY_PID=$!
	px_wait_file "$SOCK" ||
		{ not_ok setup "proxy did not start: $(cat "$FB_TMP/proxy.err")"; exit 1; }
}
put() {
	px_curl_control "$SOCK" -o "$FB_TMP/put.out" -w '%{http_code}' -X PUT \
		--data-binary "$1" http://fb/policy
}
get() { px_curl_control "$SOCK" "http://fb/$1"; }
# the audit log's lines whose event.action is $1, one JSON object a line
lines() {
	"$PY" -c 'import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o["event.action"] == sys.argv[2]:
        print(json.dumps(o, sort_keys=True))' "$AUDIT" "$1"
}
# field FIELD: FIELD of JSON on stdin
field() { "$PY" -c 'import json, sys; print(json.dumps(json.load(sys.stdin)[sys.argv[1]]))' "$1"; }
# wait_cut_lines N: the audit log has N flow-cut lines (5 s at most)
wait_cut_lines() {
	for _ in $(seq 250); do
		[ "$(lines flow-cut | wc -l)" -ge "$1" ] && return 0
		sleep 0.02
	done
	return 1
}

# ---- a cut that fails twice, then succeeds on its own ------------------
start 2
check "narrowing applies the update even though its cut fails (200)" \
	[ "$(put "$NARROW")" = 200 ]
out=$(cat "$FB_TMP/put.out")
check "... the reply says the flows were not cut, and why ($out)" \
	holds '[ "$(field flows_cut <<<"$out")" = false ] &&
	       field flows_cut_error <<<"$out" | grep -q "No buffer space"'
check "... the table in force is the new one" \
	holds '! ip netns exec "$NS" nft list set inet firebreak allow4 | grep -q 8.8.8.0'
pol=$(lines policy | tail -1)
check "... its policy audit line says so ($pol)" \
	holds '[ "$(field firebreak.flows_cut <<<"$pol")" = false ] &&
	       field error.message <<<"$pol" | grep -q "No buffer space"'
check "a retry cuts them within a second" wait_cut_lines 1
cut=$(lines flow-cut)
check "... and says so in a flow-cut line of its own ($cut)" \
	holds '[ "$(field event.outcome <<<"$cut")" = "\"success\"" ] &&
	       [ "$(field firebreak.attempts <<<"$cut")" = 3 ] &&
	       [ "$(field policy.generation <<<"$cut")" = 2 ]'
stats=$(get stats)
check "/stats: two failed attempts, nothing owed ($stats)" \
	grep -q '"flow_cut_failures":2,"flows_uncut":false' <<<"$stats"
check "/metrics: the same" \
	holds 'get metrics | grep -qx "firebreak_flow_cut_failures_total 2" &&
	       get metrics | grep -qx "firebreak_flows_uncut 0"'
# the success path: the kernel answers from now on
check "a cut that succeeds: 200 with the usual reply" \
	holds '[ "$(put "$WIDE")" = 200 ] && [ "$(put "$NARROW")" = 200 ] &&
	       grep -qx "{\"generation\":4,\"closed\":0}" "$FB_TMP/put.out"'
pol=$(lines policy | tail -1)
check "... and a policy line that says the flows were cut ($pol)" \
	holds '[ "$(field firebreak.flows_cut <<<"$pol")" = true ] &&
	       ! grep -q error.message <<<"$pol"'
check "a change of names alone does not cut (no flows_cut field)" \
	holds '[ "$(put "{\"allow\": [\"b.test\"]}")" = 200 ] &&
	       ! lines policy | tail -1 | grep -q flows_cut'

# ---- a cut that always fails -------------------------------------------
start -1
check "narrowing, the cut failing for good: still applied (200)" \
	[ "$(put "$NARROW")" = 200 ]
check "... the reply says the flows were not cut" \
	grep -q '"flows_cut":false' "$FB_TMP/put.out"
# a second update before the retries end takes the debt over, although
# it narrows nothing itself: it cuts at once, and its retries replace
# the first update's
check "a further update while the cut is owed tries again, and says so" \
	holds '[ "$(put "{\"allow\": [\"b.test\"]}")" = 200 ] &&
	       grep -q "\"flows_cut\":false" "$FB_TMP/put.out"'
check "the last retry's failure is a flow-cut line" wait_cut_lines 1
sleep 2 # as long again as the retries take: a second chain would show
cut=$(lines flow-cut)
check "... one: the second update's retries replaced the first's ($cut)" \
	holds '[ "$(wc -l <<<"$cut")" = 1 ] &&
	       [ "$(field event.outcome <<<"$cut")" = "\"failure\"" ] &&
	       [ "$(field firebreak.attempts <<<"$cut")" = 5 ] &&
	       [ "$(field policy.generation <<<"$cut")" = 3 ] &&
	       field error.message <<<"$cut" | grep -q "No buffer space"'
stats=$(get stats)
check "/stats: the debt stays owed ($stats)" \
	holds 'grep -q "\"flows_uncut\":true" <<<"$stats" &&
	       [ "$(sed -n "s/.*\"flow_cut_failures\":\([0-9]*\).*/\1/p" <<<"$stats")" -ge 6 ]'
check "/metrics: firebreak_flows_uncut 1" \
	holds 'get metrics | grep -qx "firebreak_flows_uncut 1"'
check "the update stays in force: generation 3" \
	holds 'get stats | grep -q "\"generation\":3"'

# ---- an apply whose table cannot be read back --------------------------
# The kernel takes the new table, then reading it back (the check that it
# holds what was sent) fails.  The update is refused, so the table in
# force must be the old one again, not the refused one; putting it back
# cannot be read back either, so the next update writes the table whole.
NFT_FAIL=$FB_TMP/nft-reads-fail
set4() { ip netns exec "$NS" nft list set inet firebreak allow4; }
FAIL_NFT_READS_WHILE=$NFT_FAIL start 0
touch "$NFT_FAIL"
code=$(put '{"allow": ["a.test"], "subnets": {"allow": ["8.8.4.0/24"]}}')
rm -f "$NFT_FAIL"
out=$(cat "$FB_TMP/put.out")
check "an update whose table cannot be read back is refused ($code: $out)" \
	holds '[ "$code" = 500 ] && grep -q "generation 1 stays" <<<"$out"'
check "... its sets are not left in the kernel, the old ones are" \
	holds '! set4 | grep -q 8.8.4.0 && set4 | grep -q 8.8.8.0'
check "... and the reply says the old table is not known to be whole" \
	grep -q "putting the old table back failed too" <<<"$out"
pol=$(lines policy | tail -1)
check "... as does its audit line ($pol)" \
	holds '[ "$(field event.outcome <<<"$pol")" = "\"denied\"" ] &&
	       field error.message <<<"$pol" | grep -q "the next update rewrites it"'
# an element nobody put there: the next update, though its sets are the
# old ones, must write the table whole and so drop it
ip netns exec "$NS" nft add element inet firebreak allow4 '{ 203.0.113.0/24 }'
check "the next update, with the old sets, rewrites the table" \
	holds '[ "$(put "{\"allow\": [\"b.test\"], \"subnets\": {\"allow\": [\"8.8.8.0/24\"]}}")" = 200 ] &&
	       ! set4 | grep -q 203.0.113.0 && set4 | grep -q 8.8.8.0'
check "... and the one after that, names alone, leaves it be" \
	holds 'ip netns exec "$NS" nft add element inet firebreak allow4 "{ 203.0.113.0/24 }" &&
	       [ "$(put "{\"allow\": [\"c.test\"], \"subnets\": {\"allow\": [\"8.8.8.0/24\"]}}")" = 200 ] &&
	       set4 | grep -q 203.0.113.0'
