#!/bin/bash
# Run every benchmark: the programs in BUILD/bench (default build/plain)
# and every other script in tests/bench.  Each prints its own table with
# its baseline; this script only runs them and reports which failed.
set -u
cd "$(dirname "$0")/../.."
build=${1:-build/plain}
export FB_BUILD="$build"
failed=0

for b in "$build"/bench/bench_*; do
	[ -x "$b" ] || continue
	case $b in *_load) continue ;; esac	# load generators: a script drives them
	echo "== $(basename "$b")"
	"$b" || { echo "FAILED: $b"; failed=1; }
	echo
done
for s in tests/bench/*.sh; do
	[ "$(basename "$s")" = run.sh ] && continue
	[ -x "$s" ] || continue
	echo "== $(basename "$s" .sh)"
	"$s" || { echo "FAILED: $s"; failed=1; }
	echo
done
exit $failed
