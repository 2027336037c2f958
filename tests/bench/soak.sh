#!/usr/bin/env bash
# Soak test (not in CI): N minutes (default 30) of mixed, checked traffic against a two-worker
# gateway in front of a test upstream that is killed and restarted every few minutes; prints the
# totals, unexplained errors, RSS start/end/max and the gateway's metrics. See soak.py for details.
#
#   tests/bench/soak.sh [--minutes 30] [--clients 6] [--slow-clients 1] [--restart-every 180]
#                       [--restart-gap 2] [--workers 2]
#
# Environment: SESSIONGATE_BIN (default: build-soak/sessiongate, configured and built here),
# SG_SOAK_DIR (work dir for upstream log and rss.tsv; default /tmp/sg-soak-PID), SG_KEEP_LOGS=1
# keeps the gateway's temporary directory (config, stderr) even after a clean run.
# Exit status 0 when no error was left unexplained by the injected upstream outages.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${SESSIONGATE_BIN:-}" ]; then
  cmake -S . -B build-soak -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSG_WERROR=ON >/dev/null
  cmake --build build-soak -j2 --target sessiongate >/dev/null
  export SESSIONGATE_BIN=$PWD/build-soak/sessiongate
fi
exec python3 -u tests/bench/soak.py "$@"
