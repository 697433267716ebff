#!/bin/bash
# Fail closed: with the sandbox's proxy gone, TCP the policy leaves to the
# proxy is refused at once and DNS goes unanswered; nothing falls through
# to the origin, even under allow-all.
. "$(dirname "$0")/lib.sh"

fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }
fb_origins tcp,203.0.113.10,80,hello || { not_ok "origins"; exit 1; }
mkdir -m 1777 "$FB_TMP/x"

phase() { # the guest: probe, say so, wait for the go, probe again
	echo "$(fb_probe connect,203.0.113.10,80 tcp,203.0.113.10,80)
		touch $FB_TMP/x/first
		while [ ! -e $FB_TMP/x/go ]; do sleep 0.02; done
		$(fb_probe connect,203.0.113.10,80 tcp,203.0.113.10,80 \
			udp,10.200.0.1,53)"
}

fb_next_id
fb_run --policy allow-all "${PUBLICS[@]}" -- sh -c "$(phase)" \
	>"$FB_TMP/out" 2>&1 &
pid=$!
for _ in $(seq 250); do
	[ -e "$FB_TMP/x/first" ] && break
	sleep 0.02
done
proxy=$(pgrep -f -- "firebreak-proxy .*--sandbox-id $FB_LAST_ID( |\$)")
check "the sandbox has a proxy" [ -n "$proxy" ]
fb_kill_gone "$proxy"
touch "$FB_TMP/x/go"
wait "$pid"
sed 's/^/# /' "$FB_TMP/out"
first=$(grep -m1 '^connect,' "$FB_TMP/out")
second=$(grep '^connect,' "$FB_TMP/out" | tail -1)
check "with the proxy up, the redirect is taken by the proxy" \
	grep -q ' connected ' <<<"$first"
check "proxy gone: redirected TCP refused" grep -q ' refused ' <<<"$second"
check "proxy gone: refused in under 300 ms" \
	[ "$(sed 's/.* \([0-9]*\)ms$/\1/' <<<"$second")" -lt 300 ]
check "proxy gone: the origin is never reached" \
	[ "$(grep -c '^tcp,203.0.113.10,80 open' "$FB_TMP/out")" = 0 ]
check "proxy gone: DNS unanswered" \
	grep -qE '^udp,10.200.0.1,53 (refused|noreply) ' "$FB_TMP/out"
check "nothing left behind" [ -z "$(fb_leftovers "$FB_LAST_ID")" ]
