#!/bin/bash
# proxy_run.sh — the proxy inside sandboxes started by `firebreak run`,
# against TLS and HTTP origins and a real DNS server in the test's
# "internet" namespace: names, refusals, the wildcard table, SNI spoofing,
# DNS that never leaks refused names, the policy CLI on a live sandbox,
# and no egress once the proxy is gone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

fb_world || { not_ok setup "fb_world"; exit 1; }
fb_origin_addrs tcp,198.51.100.10,0 tcp,198.51.100.20,0 tcp,198.51.100.30,0 \
	tcp,198.51.100.53,0
px_certs allowed.test other.test a.b.wild.test wild.test bulk.test ||
	{ not_ok setup certs; exit 1; }
px_origins "$INET" https,198.51.100.10,443,allowed.test \
	https,198.51.100.20,443,other.test https,198.51.100.30,443,a.b.wild.test \
	https,198.51.100.20,4443,wild.test bulk,198.51.100.10,8443,bulk.test ||
	{ not_ok setup origins; exit 1; }
px_dns "$INET" 198.51.100.53 allowed.test=198.51.100.10 \
	other.test=198.51.100.20 a.b.wild.test=198.51.100.30 \
	wild.test=198.51.100.20 bulk.test=198.51.100.10 \
	many.wild.test=$(echo 198.51.100.{101..110} | tr ' ' +) ||
	{ not_ok setup dns; exit 1; }

POLICY=$FB_TMP/policy.yaml
cat >"$POLICY" <<'P'
allow:
  - allowed.test
  - "*.wild.test"
  - bulk.test
P
chmod 644 "$POLICY"
RUN_ARGS=(--resolver 198.51.100.53 "${PUBLICS[@]}")
CURL="curl -sS --max-time 5 --cacert $PX_CA"

# ---- one sandbox, many probes ---------------------------------------
cat >"$FB_TMP/guest1.sh" <<G
echo "allowed|\$($CURL https://allowed.test/ 2>&1)"
start=\$(date +%s%N)
out=\$($CURL --resolve other.test:443:198.51.100.20 https://other.test/ 2>&1)
echo "refused|\$(( (\$(date +%s%N) - start) / 1000000 ))|\$out"
echo "wild|\$($CURL https://a.b.wild.test/ 2>&1)"
echo "apex|\$($CURL --resolve wild.test:4443:198.51.100.20 https://wild.test:4443/ 2>&1)"
echo "v6|\$($CURL --resolve 'allowed.test:443:[2001:db8:100::10]' https://allowed.test/ 2>&1)"
echo "spoof|\$($CURL --resolve allowed.test:443:198.51.100.20 https://allowed.test/ 2>&1)"
echo "dns|\$(getent hosts other.test || echo nxdomain)"
echo "many|\$(getent ahostsv4 many.wild.test | grep -c STREAM)"
G
chmod 755 "$FB_TMP/guest1.sh"
fb_next_id
ID1=$FB_LAST_ID
fb_run --policy "$POLICY" "${RUN_ARGS[@]}" --audit-log "$FB_TMP/audit1.log" \
	-- bash "$FB_TMP/guest1.sh" >"$FB_TMP/out1" 2>"$FB_TMP/err1"
field() { grep "^$1|" "$FB_TMP/out1" | cut -d'|' -f2-; }

check "allowed name: end-to-end TLS, verified by the client" \
	[ "$(field allowed)" = "origin 198.51.100.10 allowed.test" ]
ms=$(field refused | cut -d'|' -f1)
check "refused name: access_denied alert, quickly (${ms}ms)" \
	grep -q "alert access denied" <<<"$(field refused)"
check "refused name: answered within a second" [ "${ms:-9999}" -lt 1000 ]
check "wildcard *.wild.test admits a.b.wild.test" \
	[ "$(field wild)" = "origin 198.51.100.30 a.b.wild.test" ]
check "wildcard *.wild.test refuses the apex" grep -q "alert access denied" <<<"$(field apex)"
check "IPv6 guest connection: redirected, named, routed by name" \
	[ "$(field v6)" = "origin 198.51.100.10 allowed.test" ]
check "SNI spoofing: --resolve allowed.test:443:<other origin> reaches allowed.test's origin" \
	[ "$(field spoof)" = "origin 198.51.100.10 allowed.test" ]
check "DNS: a refused name does not resolve" [ "$(field dns)" = nxdomain ]
check "DNS: the refused name never reached the upstream resolver" \
	px_absent "other.test" "$PX_DNS_LOG"
check "DNS: allowed names did reach it" grep -q "^allowed.test 1$" "$PX_DNS_LOG"
check "DNS: a name with ten addresses gets them all ($(field many))" [ "$(field many)" = 10 ]
check "audit log: its dns line names all ten" grep -q \
	'"dns.question.name":"many.wild.test","dns.question.type":"A".*"dns.resolved_ip.9":"198.51.100.1' \
	"$FB_TMP/audit1.log"
check "audit log: JSON lines from the sandbox's proxy" px_json_lines "$FB_TMP/audit1.log"
check "audit log: the refused SNI is logged with its reason" \
	grep -q '"event.outcome":"denied".*"event.reason":"not-allowed".*"tls.client.server_name":"other.test"' "$FB_TMP/audit1.log"
check "run left nothing behind" [ -z "$(fb_leftovers "$ID1")" ]

# ---- the policy CLI on a live sandbox ---------------------------------
cat >"$FB_TMP/guest2.sh" <<G
wait_for() { for _ in \$(seq 200); do [ -e "$FB_TMP/\$1" ] && return; sleep 0.05; done; }
$CURL https://bulk.test:8443/ -o /dev/null 2>/dev/null
echo "bulk|\$?"
wait_for patched
echo "patched|\$($CURL --resolve other.test:443:198.51.100.20 https://other.test/ 2>&1)"
wait_for killed
echo "afterkill|\$($CURL https://allowed.test/ 2>&1)"
G
chmod 755 "$FB_TMP/guest2.sh"
fb_next_id
ID2=$FB_LAST_ID
fb_run --policy "$POLICY" "${RUN_ARGS[@]}" -- bash "$FB_TMP/guest2.sh" \
	>"$FB_TMP/out2" 2>"$FB_TMP/err2" &
run=$!
FB_PIDS+=($run)
cli() { in_host "$FIREBREAK" policy "$@" --state-dir "$FB_TMP/state"; }
for _ in $(seq 100); do
	[ -S "$FB_TMP/state/$ID2/control.sock" ] && break
	sleep 0.05
done
sleep 0.5   # the download is running
got=$(cli get "$ID2" 2>"$FB_TMP/get.err")
check "firebreak policy get shows the policy in force" grep -q '"bulk.test"' <<<"$got"
check "... and its generation, on stderr, for --if-match" grep -qx 'generation 1' "$FB_TMP/get.err"
echo 'deny-all' >"$FB_TMP/deny.yaml"
out=$(cli set "$ID2" "$FB_TMP/deny.yaml" 2>&1)
check "firebreak policy set deny-all cuts the running download ($out)" grep -q '"closed":[1-9]' <<<"$out"
echo '{"allow":{"other.test":[]}}' >"$FB_TMP/patch.json"
out=$(cli patch "$ID2" "$FB_TMP/patch.json" --if-match 1 2>&1)
check "firebreak policy patch with a stale --if-match is refused (412)" grep -q 412 <<<"$out"
out=$(cli patch "$ID2" "$FB_TMP/patch.json" --if-match 2 2>&1)
check "firebreak policy patch adds a domain" grep -q '"generation":3' <<<"$out"
touch "$FB_TMP/patched"
sleep 1
proxy=$(ip netns pids "fb-$ID2" 2>/dev/null | head -1)
[ -n "$proxy" ] && kill -KILL "$proxy"
touch "$FB_TMP/killed"
wait $run
field() { grep "^$1|" "$FB_TMP/out2" | cut -d'|' -f2-; }
check "the download was cut (curl status $(field bulk))" holds '[ "$(field bulk)" != 0 ] && [ -n "$(field bulk)" ]'
check "the patched-in domain passes" [ "$(field patched)" = "origin 198.51.100.20 other.test" ]
check "with the proxy killed the sandbox has no egress" \
	grep -q "Failed to connect\|Could not resolve\|timed out" <<<"$(field afterkill)"
check "second run left nothing behind" [ -z "$(fb_leftovers "$ID2")" ]
