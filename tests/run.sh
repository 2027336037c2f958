#!/usr/bin/env bash
# Installs what is missing, builds from scratch with warnings as errors, and runs every test
# (unit, integration and fuzz-regression tests, all registered with ctest), then the same suite
# again on an AddressSanitizer + UndefinedBehaviorSanitizer build (leak checking on), which is
# how memory errors in the connection code would show, and every libFuzzer target for a fixed
# number of inputs (clang-14). SG_WITH_TSAN=1 adds the suite on a ThreadSanitizer build with two
# workers per gateway (about 5 more minutes: CI leaves it out to stay under 15 minutes; run it
# before changing state shared between threads). `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh test
build=${SG_BUILD_DIR:-build-test}
jobs=$(nproc)

cmake -S . -B "$build" -DSG_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"$jobs"
ctest --test-dir "$build" --output-on-failure -j2 --timeout 300

if [ "${SG_SKIP_SANITIZERS:-0}" != 1 ]; then
  cmake -S . -B "$build-asan" -DSG_WERROR=ON -DSG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  cmake --build "$build-asan" -j"$jobs"
  # SG_TEST_DEADLINE_SCALE: the integration tests wait three times longer for their conditions
  # (never for a timing under test) with these slower gateways.
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 SG_TEST_DEADLINE_SCALE=3 \
    ctest --test-dir "$build-asan" --output-on-failure -j2 --timeout 300
fi

# ThreadSanitizer (the tsan preset's settings), with SG_WITH_TSAN=1: every gateway the integration
# tests start runs two workers, so state shared between worker threads and the main thread is
# exercised. Measured on the shared 2-core machine under load: build 172 s (154 s CPU), tests
# 114-143 s; the whole CI run with it took 16 min 41 s, without it about 12. tests/tsan.supp lists
# what is suppressed and why.
if [ "${SG_SKIP_SANITIZERS:-0}" != 1 ] && [ "${SG_WITH_TSAN:-0}" = 1 ]; then
  cmake -S . -B "$build-tsan" -DSG_WERROR=ON -DSG_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build "$build-tsan" -j"$jobs"
  TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp:second_deadlock_stack=1:history_size=4" \
    SG_TEST_WORKERS=2 SG_RSS_GROWTH_LIMIT_KIB=65536 SG_TEST_DEADLINE_SCALE=3 \
    ctest --test-dir "$build-tsan" --output-on-failure -j2 --timeout 900
fi

# libFuzzer: every target of tests/fuzz/ built with clang-14 and ASan+UBSan, run for a fixed number
# of inputs (SG_FUZZ_CI_RUNS, 60000) or SG_FUZZ_CI_SECONDS (20 s) per target, whichever comes
# first, from the committed seeds with a fixed seed. Only the fuzz targets are built in this directory.
if [ "${SG_SKIP_FUZZ:-0}" != 1 ]; then
  cmake -S . -B "$build-fuzz" -DSG_WERROR=ON -DSG_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14 \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build "$build-fuzz" -j"$jobs" --target fuzz_targets
  ctest --test-dir "$build-fuzz" -R '^fuzz\.libfuzzer\.' --output-on-failure -j2 --timeout 300
fi
