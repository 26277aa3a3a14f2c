#!/usr/bin/env bash
# Fuzzes the parsers: builds every libFuzzer target of tests/fuzz/fuzz_*.c
# with clang, ASan and UBSan (cmake -DMFS_FUZZ=ON) into build-fuzz/ (or
# $MFS_FUZZ_BUILD_DIR), then runs each target for SECONDS (default 10) from
# its seed corpus tests/fuzz/corpus/NAME/ (NAME without the "fuzz_" prefix;
# tests/fuzz/corpus/fuzz_NAME/ is read too if it exists).
#
#   scripts/fuzz.sh           the short run of the test command (10 s a target)
#   scripts/fuzz.sh 600       the long run (10 minutes a target)
#   scripts/fuzz.sh 60 ref    only the targets whose name contains "ref"
#
# Inputs found along the way go to build-fuzz/fuzz-out/NAME/corpus (kept
# between runs, so long runs build on each other; the seed directory in the
# repository is never written). A crash, leak, timeout or failed property
# fails the script and leaves the input in build-fuzz/fuzz-out/NAME/ as
# crash-*, leak-*, timeout-* or oom-*: add it to the seeds (and a unit test)
# once fixed. Per target it prints executions, execs/s, coverage (cov: edges)
# and features (ft:).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
only=${2:-}
dir=${MFS_FUZZ_BUILD_DIR:-build-fuzz}
command -v clang >/dev/null || { echo "fuzz.sh: clang is not installed (scripts/install-deps.sh)" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DMFS_FUZZ=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >"$log" 2>&1 ||
	! cmake --build "$dir" --target fuzzers -j"$(nproc)" >>"$log" 2>&1; then
	grep -v '^\[' "$log" >&2 || true
	echo "fuzz.sh: build failed" >&2
	exit 1
fi

out=$dir/fuzz-out
failed=()
printf '%-22s %10s %9s %7s %7s %6s  %s\n' TARGET EXECS EXEC/S COV FT CORPUS RESULT
for src in tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	short=${name#fuzz_}
	[[ -z $only || $name == *"$only"* ]] || continue
	work=$out/$short
	mkdir -p "$work/corpus"
	seeds=()
	for d in "tests/fuzz/corpus/$short" "tests/fuzz/corpus/$name"; do
		[[ -d $d ]] && seeds+=("$d")
	done
	dict=()
	[[ -f tests/fuzz/$short.dict ]] && dict=(-dict="tests/fuzz/$short.dict")
	rc=0
	touch "$work/.start"
	# New inputs are written to the first directory only (the work corpus).
	"$dir/fuzz/$name" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$work/" "${dict[@]}" \
		"$work/corpus" "${seeds[@]}" >"$work/log" 2>&1 || rc=$?
	done_line=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$work/log" | tail -n1 || true)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n1)
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -n1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
	corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$done_line")
	result=ok
	if ((rc != 0)); then
		result="FAILED (exit $rc): $(cd "$work" && find . -maxdepth 1 -newer .start \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'slow-unit-*' \) -printf '%f ')"
		failed+=("$name")
	fi
	printf '%-22s %10s %9s %7s %7s %6s  %s\n' "$name" "${execs:-?}" "${speed:-?}" \
		"${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
	if ((rc != 0)); then
		grep -E 'ERROR|SUMMARY|property failed|runtime error' "$work/log" | head -n 8 | sed 's/^/    /'
		echo "    log: $work/log"
	fi
done
if ((${#failed[@]})); then
	echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
	exit 1
fi
