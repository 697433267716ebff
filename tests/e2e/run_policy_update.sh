#!/bin/bash
# A policy update reaches a running sandbox: SIGHUP makes firebreak run
# re-read its policy file, and a CIDR-allowed TCP stream the new policy
# no longer allows is cut within 100 ms.
. "$(dirname "$0")/lib.sh"

fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }
fb_origins tcp,198.51.100.10,7,echo tcp,2001:db8:100::10,7,echo ||
	{ not_ok "origins"; exit 1; }

# cut NAME ADDR [link]: stream to ADDR:7, then take the allowance away;
# with "link", the policy path is a symlink, re-pointed at a new file as
# a config-map update does.
cut() {
	local name=$1 addr=$2 out=$FB_TMP/$1.out pid launcher t0 line ns ms
	local policy=$FB_TMP/policy.yaml
	printf 'allow: []\nsubnets:\n  allow: ["198.51.100.0/24", "2001:db8:100::/64"]\n' \
		>"$policy"
	if [ "${3:-}" = link ]; then
		ln -sfn "$policy" "$FB_TMP/link.yaml"
		policy=$FB_TMP/link.yaml
	fi
	fb_next_id
	fb_run --policy "$policy" "${PUBLICS[@]}" \
		-- $(fb_probe "stream,$addr,7") >"$out" 2>&1 &
	pid=$!
	if ! fb_wait_line '^streaming' "$out"; then
		not_ok "$name: stream established" "$(cat "$out")"
		wait "$pid"
		return
	fi
	ok "$name: stream established under the first policy"
	launcher=$(fb_launcher_pid "$FB_LAST_ID")
	sleep 0.2
	if [ "${3:-}" = link ]; then
		printf 'allow: []\n' >"$FB_TMP/new.yaml"
		ln -sfn "$FB_TMP/new.yaml" "$FB_TMP/link.yaml"
	else
		printf 'allow: []\n' >"$FB_TMP/policy.yaml"
	fi
	t0=${EPOCHREALTIME/./}
	kill -HUP "$launcher"
	wait "$pid"
	sed 's/^/# /' "$out"
	line=$(grep '^stream,' "$out")
	ns=$(sed -n 's/.* cut \([0-9]*\) .*/\1/p' <<<"$line")
	if [ -z "$ns" ]; then
		not_ok "$name: stream cut after the update" "$line"
		return
	fi
	ms=$(((ns / 1000 - t0) / 1000))
	check "$name: stream cut ${ms} ms after the update (< 100 ms)" \
		[ "$ms" -ge 0 -a "$ms" -lt 100 ]
	check "$name: nothing left behind" [ -z "$(fb_leftovers "$FB_LAST_ID")" ]
}

cut ipv4 198.51.100.10
cut ipv6 2001:db8:100::10
cut symlink 198.51.100.10 link

# The cut flow's conntrack entry stays a moment, for the origin's packets
# in flight (the guest's answer to them is reset), then goes: from then on
# the origin's packets find none and are dropped, however long it sends.
printf 'allow: []\nsubnets:\n  allow: ["198.51.100.0/24"]\n' >"$FB_TMP/purge.yaml"
fb_next_id
fb_run --policy "$FB_TMP/purge.yaml" "${PUBLICS[@]}" \
	-- sh -c "$(fb_probe stream,198.51.100.10,7); sleep 3" >"$FB_TMP/purge.out" 2>&1 &
pid=$!
# in the sandbox's namespace, the proxy's
entries() {
	nsenter -n -t "$(pgrep -f -- "firebreak-proxy .*--sandbox-id $FB_LAST_ID( |\$)")" \
		grep -c 'dport=7 .*mark=1717698561' /proc/net/nf_conntrack
}
if fb_wait_line '^streaming' "$FB_TMP/purge.out"; then
	printf 'allow: []\n' >"$FB_TMP/purge.yaml"
	kill -HUP "$(fb_launcher_pid "$FB_LAST_ID")"
	fb_wait_line '^stream,' "$FB_TMP/purge.out"
	early=$(entries)
	sleep 1.5
	late=$(entries)
fi
wait "$pid"
check "a cut TCP flow's conntrack entry stays a moment (${early:-none}), then goes (${late:-none})" \
	[ "${early:-0}" -ge 1 -a "${late:-1}" = 0 ]

# A broken policy file on SIGHUP changes nothing: the stream lives on.
printf 'allow: []\nsubnets:\n  allow: ["198.51.100.0/24"]\n' >"$FB_TMP/keep.yaml"
fb_next_id
fb_run --policy "$FB_TMP/keep.yaml" "${PUBLICS[@]}" \
	-- sh -c "$(fb_probe stream,198.51.100.10,7) & sleep 1.5; kill \$!" \
	>"$FB_TMP/keep.out" 2>&1 &
pid=$!
fb_wait_line '^streaming' "$FB_TMP/keep.out"
printf 'subnets: [\n' >"$FB_TMP/keep.yaml"
kill -HUP "$(fb_launcher_pid "$FB_LAST_ID")"
wait "$pid"
sed 's/^/# /' "$FB_TMP/keep.out"
check "a bad policy on SIGHUP is reported with its position" \
	grep -q 'keep.yaml:2:1: ' "$FB_TMP/keep.out"
check "the stream survives a bad update" \
	bash -c "! grep -q ' cut ' '$FB_TMP/keep.out'"
