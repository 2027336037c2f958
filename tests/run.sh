#!/usr/bin/env bash
# Installs what is missing, builds from scratch with warnings as errors, and runs every test
# (unit, integration and fuzz-regression tests, all registered with ctest), then the same suite
# again on an AddressSanitizer + UndefinedBehaviorSanitizer build (leak checking on), which is
# how memory errors in the connection code would show, together with every libFuzzer target for a
# fixed number of inputs (clang-14). SG_WITH_TSAN=1 adds the suite on a ThreadSanitizer build with
# two workers per gateway (about 5 more minutes: CI leaves it out to stay under 15 minutes; run it
# before changing state shared between threads). `.ci/run` calls exactly this. At the end (also
# after a failure) it prints how long each phase took, wall clock and CPU, with the load average:
# the machine is often shared, so compare CPU and compile units rather than wall time alone.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SG_BUILD_DIR:-build-test}
jobs=$(nproc)
# ctest -j4 on 2 cores: CMakeLists.txt makes each CPU-bound entry (unit test case, fuzz.regression,
# libFuzzer target) take 2 slots, so at most two of them run at once, while up to four integration
# tests, which mostly wait, overlap.
ctest_jobs=${SG_CTEST_JOBS:-4}

# --- per-phase timing -------------------------------------------------------------------------
phase_rows=()
run_start=$SECONDS
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
times_file=$(mktemp)
# Sets cpu_now to the CPU seconds (user+sys) of every finished child of this shell so far, from
# bash's `times`, which must run in this shell (a subshell's counters start at zero): no $(...).
cpu_now=0
children_cpu() {
  times >"$times_file"
  cpu_now=$(awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); s += p[1] * 60 + p[2] }
                           printf "%.0f", s }' "$times_file")
}
# phase NAME [--objects DIR] COMMAND...: runs COMMAND and records its wall and CPU time (and, with
# --objects, how many object files it compiled in DIR).
phase() {
  local name=$1 objdir="" t0=$SECONDS c0 stamp rc=0 units=""
  shift
  if [ "${1:-}" = --objects ]; then objdir=$2; shift 2; fi
  children_cpu
  c0=$cpu_now
  stamp=$(mktemp)
  "$@" || rc=$?
  [ -n "$objdir" ] && units=$(find "$objdir" -name '*.o' -newer "$stamp" | wc -l)
  rm -f "$stamp"
  children_cpu
  phase_rows+=("$(printf '%-38s %6ss %7ss %6s %s' "$name" $((SECONDS - t0)) $((cpu_now - c0)) \
    "$units" "$([ $rc = 0 ] && echo ok || echo "FAILED ($rc)")")")
  return $rc
}
print_phases() {
  echo
  echo "=== CI phases (wall, CPU user+sys of the phase's processes, compile units) ==="
  printf '%-38s %7s %8s %6s %s\n' phase wall cpu units result
  local row
  for row in "${phase_rows[@]}"; do echo "$row"; done
  printf '%-38s %6ss\n' total $((SECONDS - run_start))
  echo "load average (1, 5, 15 min): start $load_start, end $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
}
trap 'print_phases; rm -f "$times_file"' EXIT

phase "install packages" bash deploy/install-deps.sh test

# --- plain build ------------------------------------------------------------------------------
phase "configure (gcc RelWithDebInfo)" \
  cmake -S . -B "$build" -DSG_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
phase "build (gcc RelWithDebInfo)" --objects "$build" cmake --build "$build" -j"$jobs"
phase "ctest (gcc RelWithDebInfo)" \
  ctest --test-dir "$build" --output-on-failure -j"$ctest_jobs" --timeout 300

# --- sanitizers and libFuzzer: one build ------------------------------------------------------
# The sanitizer suite and the libFuzzer targets come from ONE clang-14 build, so proxy_core is
# compiled once for both: ASan+UBSan everywhere, libFuzzer's coverage instrumentation on proxy_core
# (SG_FUZZ; the gateway and the tests, which do not link libFuzzer, get the sanitizer runtime's
# no-op coverage hooks), Debug (asserts on) at -O1, the usual optimisation for ASan. The benchmarks
# are not built here (the plain build compiles them; they are never tests). One ctest queue then
# runs every entry under ASan+UBSan with leak checking (SG_TEST_DEADLINE_SCALE=3: the integration
# tests wait three times longer for their conditions, never for a timing under test) and, unless
# SG_SKIP_FUZZ=1, every libFuzzer target for SG_FUZZ_CI_RUNS inputs (60000) or SG_FUZZ_CI_SECONDS
# (20 s), whichever comes first, from the committed seeds with a fixed seed: one queue, so neither
# core idles at the end of a phase. Before, a gcc -O0 ASan build and a clang -O2 fuzz build each
# compiled proxy_core.
san_targets=() san_tests=() fuzz=ON
if [ "${SG_SKIP_SANITIZERS:-0}" != 1 ]; then
  san_targets+=(sessiongate unit_tests fuzz_regression)
else
  san_tests+=(-R '^fuzz\.libfuzzer\.')
fi
if [ "${SG_SKIP_FUZZ:-0}" != 1 ]; then
  san_targets+=(fuzz_targets)
else
  fuzz=OFF san_tests+=(-E '^fuzz\.libfuzzer\.')
fi
if [ ${#san_targets[@]} -gt 0 ]; then
  phase "configure (clang-14 ASan+UBSan+fuzz)" \
    cmake -S . -B "$build-san" -DSG_WERROR=ON -DSG_SANITIZE=ON -DSG_FUZZ="$fuzz" \
    -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS=-O1
  phase "build (clang-14 ASan+UBSan+fuzz)" --objects "$build-san" \
    cmake --build "$build-san" -j"$jobs" --target "${san_targets[@]}"
  phase "ctest (ASan+UBSan suite, libFuzzer)" env ASAN_OPTIONS=detect_leaks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 SG_TEST_DEADLINE_SCALE=3 \
    ctest --test-dir "$build-san" "${san_tests[@]}" --output-on-failure -j"$ctest_jobs" --timeout 300
fi

# ThreadSanitizer (the tsan preset's settings), with SG_WITH_TSAN=1: every gateway the integration
# tests start runs two workers, so state shared between worker threads and the main thread is
# exercised. Measured on the shared 2-core machine under load: build 172 s (154 s CPU), tests
# 114-143 s. tests/tsan.supp lists what is suppressed and why.
if [ "${SG_SKIP_SANITIZERS:-0}" != 1 ] && [ "${SG_WITH_TSAN:-0}" = 1 ]; then
  phase "configure (gcc TSan)" \
    cmake -S . -B "$build-tsan" -DSG_WERROR=ON -DSG_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
  phase "build (gcc TSan)" --objects "$build-tsan" cmake --build "$build-tsan" -j"$jobs"
  phase "ctest (TSan, 2 workers)" \
    env TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp:second_deadlock_stack=1:history_size=4" \
    SG_TEST_WORKERS=2 SG_RSS_GROWTH_LIMIT_KIB=65536 SG_TEST_DEADLINE_SCALE=3 \
    ctest --test-dir "$build-tsan" --output-on-failure -j"$ctest_jobs" --timeout 900
fi
