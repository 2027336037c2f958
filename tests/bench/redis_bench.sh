#!/usr/bin/env bash
# The Redis session store against the memory store, in one run, on the same work (issue 6).
# A benchmark that prints figures; not a test (it never fails on a timing).
#
#   bash tests/bench/redis_bench.sh                       # DURATION=5s ROUNDS=5
#   DURATION=3s ROUNDS=3 bash tests/bench/redis_bench.sh  # shorter
#
# Needs (Debian 12): redis-server, redis-tools (redis-cli), nginx (origin), wrk, python3,
# util-linux (taskset), and a built gateway (cmake --build build --target sessiongate).
#
# Environment:
#   DURATION=5s    wrk -d for every measured run
#   ROUNDS=5       rounds per workload, targets alternated (memory redis memory redis ...); medians
#   WARMUP=1s      one unrecorded wrk run per target and workload first
#   CMD_REQUESTS=2000  requests for the Redis-commands-per-request figures
#   SG_BIN         the gateway binary (default build/sessiongate)
#   REDIS_CPU      the CPU for redis-server (default: the gateways' CPU; the load generator's CPU
#                  makes wrk and Redis compete, which inflates the Redis store's tail latency)
#   KEEP_TMP=1     keep the temporary directory (configs, wrk outputs, logs)
#
# Set-up. Origin: nginx (1 worker) answering `return 200` with a 100-byte body. Two gateways run
# side by side, each `[server] workers = 1`, `[log] access = "off"`, idle_timeout 1h (so a returning
# visit needs no refresh): "memory" (the default store) and "redis" (`session.store = "redis"`, a
# local redis-server with persistence off, timeout 50ms). wrk runs on CPU 0; the gateways, the
# origin and redis-server on CPU 1 (with 2 CPUs or more; REDIS_CPU overrides; printed).
# Workloads (wrk -t1 -c50 --latency): keep-alive with a returning session (the cookie fetched from
# each gateway first, sent with -H), keep-alive new visitors (no cookie: one session created per
# request). Figures: requests/s and p50/p99 (medians over the rounds), the redis/memory ratio.
# Redis commands per request: `redis-cli INFO commandstats` before and after CMD_REQUESTS
# returning-visit requests on one keep-alive connection (and as many new visitors), INFO itself
# excluded; cross-checked with the gateway's sessiongate_redis_commands_total.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-1s}
CMD_REQUESTS=${CMD_REQUESTS:-2000}
SG_BIN=${SG_BIN:-$root/build/sessiongate}

start_time=$(date +%s)
log() { printf '[%4ds] %s\n' $(($(date +%s) - start_time)) "$*" >&2; }

missing=()
for tool in redis-server redis-cli nginx wrk python3 taskset; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[[ -x $SG_BIN ]] || missing+=("$SG_BIN (cmake --build build --target sessiongate)")
if ((${#missing[@]})); then
  echo "redis_bench.sh: missing: ${missing[*]}" >&2
  exit 2
fi
NGINX=$(command -v nginx)
ulimit -n "$(ulimit -Hn)" 2>/dev/null

if (($(nproc) >= 2)); then LOAD_CPU=0 SRV_CPU=1; else LOAD_CPU=0 SRV_CPU=0; fi
PIN_LOAD=(taskset -c "$LOAD_CPU")
PIN_SRV=(taskset -c "$SRV_CPU")
REDIS_CPU=${REDIS_CPU:-$SRV_CPU}

tmp=$(mktemp -d /tmp/sg-redis-bench.XXXXXX)
chmod 755 "$tmp"
mkdir -p "$tmp/out" "$tmp/temp"
pids=()

stop_pid() {  # pid: SIGTERM, wait up to 10 s, then SIGKILL
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
cleanup() {
  local pid
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  if [[ ${KEEP_TMP:-0} == 1 ]]; then log "temporary files kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
helper=$tmp/helper.py
cat >"$helper" <<'PY'
import re, socket, statistics, sys, time

def free_ports(n):
    socks = [socket.socket() for _ in range(int(n))]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()

def wait_http(port, path, timeout):
    end = time.time() + float(timeout)
    while time.time() < end:
        try:
            s = socket.create_connection(("127.0.0.1", int(port)), timeout=1)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = s.recv(100)
            s.close()
            if data.startswith(b"HTTP/1.1 200"):
                return 0
        except OSError:
            pass
        time.sleep(0.05)
    return 1

def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:] if ":" in l]
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in body")
        rest += chunk
    return status, headers, rest[length:]

def request(cookie):
    r = "GET / HTTP/1.1\r\nHost: bench\r\n"
    if cookie:
        r += f"Cookie: {cookie}\r\n"
    return (r + "\r\n").encode()

def get_cookie(port):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    s.sendall(request(""))
    status, headers, _ = read_response(s, b"")
    s.close()
    print(next((v.split(";", 1)[0].strip() for k, v in headers if k.lower() == "set-cookie"), ""))

def keepalive(port, n, cookie):
    """n requests on one keep-alive connection, one after another; prints a summary."""
    n = int(n)
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=60)
    req = request(cookie)
    buf, bad, cookies = b"", 0, 0
    for _ in range(n):
        s.sendall(req)
        status, headers, buf = read_response(s, buf)
        bad += status != 200
        cookies += any(k.lower() == "set-cookie" for k, v in headers)
    s.close()
    print(f"{n} requests, {bad} not 200, {cookies} with Set-Cookie")

def commandstats(path):
    """{command: calls} from `INFO commandstats` output."""
    out = {}
    for line in open(path):
        m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out

def cmd_delta(before, after, n):
    b, a = commandstats(before), commandstats(after)
    delta = {k: a.get(k, 0) - b.get(k, 0) for k in set(a) | set(b)}
    delta = {k: v for k, v in delta.items() if v and k != "info"}
    total = sum(delta.values())
    detail = " ".join(f"{k}={v}" for k, v in sorted(delta.items()))
    print(f"{total / int(n):.3f} {detail or '-'}")

def scrape(port):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    return data.decode().partition("\r\n\r\n")[2].splitlines()

def metric(port, name):
    for line in scrape(port):
        if line.startswith(name + " ") or line.startswith(name + "{"):
            print(line.rsplit(" ", 1)[1])
            return
    print("nan")

def redis_metrics(port):
    """The gateway's Redis counters (errors by kind, reconnects, store errors), one line."""
    keep = ("sessiongate_redis_errors_total", "sessiongate_redis_reconnects_total",
            "sessiongate_store_errors_total", "sessiongate_redis_commands_total")
    print(", ".join(l for l in scrape(port) if l.startswith(keep)))

UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}

def parse_wrk(path):
    """Prints: requests rps p50_us p99_us socket_errors non2xx."""
    text = open(path, errors="replace").read()
    def grab(pattern, conv=float, default=float("nan")):
        m = re.search(pattern, text, re.M)
        return conv(m.group(1)) if m else default
    def dur(t):
        m = re.fullmatch(r"([\d.]+)(us|ms|s)", t)
        return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors = sum(int(x) for x in m.groups())
    print(grab(r"^\s*(\d+) requests in", int, 0), grab(r"^Requests/sec:\s*([\d.]+)"),
          grab(r"^\s*50%\s+(\S+)", dur), grab(r"^\s*99%\s+(\S+)", dur), errors,
          grab(r"Non-2xx or 3xx responses:\s*(\d+)", int, 0))

def median(*xs):
    xs = [float(x) for x in xs if x != "nan"]
    print(f"{statistics.median(xs):.1f}" if xs else "nan")

def ratio(a, b):
    print(f"{float(a) / float(b):.2f}" if float(b) else "nan")

if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"free_ports": lambda: free_ports(*args), "wait_http": lambda: sys.exit(wait_http(*args)),
     "get_cookie": lambda: get_cookie(*args), "keepalive": lambda: keepalive(*args),
     "cmd_delta": lambda: cmd_delta(*args), "metric": lambda: metric(*args),
     "redis_metrics": lambda: redis_metrics(*args),
     "parse_wrk": lambda: parse_wrk(*args), "median": lambda: median(*args),
     "ratio": lambda: ratio(*args)}[cmd]()
PY
py() { python3 "$helper" "$@"; }

read -r P_ORIGIN P_MEM P_REDIS P_REDIS_ADMIN P_RS < <(py free_ports 5)
body=$(printf '%-99s' 'sessiongate benchmark origin: the same fixed body for every target')

cat >"$tmp/origin.conf" <<EOF
worker_processes 1;
daemon off;
error_log $tmp/origin.err warn;
pid $tmp/origin.pid;
$( ((EUID == 0)) && echo 'user root;')
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/temp/body;
  proxy_temp_path $tmp/temp/proxy;
  fastcgi_temp_path $tmp/temp/fastcgi;
  uwsgi_temp_path $tmp/temp/uwsgi;
  scgi_temp_path $tmp/temp/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:$P_ORIGIN backlog=4096;
    location / { return 200 "$body\n"; }
  }
}
EOF

gateway_conf() {  # file port store [admin-port]
  cat >"$1" <<EOF
[server]
listen = ["127.0.0.1:$2"]
workers = 1
[upstream]
servers = ["127.0.0.1:$P_ORIGIN"]
[session]
store = "$3"
idle_timeout = "1h"
[log]
level = "warn"
access = "off"
EOF
  if [[ $3 == redis ]]; then
    cat >>"$1" <<EOF
[store.redis]
address = "127.0.0.1:$P_RS"
key_prefix = "bench:"
timeout = "50ms"
[admin]
listen = "127.0.0.1:$4"
EOF
  fi
}
gateway_conf "$tmp/memory.toml" "$P_MEM" memory
gateway_conf "$tmp/redis.toml" "$P_REDIS" redis "$P_REDIS_ADMIN"

log "CPUs: load generator on $LOAD_CPU, gateways and origin on $SRV_CPU, redis-server on $REDIS_CPU"
taskset -c "$REDIS_CPU" redis-server --port "$P_RS" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --dir "$tmp" --loglevel warning >"$tmp/redis.log" 2>&1 &
pids+=($!)
"${PIN_SRV[@]}" "$NGINX" -c "$tmp/origin.conf" -e "$tmp/origin.err" >"$tmp/origin.log" 2>&1 &
pids+=($!)
for t in memory redis; do
  "${PIN_SRV[@]}" "$SG_BIN" --config "$tmp/$t.toml" >"$tmp/$t.out" 2>"$tmp/$t.err" &
  pids+=($!)
done
for p in "$P_ORIGIN" "$P_MEM" "$P_REDIS"; do
  if ! py wait_http "$p" /healthz 10; then
    log "port $p did not answer; logs in $tmp"
    KEEP_TMP=1
    exit 1
  fi
done
for i in $(seq 100); do
  [[ $(redis-cli -p "$P_RS" ping 2>/dev/null) == PONG ]] && break
  sleep 0.05
done
py wait_http "$P_REDIS" /readyz 10 || log "the redis gateway is not ready (continuing)"

declare -A PORT=([memory]=$P_MEM [redis]=$P_REDIS)
declare -A COOKIE
for t in memory redis; do
  COOKIE[$t]=$(py get_cookie "${PORT[$t]}")
  log "$t: returning cookie ${COOKIE[$t]:0:16}..."
done

# ---------------------------------------------------------------------------------------------
# Throughput, alternated rounds.
run_wrk() {  # target workload duration out
  local t=$1 w=$2 d=$3 out=$4 hdr=()
  [[ $w == ka-session ]] && hdr=(-H "Cookie: ${COOKIE[$t]}")
  "${PIN_LOAD[@]}" wrk -t1 -c50 -d"$d" --latency "${hdr[@]}" "http://127.0.0.1:${PORT[$t]}/" >"$out" 2>&1
}

declare -A RPS P50 P99 BAD
for w in ka-session ka-new; do
  for t in memory redis; do run_wrk "$t" "$w" "$WARMUP" /dev/null; done
  for ((r = 1; r <= ROUNDS; r++)); do
    for t in memory redis; do
      out="$tmp/out/$w-$t-$r.txt"
      run_wrk "$t" "$w" "$DURATION" "$out"
      read -r n rps p50 p99 errs non2xx < <(py parse_wrk "$out")
      RPS[$w,$t]+="$rps "
      P50[$w,$t]+="$p50 "
      P99[$w,$t]+="$p99 "
      BAD[$w,$t]=$((${BAD[$w,$t]:-0} + errs + non2xx))
      log "$w round $r $t: $rps req/s (p50 ${p50} us, p99 ${p99} us, $errs socket errors, $non2xx non-2xx)"
    done
  done
done

# ---------------------------------------------------------------------------------------------
# Redis commands per request.
cmds() {  # label cookie
  local before=$tmp/cs-before-$1.txt after=$tmp/cs-after-$1.txt m0 m1 summary
  m0=$(py metric "$P_REDIS_ADMIN" sessiongate_redis_commands_total)
  redis-cli -p "$P_RS" INFO commandstats >"$before"
  summary=$(py keepalive "$P_REDIS" "$CMD_REQUESTS" "$2")
  redis-cli -p "$P_RS" INFO commandstats >"$after"
  m1=$(py metric "$P_REDIS_ADMIN" sessiongate_redis_commands_total)
  read -r per detail < <(py cmd_delta "$before" "$after" "$CMD_REQUESTS")
  CMD_PER[$1]=$per
  CMD_DETAIL[$1]="$detail"
  CMD_METRIC[$1]=$(python3 -c "print(f'{($m1 - $m0) / $CMD_REQUESTS:.3f}')")
  log "$1: $summary; Redis: $per commands/request ($detail); gateway metric ${CMD_METRIC[$1]}/request"
}
declare -A CMD_PER CMD_DETAIL CMD_METRIC
returning=$(py get_cookie "$P_REDIS")
cmds returning "$returning"
cmds new ""

# ---------------------------------------------------------------------------------------------
echo
echo "## Redis store vs memory store ($(date -u +%F), $(nproc) CPUs (wrk on $LOAD_CPU, gateways + origin on $SRV_CPU, redis on $REDIS_CPU), wrk -t1 -c50 -d$DURATION, $ROUNDS alternated rounds, medians)"
echo
printf '| %-23s | %12s | %12s | %9s | %9s | %9s | %9s | %9s | %8s | %8s |\n' workload "memory req/s" "redis req/s" \
  "redis/mem" "mem p50" "redis p50" "mem p99" "redis p99" "mem bad" "redis bad"
printf '|%s|\n' "-------------------------|--------------|--------------|-----------|-----------|-----------|-----------|-----------|----------|-----------"
for w in ka-session ka-new; do
  m=$(py median ${RPS[$w,memory]})
  rd=$(py median ${RPS[$w,redis]})
  printf '| %-23s | %12s | %12s | %9s | %6s us | %6s us | %6s us | %6s us | %8s | %8s |\n' \
    "$([[ $w == ka-session ]] && echo 'keep-alive, returning' || echo 'keep-alive, new visitor')" \
    "$m" "$rd" "$(py ratio "$rd" "$m")" "$(py median ${P50[$w,memory]})" "$(py median ${P50[$w,redis]})" \
    "$(py median ${P99[$w,memory]})" "$(py median ${P99[$w,redis]})" "${BAD[$w,memory]}" "${BAD[$w,redis]}"
done
echo
echo "Redis commands per request ($CMD_REQUESTS requests on one keep-alive connection, INFO excluded):"
echo "- returning visit, no refresh due: ${CMD_PER[returning]} (${CMD_DETAIL[returning]}); gateway's own count ${CMD_METRIC[returning]} (goal: at most 1)"
echo "- new visitor:                     ${CMD_PER[new]} (${CMD_DETAIL[new]}); gateway's own count ${CMD_METRIC[new]}"
echo
echo "bad = socket errors + non-2xx over all rounds; the Redis gateway's non-2xx are 503s (fail_closed: a"
echo "Redis command unanswered within the 50 ms timeout). Gateway Redis counters at the end:"
echo "  $(py redis_metrics "$P_REDIS_ADMIN")"
