#!/usr/bin/env bash
# Coverage-guided fuzzing of the targets in tests/fuzz/ with libFuzzer (clang-14, ASan+UBSan).
#
#   tests/fuzz/run_fuzz.sh [SECONDS] [TARGET...]        # each target SECONDS (default 60), in turn
#   tests/fuzz/run_fuzz.sh -p 1800                      # every target at once, 30 min wall clock
#   tests/fuzz/run_fuzz.sh --runs 20000 [TARGET...]     # a fixed number of inputs (CI)
#   tests/fuzz/run_fuzz.sh --merge-into-repo [TARGET...] # add the work corpus's new coverage to
#                                                        # tests/fuzz/corpus/ (no fuzzing)
# Options: -t SECONDS (same as the positional SECONDS), -p/--parallel (all targets concurrently,
# each under nice; for long runs on a shared machine), --no-build.
# Environment: SG_FUZZ_BUILD_DIR (default build-fuzz), SG_FUZZ_WORK (default
# $SG_FUZZ_BUILD_DIR/fuzz-work), CXX (default clang++-14), JOBS (build jobs, nproc),
# NICE (niceness of the fuzzers, default 19 with -p, else 0), SG_FUZZ_MAX_LEN (default 4096).
#
# Each target fuzzes $SG_FUZZ_WORK/corpus/<target>/ (kept across runs; new inputs land there) with
# the committed seeds of tests/fuzz/corpus/<target>/ as a second, read-only corpus, and its
# dictionary tests/fuzz/dict/<target>.dict. The repository is written only by --merge-into-repo.
# Crashing inputs land in $SG_FUZZ_WORK/crashes/<target>/; once fixed, copy them into the committed
# corpus so that fuzz_regression replays them in every build. Per target the script prints the
# executions, exec/s, the final cov:/ft: figures, the corpus size and the crashes, and writes them
# to $SG_FUZZ_WORK/summary.tsv.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
all_targets=(request_parser response_parser cookie config session_attributes client_side
  upstream_response snapshot memory_store redis_record form_field h2_frames h2_client_side)
build=${SG_FUZZ_BUILD_DIR:-build-fuzz}
work=${SG_FUZZ_WORK:-$build/fuzz-work}
cxx=${CXX:-clang++-14}
jobs=${JOBS:-$(nproc)}
max_len=${SG_FUZZ_MAX_LEN:-4096}
seconds=60
runs=""
parallel=0
merge_repo=0
build_first=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -p | --parallel) parallel=1; shift ;;
    --merge-into-repo) merge_repo=1; shift ;;
    --no-build) build_first=0; shift ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    [0-9]*) seconds=$1; shift ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
nice_level=${NICE:-$([ $parallel = 1 ] && echo 19 || echo 0)}

if [ $build_first = 1 ]; then
  cmake -S . -B "$build" -DSG_FUZZ=ON -DSG_WERROR=ON -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
  cmake --build "$build" -j"$jobs" --target "${targets[@]/#/fuzz_}" || exit 1
fi

if [ $merge_repo = 1 ]; then
  # -merge=1 copies into the first directory only the inputs that add coverage to it.
  for t in "${targets[@]}"; do
    before=$(ls tests/fuzz/corpus/"$t" | wc -l)
    "$build/fuzz_$t" -merge=1 -max_len="$max_len" tests/fuzz/corpus/"$t" "$work/corpus/$t" \
      >"$work/merge-$t.log" 2>&1 || { echo "*** merge of $t failed: $work/merge-$t.log"; exit 1; }
    echo "$t: $before -> $(ls tests/fuzz/corpus/"$t" | wc -l) committed inputs"
  done
  exit 0
fi

# Starts one target; its log is $work/fuzz-<target>.log.
start_target() {
  local t=$1
  mkdir -p "$work/corpus/$t" "$work/crashes/$t"
  local limit=(-max_total_time="$seconds")
  [ -n "$runs" ] && limit=(-runs="$runs")
  # -timeout: an input taking over 10 s is a hang; -rss_limit_mb: ASan's shadow counts towards it.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    nice -n "$nice_level" "$build/fuzz_$t" "$work/corpus/$t" tests/fuzz/corpus/"$t" \
    -dict=tests/fuzz/dict/"$t".dict "${limit[@]}" -max_len="$max_len" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/crashes/$t/" \
    >"$work/fuzz-$t.log" 2>&1
}

# One line per target from its log: the last "#N ... cov: .. ft: .. corp: N/size ... exec/s: .."
# status line and the final stats.
report_target() {
  local t=$1 status=$2 log="$work/fuzz-$t.log"
  local last cov ft corp execs eps crashes
  last=$(grep -E '^#[0-9]+[[:space:]]+(INITED|NEW|REDUCE|pulse|DONE|RELOAD)' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  crashes=$(find "$work/crashes/$t" -type f | wc -l)
  printf '%-20s %12s %8s %7s %7s %14s %8s %s\n' "$t" "${execs:-?}" "${eps:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}" "$crashes" "$([ "$status" = 0 ] && echo ok || echo "FAILED ($status)")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "${execs:-}" "${eps:-}" "${cov:-}" "${ft:-}" \
    "${corp:-}" "$crashes" "$status" >>"$work/summary.tsv"
}

mkdir -p "$work"
: >"$work/summary.tsv"
declare -A status
if [ -n "$runs" ]; then
  echo "fuzzing ${targets[*]}: $runs inputs each"
else
  echo "fuzzing ${targets[*]}: ${seconds}s each$([ $parallel = 1 ] && echo ', all at once')"
fi
echo "started $(date -u +%FT%TZ); logs, corpora and crashes in $work"
if [ $parallel = 1 ]; then
  declare -A pids
  for t in "${targets[@]}"; do
    start_target "$t" &
    pids[$t]=$!
  done
  for t in "${targets[@]}"; do
    wait "${pids[$t]}"
    status[$t]=$?
  done
else
  for t in "${targets[@]}"; do
    start_target "$t"
    status[$t]=$?
  done
fi
echo "finished $(date -u +%FT%TZ)"
printf '%-20s %12s %8s %7s %7s %14s %8s %s\n' target executions exec/s cov ft corpus crashes result
failed=()
for t in "${targets[@]}"; do
  report_target "$t" "${status[$t]}"
  if [ "${status[$t]}" != 0 ]; then
    failed+=("$t")
    grep -m 20 -E 'ERROR|invariant|runtime error|SUMMARY' "$work/fuzz-$t.log" | sed 's/^/    /'
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "failed: ${failed[*]} (inputs in $work/crashes/)"
  exit 1
fi
echo "no crashes"
