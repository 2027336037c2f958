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
#   SG_BIN_B       a second gateway build with the Redis store, target "redis-b" in the wrk
#                  workloads (A/B in one run: alternated with the others, its own key_prefix on the
#                  same redis-server); the commands-per-request figures stay the first build's
#   REDIS_CPU      the CPU for redis-server (default: the gateways' CPU; the load generator's CPU
#                  makes wrk and Redis compete, which inflates the Redis store's tail latency)
#   KEEP_TMP=1     keep the temporary directory (configs, wrk outputs, logs)
#
# Set-up. Origin: nginx (1 worker) answering `return 200` with a 100-byte body. Three gateways run
# side by side, each `[server] workers = 1`, `[log] access = "off"`, idle_timeout 1h (so a returning
# visit needs no refresh): "memory" (the default store), "redis" (`session.store = "redis"`, a
# local redis-server with persistence off, timeout 50ms, the default local_cache of 1s) and
# "redis-0" (the same with local_cache = "0s": one HGETALL per returning visit; own key_prefix). wrk runs on CPU 0; the gateways, the
# origin and redis-server on CPU 1 (with 2 CPUs or more; REDIS_CPU overrides; printed).
# Workloads (wrk -t1 -c50 --latency): keep-alive with a returning session (the cookie fetched from
# each gateway first, sent with -H), keep-alive new visitors (no cookie: one session created per
# request). Figures: requests/s and p50/p99 (medians over the rounds), the redis/memory ratio, and
# CPU microseconds per request (utime+stime from /proc/PID/stat over the run / requests) of the
# gateway and, for the Redis targets, of redis-server (which shares the gateways' CPU by default:
# on a loaded machine these say more than requests/s).
# Redis commands per request: `redis-cli INFO commandstats` before and after CMD_REQUESTS
# returning-visit requests on one keep-alive connection (redis and redis-0; and as many new
# visitors), INFO itself
# excluded, commands run inside a script not counted again; cross-checked with the gateway's
# sessiongate_redis_commands_total.
# Sources bench_lib.sh (this folder) for the parts shared with the other benchmark scripts.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_lib.sh"  # root, log, stop_pid, py, the Python helper, the configuration pieces
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-1s}
CMD_REQUESTS=${CMD_REQUESTS:-2000}
SG_BIN=${SG_BIN:-$root/build/sessiongate}
SG_BIN_B=${SG_BIN_B:-}
TARGETS=(memory redis redis-0 ${SG_BIN_B:+redis-b})

bench_require redis_bench.sh redis-server redis-cli nginx wrk python3 taskset
NGINX=$(command -v nginx)
ulimit -n "$(ulimit -Hn)" 2>/dev/null

bench_pin_cpus
REDIS_CPU=${REDIS_CPU:-$SRV_CPU}
bench_tmpdir sg-redis-bench out temp

# ---------------------------------------------------------------------------------------------
bench_helper <<'PY'
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

def keepalive(port, n, cookie):
    """n requests on one keep-alive connection, one after another; prints a summary."""
    bad, cookies = keepalive_run(port, n, cookie, "bench", 60)
    print(f"{int(n)} requests, {bad} not 200, {cookies} with Set-Cookie")

def commandstats(path):
    """{command: calls} from `INFO commandstats` output."""
    out = {}
    for line in open(path):
        m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out

# Commands a Lua script runs count in INFO commandstats as well (evalsha=1 plus its hset, exists,
# pexpire, ...): the total sent over the network is the commands outside scripts plus one per
# script call. The store's scripts call only these (redis_scripts.cc); a top-level HGETALL is
# counted as sent only when no script ran (true in this benchmark: no refresh is ever due).
SCRIPT_INNER = {"exists", "hset", "hdel", "hgetall", "hmget", "hexists", "pexpire", "rename", "type",
                "del"}

def cmd_delta(before, after, n):
    b, a = commandstats(before), commandstats(after)
    delta = {k: a.get(k, 0) - b.get(k, 0) for k in set(a) | set(b)}
    delta = {k: v for k, v in delta.items() if v and k != "info"}
    scripted = any(k.startswith("eval") for k in delta)
    total = sum(v for k, v in delta.items() if not (scripted and k in SCRIPT_INNER))
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

COMMANDS.update({"wait_http": wait_http, "keepalive": keepalive, "cmd_delta": cmd_delta,
                 "metric": metric, "redis_metrics": redis_metrics})
PY

read -r P_ORIGIN P_MEM P_REDIS P_REDIS_ADMIN P_RS P_REDIS_B P_REDIS_B_ADMIN P_REDIS_0 P_REDIS_0_ADMIN \
  < <(py free_ports 9)
body=$(printf '%-99s' 'sessiongate benchmark origin: the same fixed body for every target')
write_origin_conf "$tmp/origin.conf" origin "$P_ORIGIN" 4096

gateway_conf() {  # file port store [admin-port [key-prefix [local-cache]]]
  {
    gateway_toml "$2" "$P_ORIGIN"
    cat <<EOF
[session]
store = "$3"
idle_timeout = "1h"
EOF
  } >"$1"
  if [[ $3 == redis ]]; then
    cat >>"$1" <<EOF
[store.redis]
address = "127.0.0.1:$P_RS"
key_prefix = "${5:-bench:}"
timeout = "50ms"
local_cache = "${6:-1s}"
[admin]
listen = "127.0.0.1:$4"
EOF
  fi
}
gateway_conf "$tmp/memory.toml" "$P_MEM" memory
gateway_conf "$tmp/redis.toml" "$P_REDIS" redis "$P_REDIS_ADMIN"
gateway_conf "$tmp/redis-b.toml" "$P_REDIS_B" redis "$P_REDIS_B_ADMIN" "benchb:"
gateway_conf "$tmp/redis-0.toml" "$P_REDIS_0" redis "$P_REDIS_0_ADMIN" "bench0:" 0s

log "CPUs: load generator on $LOAD_CPU, gateways and origin on $SRV_CPU, redis-server on $REDIS_CPU"
taskset -c "$REDIS_CPU" redis-server --port "$P_RS" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --dir "$tmp" --loglevel warning >"$tmp/redis.log" 2>&1 &
pids+=($!)
REDIS_PID=$!
"${PIN_SRV[@]}" "$NGINX" -c "$tmp/origin.conf" -e "$tmp/origin.err" >"$tmp/origin.log" 2>&1 &
pids+=($!)
declare -A PID BIN=([memory]=$SG_BIN [redis]=$SG_BIN [redis-0]=$SG_BIN [redis-b]=$SG_BIN_B)
for t in "${TARGETS[@]}"; do
  "${PIN_SRV[@]}" "${BIN[$t]}" --config "$tmp/$t.toml" >"$tmp/$t.out" 2>"$tmp/$t.err" &
  pids+=($!)
  PID[$t]=$!
done
for p in "$P_ORIGIN" "$P_MEM" "$P_REDIS" "$P_REDIS_0" ${SG_BIN_B:+"$P_REDIS_B"}; do
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
py wait_http "$P_REDIS_0" /readyz 10 || log "redis-0 is not ready (continuing)"
[[ -n $SG_BIN_B ]] && { py wait_http "$P_REDIS_B" /readyz 10 || log "redis-b is not ready (continuing)"; }

declare -A PORT=([memory]=$P_MEM [redis]=$P_REDIS [redis-0]=$P_REDIS_0 [redis-b]=$P_REDIS_B)
declare -A COOKIE
for t in "${TARGETS[@]}"; do
  COOKIE[$t]=$(py get_cookie "${PORT[$t]}" bench)
  log "$t: returning cookie ${COOKIE[$t]:0:16}..."
done

# ---------------------------------------------------------------------------------------------
# Throughput, alternated rounds.
run_wrk() {  # target workload duration out
  local t=$1 w=$2 d=$3 out=$4 hdr=()
  [[ $w == ka-session ]] && hdr=(-H "Cookie: ${COOKIE[$t]}")
  bench_wrk "$out" "http://127.0.0.1:${PORT[$t]}/" "$d" 50 "${hdr[@]}"
}

cpu_us() {  # ticks-before ticks-after requests: CPU microseconds per request
  python3 -c "import os,sys; b,a,n=map(float,sys.argv[1:]); print(f'{(a-b)*1e6/os.sysconf(\"SC_CLK_TCK\")/n:.2f}' if n else 'nan')" "$@"
}

declare -A RPS P50 P99 BAD CPU RCPU
for w in ka-session ka-new; do
  for t in "${TARGETS[@]}"; do run_wrk "$t" "$w" "$WARMUP" /dev/null; done
  for ((r = 1; r <= ROUNDS; r++)); do
    for t in "${TARGETS[@]}"; do
      out="$tmp/out/$w-$t-$r.txt"
      g0=$(py ticks "${PID[$t]}")
      r0=$(py ticks "$REDIS_PID")
      run_wrk "$t" "$w" "$DURATION" "$out"
      g1=$(py ticks "${PID[$t]}")
      r1=$(py ticks "$REDIS_PID")
      read -r n rps p50 p99 errs non2xx < <(py parse_wrk "$out")
      CPU[$w,$t]+="$(cpu_us "$g0" "$g1" "$n") "
      [[ $t != memory ]] && RCPU[$w,$t]+="$(cpu_us "$r0" "$r1" "$n") "
      RPS[$w,$t]+="$rps "
      P50[$w,$t]+="$p50 "
      P99[$w,$t]+="$p99 "
      BAD[$w,$t]=$((${BAD[$w,$t]:-0} + errs + non2xx))
      log "$w round $r $t: $rps req/s (p50 ${p50} us, p99 ${p99} us, $errs socket errors, $non2xx non-2xx; CPU/request: gateway $(echo ${CPU[$w,$t]} | awk '{print $NF}') us${RCPU[$w,$t]:+, redis-server $(echo ${RCPU[$w,$t]} | awk '{print $NF}') us})"
    done
  done
done

# ---------------------------------------------------------------------------------------------
# Redis commands per request.
cmds() {  # label cookie port admin-port
  local before=$tmp/cs-before-$1.txt after=$tmp/cs-after-$1.txt m0 m1 summary
  m0=$(py metric "$4" sessiongate_redis_commands_total)
  redis-cli -p "$P_RS" INFO commandstats >"$before"
  summary=$(py keepalive "$3" "$CMD_REQUESTS" "$2")
  redis-cli -p "$P_RS" INFO commandstats >"$after"
  m1=$(py metric "$4" sessiongate_redis_commands_total)
  read -r per detail < <(py cmd_delta "$before" "$after" "$CMD_REQUESTS")
  CMD_PER[$1]=$per
  CMD_DETAIL[$1]="$detail"
  CMD_METRIC[$1]=$(python3 -c "print(f'{($m1 - $m0) / $CMD_REQUESTS:.3f}')")
  log "$1: $summary; Redis: $per commands/request ($detail); gateway metric ${CMD_METRIC[$1]}/request"
}
declare -A CMD_PER CMD_DETAIL CMD_METRIC
cmds returning "$(py get_cookie "$P_REDIS" bench)" "$P_REDIS" "$P_REDIS_ADMIN"
cmds returning-0 "$(py get_cookie "$P_REDIS_0" bench)" "$P_REDIS_0" "$P_REDIS_0_ADMIN"
cmds new "" "$P_REDIS" "$P_REDIS_ADMIN"

# ---------------------------------------------------------------------------------------------
echo
echo "## Redis store vs memory store ($(date -u +%F), $(nproc) CPUs (wrk on $LOAD_CPU, gateways + origin on $SRV_CPU, redis on $REDIS_CPU), wrk -t1 -c50 -d$DURATION, $ROUNDS alternated rounds, medians)"
[[ -n $SG_BIN_B ]] && echo "redis: $SG_BIN; redis-b: $SG_BIN_B"
echo
printf '| %-23s | %-7s | %9s | %7s | %8s | %8s | %12s | %12s | %6s |\n' workload target "req/s" "/memory" \
  "p50" "p99" "gateway CPU" "redis CPU" "bad"
printf '|%s|\n' "-------------------------|---------|-----------|---------|----------|----------|--------------|--------------|--------"
for w in ka-session ka-new; do
  m=$(py median ${RPS[$w,memory]})
  for t in "${TARGETS[@]}"; do
    rd=$(py median ${RPS[$w,$t]})
    rc=-
    [[ $t != memory ]] && rc="$(py median ${RCPU[$w,$t]}) us/req"
    printf '| %-23s | %-7s | %9s | %7s | %5s us | %5s us | %5s us/req | %12s | %6s |\n' \
      "$([[ $w == ka-session ]] && echo 'keep-alive, returning' || echo 'keep-alive, new visitor')" \
      "$t" "$rd" "$(py ratio "$rd" "$m")" "$(py median ${P50[$w,$t]})" "$(py median ${P99[$w,$t]})" \
      "$(py median ${CPU[$w,$t]})" "$rc" "${BAD[$w,$t]}"
  done
done
echo
echo "CPU: utime+stime per request of the gateway process and of redis-server over each run (medians)."
echo
echo "Redis commands per request ($CMD_REQUESTS requests on one keep-alive connection, INFO excluded):"
echo "- returning visit, no refresh due: ${CMD_PER[returning]} (${CMD_DETAIL[returning]}); gateway's own count ${CMD_METRIC[returning]} (goal: at most 1; the local cache answers most)"
echo "- the same with local_cache = 0s:  ${CMD_PER[returning-0]} (${CMD_DETAIL[returning-0]}); gateway's own count ${CMD_METRIC[returning-0]}"
echo "- new visitor:                     ${CMD_PER[new]} (${CMD_DETAIL[new]}, the script's inner commands listed too); gateway's own count ${CMD_METRIC[new]}"
echo
echo "bad = socket errors + non-2xx over all rounds; the Redis gateway's non-2xx are 503s (fail_closed: a"
echo "Redis command unanswered within the 50 ms timeout). Gateway Redis counters at the end:"
echo "  $(py redis_metrics "$P_REDIS_ADMIN")"
