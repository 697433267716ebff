#!/bin/bash
# Run every unit suite and end-to-end test against each build directory
# given (build/plain build/asan), then print one summary line.
#
# Unit suites are cmocka programs; end-to-end tests are tests/e2e/*.sh
# scripts that print "ok - NAME" / "not ok - NAME" lines (TAP style).
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0 skipped=0
failures=()

# The end-to-end tests run guest commands as nobody, and those read the
# helpers under tests/e2e.  A checkout inside a private directory (mktemp
# -d makes them 0700) would hide them, so every directory above the
# checkout gets search permission — not listing — for the run, and loses
# it again afterwards.
opened=()
d=$PWD
while [ "$d" != / ]; do
	if [ -z "$(find "$d" -maxdepth 0 -perm -o+x)" ] && chmod o+x "$d"; then
		opened+=("$d")
	fi
	d=$(dirname "$d")
done
trap 'for d in "${opened[@]}"; do chmod o-x "$d"; done' EXIT

count_cmocka() { # $1 = suite output, $2 = label
	local p f
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' <<<"$1" | tail -1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' <<<"$1" | tail -1)
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' <<<"$1" | tail -1)
	passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
	if [ -n "${f:-}" ] && [ "${f:-0}" != 0 ]; then failures+=("$2"); fi
}

for build in "$@"; do
	export FB_BUILD="$build"
	for t in "$build"/tests/test_*; do
		[ -x "$t" ] || continue
		name="$build/$(basename "$t")"
		out=$("$t" 2>&1); rc=$?
		printf '%s\n' "$out" | grep -E '^\[  (FAILED|ERROR)|^\[ +(FAILED|ERROR) +\]|ERROR:|runtime error|Sanitizer' | sed "s|^|$name: |"
		count_cmocka "$out" "$name"
		if [ $rc -ne 0 ] && ! grep -q '^\[  FAILED  \]' <<<"$out"; then
			echo "$name: exited $rc without a cmocka summary"; printf '%s\n' "$out" | tail -20
			failed=$((failed + 1)); failures+=("$name")
		fi
		echo "suite $name: done"
	done
	for t in tests/e2e/*.sh; do
		[ -x "$t" ] || continue
		name="$build/e2e/$(basename "$t" .sh)"
		log=$(mktemp)
		if [ -n "${E2E_TIMEOUT:-}" ]; then to=$E2E_TIMEOUT; else to=600; fi
		timeout -k 10 "$to" "$t" >"$log" 2>&1; rc=$?
		p=$(grep -c '^ok ' "$log"); f=$(grep -c '^not ok ' "$log"); s=$(grep -c '^skip ' "$log")
		passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
		if [ "$f" != 0 ] || { [ $rc -ne 0 ] && [ "$p" = 0 ]; }; then
			[ "$f" = 0 ] && failed=$((failed + 1))
			failures+=("$name"); echo "--- $name (exit $rc)"; tail -40 "$log"
		fi
		echo "e2e $name: $p ok, $f not ok, $s skipped"
		rm -f "$log"
	done
done

for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "firebreak: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
