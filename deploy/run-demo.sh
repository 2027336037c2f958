#!/usr/bin/env bash
# Installs what is missing, builds, and runs the gateway with the shipped gateway.toml in front
# of the bundled demo application (deploy/demo/app.py on 127.0.0.1:9000).
# Then open http://127.0.0.1:8080/ ; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh run
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target sessiongate
python3 deploy/demo/app.py --port 9000 &
demo=$!
trap 'kill $demo 2>/dev/null || true' EXIT
# The gateway answers 502 until the application listens: wait for it (10 s at most).
for _ in $(seq 100); do
  kill -0 $demo 2>/dev/null || { echo "run-demo: the demo app exited (is port 9000 in use?)" >&2; exit 1; }
  curl -fs -o /dev/null http://127.0.0.1:9000/whoami && break
  sleep 0.1
done
echo "demo app on 127.0.0.1:9000 (pid $demo); gateway on http://127.0.0.1:8080/"
echo "log in as alice / wonderland or bob / builder"
build/sessiongate --config gateway.toml
