#!/usr/bin/env bash
# Coverage-guided fuzzing of every target in tests/fuzz/ with libFuzzer (clang-14, ASan+UBSan).
# Not part of CI: run it by hand after touching a parser.
#
#   tests/fuzz/run_fuzz.sh [-t SECONDS] [TARGET...]   # 60 s per target; default: every target
#
# (Not $SECONDS: bash's SECONDS counts up from whatever the environment sets it to.)
# Environment: SG_FUZZ_BUILD_DIR (default build-fuzz), CXX (default clang++-14), JOBS (nproc).
#
# Each target starts from a copy of its committed seed corpus (tests/fuzz/corpus/<target>/) in
# $SG_FUZZ_BUILD_DIR/corpus/<target>/, which keeps what libFuzzer found across runs. Crashing
# inputs land in $SG_FUZZ_BUILD_DIR/crashes/<target>/; once fixed, copy them into the committed
# corpus so that fuzz_regression replays them in every build.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
build=${SG_FUZZ_BUILD_DIR:-build-fuzz}
seconds=60
if [ "${1:-}" = "-t" ]; then
  seconds=$2
  shift 2
fi
cxx=${CXX:-clang++-14}
jobs=${JOBS:-$(nproc)}
all_targets=(request_parser response_parser cookie config session_attributes)
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=("${all_targets[@]}")
fi

cmake -S . -B "$build" -DSG_FUZZ=ON -DSG_WERROR=ON -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
cmake --build "$build" -j"$jobs" --target "${targets[@]/#/fuzz_}" || exit 1

failed=()
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  crashes="$build/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null
  echo "=== $t: ${seconds}s"
  log="$build/fuzz-$t.log"
  # -timeout: an input taking over 10 s is a hang; -rss_limit_mb: ASan's shadow counts towards it.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$build/fuzz_$t" "$corpus" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/" >"$log" 2>&1
  status=$?
  # Coverage at the start (seed corpus) and the end: "#N DONE cov: .. ft: .. corp: .. exec/s: ..".
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" | sed 's/^/  /'
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log"
  if [ $status -ne 0 ]; then
    echo "*** $t FAILED (exit $status); log: $log; inputs in $crashes/"
    grep -m 20 -E 'ERROR|invariant|runtime error|SUMMARY' "$log"
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "no crashes"
