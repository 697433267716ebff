#!/bin/bash
# Run every libFuzzer binary in directory $1 for $2 seconds each, on the
# corpus tests/fuzz/corpus/<target>/ (seeds committed there; a working copy
# grows under $1/corpus/<target>/ so the committed seeds stay as they are).
# Prints one line per target with its exec count; exits 1 on any crash.
set -u
cd "$(dirname "$0")/../.."
dir=${1:?usage: tests/fuzz/run.sh FUZZ_BIN_DIR SECONDS}
secs=${2:-60}
status=0
for bin in "$dir"/fuzz_*; do
	[ -x "$bin" ] || continue
	target=$(basename "$bin"); target=${target#fuzz_}
	seeds=tests/fuzz/corpus/$target
	work=$dir/corpus/$target
	mkdir -p "$work" "$dir/crashes/$target"
	log=$(mktemp)
	"$bin" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$dir/crashes/$target/" \
		"$work" $([ -d "$seeds" ] && echo "$seeds") >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	echo "fuzz $target: ${execs:-0} execs in ${secs}s, exit $rc"
	if [ $rc -ne 0 ]; then
		status=1
		grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -20
	fi
	rm -f "$log"
done
exit $status
