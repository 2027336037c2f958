#!/usr/bin/env bash
# Slow-client attacks with slowhttptest (not in CI): slowloris (-H), slow body (-B) and slow read
# (-X), one after another, against a 2-worker gateway in front of the Python test upstream
# (tests/integration/upstream.py). During each attack a normal client makes one request every
# 100 ms on a fresh connection (latency and failures counted) and the gateway's RSS and open
# descriptors are sampled every second. Prints one summary line per attack.
#
#   tests/bench/slowhttp.sh
#
# Environment: SESSIONGATE_BIN (default build-soak/sessiongate, configured and built here),
# SLOW_CONNS (connections per attack, 1000), SLOW_RATE (new connections per second, 200),
# SLOW_SECONDS (length of each attack, 60), SLOW_ATTACKS (default "slowloris slowbody slowread"),
# KEEP_TMP=1 keeps the temporary directory.
#
# What the gateway is expected to do: slowloris connections are closed at limits.header_timeout
# (10 s by default); slow bodies and slow readers cost one connection each (event loop, bounded
# buffers) and do not delay other clients; RSS stays bounded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_lib.sh"

conns=${SLOW_CONNS:-1000}
rate=${SLOW_RATE:-200}
seconds=${SLOW_SECONDS:-60}
if [[ -z ${SESSIONGATE_BIN:-} ]]; then
  cmake -S "$root" -B "$root/build-soak" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSG_WERROR=ON >/dev/null
  cmake --build "$root/build-soak" -j2 --target sessiongate >/dev/null
  SESSIONGATE_BIN=$root/build-soak/sessiongate
fi
SG_BIN=$SESSIONGATE_BIN
bench_require slowhttp.sh slowhttptest python3
ulimit -n "$(ulimit -Hn)"  # the attacks hold thousands of sockets: client side, gateway and upstream

bench_tmpdir sg-slowhttp
bench_helper <<'PY'
import threading

def rss_fds(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))

def timed_get(port):
    """(seconds, None) for a 200 to GET /echo on a fresh connection (5 s timeout), else (None, why)."""
    start = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
        status, _, _ = read_response(s, b"")
        s.close()
        return (time.monotonic() - start, None) if status == 200 else (None, str(status))
    except (OSError, ValueError) as e:
        return None, type(e).__name__

def probe(port, pid, seconds, label, upstream_port):
    """A normal client during an attack: GET /echo through the gateway every 100 ms, and the same
    straight to the upstream (to tell the gateway's delay from the upstream's), and the gateway's
    RSS/fds every second. Prints one summary line."""
    end = time.monotonic() + float(seconds)
    lat, failures, samples = [], [], []
    stop = threading.Event()
    def sampler():
        while not stop.is_set():
            try:
                samples.append(rss_fds(pid))
            except (OSError, StopIteration):
                pass
            stop.wait(1.0)
    t = threading.Thread(target=sampler, daemon=True)
    t.start()
    direct = []
    while time.monotonic() < end:
        start = time.monotonic()
        took, why = timed_get(port)
        if took is None:
            failures.append(why)
        else:
            lat.append(took)
        took, _ = timed_get(upstream_port)
        if took is not None:
            direct.append(took)
        time.sleep(max(0.0, 0.1 - (time.monotonic() - start)))
    stop.set()
    t.join()
    lat.sort()
    direct.sort()
    q = lambda p, v=lat: v[min(len(v) - 1, int(p * len(v)))] * 1000 if v else float("nan")
    rss = [r for r, _ in samples] or [0]
    fds = [f for _, f in samples] or [0]
    kinds = {k: failures.count(k) for k in sorted(set(failures))}
    print(f"{label:<10} probe ok {len(lat)}/{len(lat) + len(failures)} {kinds or ''}  "
          f"latency p50 {q(0.5):.1f} ms p99 {q(0.99):.1f} ms max {q(1.0):.1f} ms "
          f"(upstream direct p50 {q(0.5, direct):.1f} p99 {q(0.99, direct):.1f})  "
          f"RSS KiB start {rss[0]} max {max(rss)} end {rss[-1]}  fds max {max(fds)}")

def attack_stats(csv_path):
    """Prints the peak of slowhttptest's connected sockets and its own availability verdict."""
    connected, unavailable, rows = 0, 0, 0
    try:
        lines = open(csv_path).read().splitlines()[1:]
    except OSError:
        print("no csv")
        return
    for line in lines:
        f = line.split(",")
        if len(f) < 5:
            continue
        rows += 1
        connected = max(connected, int(f[3]))
        # slowhttptest's own probe: the target connection count while it is answered, 0 when
        # it got no answer within -p seconds.
        unavailable += f[4].strip() in ("0", "NO")
    print(f"attacker peak connected {connected}, attack lasted {rows} s (slowhttptest stops early "
          f"when the server has closed all its connections), its probe saw the service unavailable "
          f"in {unavailable} of those seconds")

COMMANDS.update(probe=probe, attack_stats=attack_stats)
PY

read -r P_GW P_UP < <(py free_ports 2)
python3 "$root/tests/integration/upstream.py" --port "$P_UP" >"$tmp/upstream.log" 2>&1 &
pids+=($!)
py wait_port "$P_UP" 10 || { echo "upstream did not start" >&2; exit 1; }
cat >"$tmp/gateway.toml" <<EOF
[server]
listen = ["127.0.0.1:$P_GW"]
workers = 2
[upstream]
servers = ["127.0.0.1:$P_UP"]
[log]
access = "off"
level = "warn"
EOF
"$SG_BIN" --config "$tmp/gateway.toml" >"$tmp/gateway.out" 2>"$tmp/gateway.err" &
gw_pid=$!
pids+=("$gw_pid")
py wait_port "$P_GW" 10 || { echo "gateway did not start" >&2; cat "$tmp/gateway.err" >&2; exit 1; }
log "gateway pid $gw_pid on :$P_GW (2 workers), upstream :$P_UP; $conns connections at $rate/s, ${seconds}s per attack"

py probe "$P_GW" "$gw_pid" 10 baseline "$P_UP" | tee "$tmp/summary"
base="http://127.0.0.1:$P_GW"
attack() {  # label slowhttptest-options...
  local label=$1
  shift
  slowhttptest "$@" -c "$conns" -r "$rate" -l "$seconds" -p 5 -g -o "$tmp/$label" >"$tmp/$label.log" 2>&1 &
  local spid=$!
  pids+=("$spid")
  sleep 2  # let the attack ramp up before the probe starts (a figure, not a synchronisation)
  py probe "$P_GW" "$gw_pid" "$((seconds - 4))" "$label" "$P_UP" | tee -a "$tmp/summary"
  wait "$spid" || true
  printf '%-10s ' "" | tee -a "$tmp/summary"
  py attack_stats "$tmp/$label.csv" | tee -a "$tmp/summary"
  kill -0 "$gw_pid" 2>/dev/null || { echo "THE GATEWAY DIED during $label" | tee -a "$tmp/summary"; exit 1; }
}
for a in ${SLOW_ATTACKS:-slowloris slowbody slowread}; do
  case $a in
    slowloris) attack slowloris -H -i 5 -x 24 -u "$base/echo" ;;
    slowbody) attack slowbody -B -i 5 -x 10 -s 65536 -u "$base/upload" ;;
    slowread) attack slowread -X -k 4 -n 1 -w 1 -y 256 -z 64 -u "$base/bytes?n=1048576" ;;
    *) echo "unknown attack $a" >&2; exit 2 ;;
  esac
done
py probe "$P_GW" "$gw_pid" 10 after "$P_UP" | tee -a "$tmp/summary"
kill -TERM "$gw_pid"
rc=0
wait "$gw_pid" || rc=$?
echo "gateway exit code after SIGTERM: $rc" | tee -a "$tmp/summary"
