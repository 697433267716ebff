#!/bin/bash
# Two sandboxes at once, with different policies: each sees its own rules
# only, and neither leaves anything behind.
. "$(dirname "$0")/lib.sh"

fb_world || { not_ok "world" "could not build the test namespaces"; exit 1; }
fb_origins tcp,198.51.100.10,80,hello tcp,203.0.113.10,80,hello ||
	{ not_ok "origins"; exit 1; }

printf 'allow: []\nsubnets:\n  allow: ["198.51.100.0/24"]\n' >"$FB_TMP/a.yaml"
printf 'allow: []\nsubnets:\n  allow: ["203.0.113.0/24"]\n' >"$FB_TMP/b.yaml"

# Each guest waits until both sandboxes exist (their directories in the
# state directory: the guest's /run is its own), then probes both origins.
both_up="while [ \$(ls $FB_TMP/state | grep -c '^$FB_ID_PREFIX-[01]\$') != 2 ]; do sleep 0.05; done"
probe="$(fb_probe tcp,198.51.100.10,80 tcp,203.0.113.10,80)"
fb_next_id; id_a=$FB_LAST_ID
fb_run --policy "$FB_TMP/a.yaml" "${PUBLICS[@]}" \
	-- sh -c "$both_up; $probe" >"$FB_TMP/a.out" 2>&1 &
pid_a=$!
fb_next_id; id_b=$FB_LAST_ID
fb_run --policy "$FB_TMP/b.yaml" "${PUBLICS[@]}" \
	-- sh -c "$both_up; $probe" >"$FB_TMP/b.out" 2>&1 &
pid_b=$!
wait "$pid_a"; rc_a=$?
wait "$pid_b"; rc_b=$?
sed 's/^/# a: /' "$FB_TMP/a.out"; sed 's/^/# b: /' "$FB_TMP/b.out"

check "both runs succeed" [ "$rc_a" = 0 -a "$rc_b" = 0 ]
check "sandbox A reaches its allowed range" \
	grep -q '^tcp,198.51.100.10,80 open' "$FB_TMP/a.out"
check "sandbox A is refused B's range" \
	grep -qE '^tcp,203.0.113.10,80 (denied|refused)' "$FB_TMP/a.out"
check "sandbox B reaches its allowed range" \
	grep -q '^tcp,203.0.113.10,80 open' "$FB_TMP/b.out"
check "sandbox B is refused A's range" \
	grep -qE '^tcp,198.51.100.10,80 (denied|refused)' "$FB_TMP/b.out"
check "nothing left after two concurrent runs" \
	[ -z "$(fb_leftovers "$id_a" "$id_b")" ]

# Without --name: random ids and separate uplink slots, four at once.
before=$(ls /run/netns | grep -c '^fb-')
pids=()
for i in 1 2 3 4; do
	in_host timeout -k 5 20 "$FIREBREAK" run --state-dir "$FB_TMP/state" \
		"${PUBLICS[@]}" --policy "$FB_TMP/a.yaml" \
		-- $(fb_probe tcp,198.51.100.10,80) >"$FB_TMP/anon$i.out" 2>&1 &
	pids+=($!)
done
fails=0
for i in 1 2 3 4; do
	wait "${pids[$((i - 1))]}" || fails=$((fails + 1))
	grep -q '^tcp,198.51.100.10,80 open' "$FB_TMP/anon$i.out" ||
		fails=$((fails + 1))
done
check "four unnamed runs at once each get a working sandbox" [ "$fails" = 0 ]
check "no sandbox namespace left" \
	[ "$(ls /run/netns | grep -c '^fb-')" -le "$before" ]
check "no uplink slot still held" [ -z "$(ls "$FB_TMP/state/slots")" ]
check "no table left in the host namespace" \
	[ -z "$(in_host nft list tables | grep firebreak)" ]
check "no uplink left in the host namespace" \
	[ -z "$(in_host ip -br link | grep '^fb-')" ]

# Two state directories are two slot pools: a launcher on the second may
# find free there the slot a sandbox of the first uses in this namespace.
# Sharing its uplink addresses, one of the two would get no answers; the
# second launcher takes another slot, or refuses saying why.
fb_next_id
a=$FB_LAST_ID
fb_run "${PUBLICS[@]}" --policy "$FB_TMP/a.yaml" -- sleep 29.7 >/dev/null 2>&1 &
for _ in $(seq 100); do
	[ -e "$FB_TMP/state/$a/control.sock" ] && break
	sleep 0.05
done
slot=$(ls "$FB_TMP/state/slots")
mkdir -m 755 "$FB_TMP/other"
"$PY" "$(dirname "$0")/slots_hold.py" "$FB_TMP/other/slots" "$slot" \
	"$FB_TMP/held" &
FB_PIDS+=($!)
for _ in $(seq 200); do
	[ -e "$FB_TMP/held" ] && break
	sleep 0.05
done
fb_next_id
err=$(in_host timeout 20 "$FIREBREAK" run --state-dir "$FB_TMP/other" \
	--name "$FB_LAST_ID" "${PUBLICS[@]}" --policy "$FB_TMP/a.yaml" \
	-- $(fb_probe tcp,198.51.100.10,80) 2>&1)
rc=$?
echo "# slot $slot: $err"
check "another state directory, its one free slot in use here: refused, saying why" \
	holds '[ "$rc" = 1 ] && grep -q "by a launcher with another state directory" <<<"$err"'
r=$(nsenter --net="/proc/$(pgrep -u 65534 -fx 'sleep 29.7' | head -1)/ns/net" \
	"$PY" "$FB_TMP/probe.py" tcp,198.51.100.10,80)
check "another state directory: the first sandbox keeps its egress" \
	grep -q ' open ' <<<"$r"
check "another state directory: the refused run left nothing" \
	[ -z "$(fb_leftovers "$FB_LAST_ID" | grep -v "^$slot\$")" ]
kill "$(fb_launcher_pid "$a")"
