#!/usr/bin/env bash
# Installs what is missing, builds from scratch with warnings as errors, and runs every test
# (unit, integration and fuzz-regression tests, all registered with ctest), then the same suite
# again on an AddressSanitizer + UndefinedBehaviorSanitizer build (leak checking on), which is
# how memory errors in the connection code would show. `.ci/run` calls exactly this.
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
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$build-asan" --output-on-failure -j2 --timeout 300
fi
