#!/usr/bin/env bash
# Installs what is missing, builds from scratch with warnings as errors, and runs every test
# (unit tests and integration tests, all registered with ctest). `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh test
build=${SG_BUILD_DIR:-build-test}
cmake -S . -B "$build" -DSG_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j2 --timeout 300
