#!/usr/bin/env bash
# HTTP/2 over TLS: sessiongate against nginx and HAProxy, same origin, same run (issue 18).
#
#   bash tests/bench/h2_bench.sh                       # DURATION=5s ROUNDS=3
#   DURATION=3s ROUNDS=5 bash tests/bench/h2_bench.sh
#
# Not a test: it prints figures and never fails on a timing. Needs nginx (ssl, http2 and userid
# modules, as Debian's nginx-light), haproxy, h2load (nghttp2-client), openssl, python3, taskset
# and a built gateway (cmake --build build --target sessiongate).
#
# Environment:
#   DURATION=5s   h2load -D of every measured run
#   ROUNDS=3      rounds per workload; the targets alternate; medians reported
#   WARMUP=1s     one unrecorded run per target and workload first
#   SG_BIN        the gateway (default build/sessiongate)
#   KEEP_TMP=1    keep the temporary directory
#   SYSCALLS=N    then, for each target and workload, N requests (fixed count) with the target
#                 under `strace -c -f`: system calls per request, by name (needs strace; slow:
#                 the figures are counts, never timings). 0 (default): skipped
#
# Setup, on loopback with free ports: the origin is nginx (1 worker) answering `return 200` with
# a 100-byte body. Every target has 1 worker/thread, terminates TLS with the same EC certificate,
# offers ALPN h2, keeps a keep-alive HTTP/1.1 pool to the origin and issues a session cookie:
#   sessiongate  [server] workers = 1, [log] access = "off", [tls] certificate/private_key
#   nginx        listen ssl http2, userid cookie passed upstream as X-Session-Id,
#                keepalive_requests raised (by default nginx closes an HTTP/2 connection after 1000)
#   haproxy      bind ssl alpn h2,http/1.1, cookie insert, X-Session-Id from the cookie
# Each gets its own returning-session cookie (fetched first). h2load runs on CPU 0 (one thread),
# the targets and the origin on CPU 1 when there are two CPUs.
# Workloads (h2load over TLS, returning session):
#   m1    -c 50 -m 1: 50 connections, one stream at a time on each
#   m10   -c 10 -m 10: 10 connections, 10 concurrent streams on each
# Figures: requests/s, the target's CPU microseconds per request (utime+stime from /proc/PID/stat
# over the run / requests), failed requests, and ratios sessiongate / nginx and / haproxy.
# Sources bench_lib.sh (this folder) for the parts shared with the other benchmark scripts.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_lib.sh"  # root, log, stop_pid, py, the Python helper, the configuration pieces
DURATION=${DURATION:-5s}
SYSCALLS=${SYSCALLS:-0}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-1s}
SG_BIN=${SG_BIN:-$root/build/sessiongate}
TARGETS=(sessiongate nginx haproxy)
WORKLOADS=(m1 m10)

bench_require h2_bench.sh nginx haproxy h2load openssl python3 taskset
NGINX=$(command -v nginx)
HAPROXY=$(command -v haproxy)
ulimit -n "$(ulimit -Hn)" 2>/dev/null

bench_pin_cpus
bench_tmpdir sg-h2-bench out temp

# ---------------------------------------------------------------------------------------------
bench_helper <<'PY'
def h2_cookie(port):
    """The session cookie a target sets on a first HTTP/1.1 request over TLS ("" if none)."""
    s = tls_ctx().wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=10))
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        d = s.recv(65536)
        if not d: break
        data += d
    s.close()
    for line in data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.lower() == "set-cookie":
            print(v.split(";", 1)[0].strip()); return 0
    print(""); return 0

def parse_h2load(path):
    """requests-done req/s failed: from h2load's summary ("0 0 -1" when it did not finish)."""
    text = open(path, errors="replace").read()
    m = re.search(r"finished in [^,]+, ([0-9.]+) req/s", text)
    r = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
    s = re.search(r"status codes: (\d+) 2xx", text)
    if not m or not r:
        print("0 0 -1"); return 0
    bad = int(r.group(3)) + int(r.group(4)) + (int(r.group(2)) - int(s.group(1)) if s else 0)
    print(f"{r.group(2)} {float(m.group(1)):.0f} {bad}")

COMMANDS.update({"h2_cookie": h2_cookie, "parse_h2load": parse_h2load})
PY

# ---------------------------------------------------------------------------------------------
read -r P_ORIGIN P_SG P_NGINX P_HAPROXY < <(py free_ports 4)
cert=$tmp/cert.pem key=$tmp/key.pem
bench_cert ec "$cert" "$key" 2
cat "$cert" "$key" >"$tmp/haproxy.pem"

body=$(printf '%-99s' 'sessiongate HTTP/2 benchmark origin: the same fixed body for every target')
write_origin_conf "$tmp/origin.conf" origin "$P_ORIGIN" 8192

cat >"$tmp/nginx.conf" <<EOF
$(nginx_main nginx 8192)
http {
$(nginx_http_common nginx)
  access_log off;
$(nginx_upstream_origin)
  server {
    listen 127.0.0.1:$P_NGINX ssl http2 backlog=4096;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
$(nginx_session_proxy "httponly samesite=lax secure")
  }
}
EOF

cat >"$tmp/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  maxconn 4000
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s
frontend fe
  bind 127.0.0.1:$P_HAPROXY ssl crt $tmp/haproxy.pem alpn h2,http/1.1
  default_backend be
backend be
  http-reuse always
  cookie SRV insert indirect nocache httponly secure attr "SameSite=Lax"
  http-request set-header X-Session-Id %[req.cook(SRV)]
  http-request set-header X-Forwarded-Proto https
  option forwardfor
  server s1 127.0.0.1:$P_ORIGIN cookie s1
EOF

{
  gateway_toml "$P_SG" "$P_ORIGIN" 'drain_timeout = "2s"'
  cat <<EOF
[tls]
certificate = "$cert"
private_key = "$key"
EOF
} >"$tmp/gateway.toml"

log "origin :$P_ORIGIN, sessiongate :$P_SG, nginx :$P_NGINX, haproxy :$P_HAPROXY; h2load on CPU $LOAD_CPU, servers on CPU $SRV_CPU"
"${PIN_SRV[@]}" "$NGINX" -c "$tmp/origin.conf" -p "$tmp" >"$tmp/origin.out" 2>&1 &
pids+=("$!")
py wait_port "$P_ORIGIN" 10 || { echo "origin nginx did not start: $(cat "$tmp"/origin.err)" >&2; exit 1; }
"${PIN_SRV[@]}" "$SG_BIN" --config "$tmp/gateway.toml" >"$tmp/sg.out" 2>"$tmp/sg.err" &
SG_PID=$!
pids+=("$SG_PID")
"${PIN_SRV[@]}" "$NGINX" -c "$tmp/nginx.conf" -p "$tmp" >"$tmp/nginx.out" 2>&1 &
NGINX_MASTER=$!
pids+=("$NGINX_MASTER")
"${PIN_SRV[@]}" "$HAPROXY" -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
HAPROXY_PID=$!
pids+=("$HAPROXY_PID")
for p in "$P_SG" "$P_NGINX" "$P_HAPROXY"; do
  py wait_tls "$p" 10 || { echo "a target on :$p did not start (see $tmp)" >&2; KEEP_TMP=1; exit 1; }
done
NGINX_WORKER=$(pgrep -P "$NGINX_MASTER" | head -1)
NGINX_WORKER=${NGINX_WORKER:-$NGINX_MASTER}

declare -A PORT=([sessiongate]=$P_SG [nginx]=$P_NGINX [haproxy]=$P_HAPROXY)
declare -A PID=([sessiongate]=$SG_PID [nginx]=$NGINX_WORKER [haproxy]=$HAPROXY_PID)
declare -A COOKIE
for t in "${TARGETS[@]}"; do
  COOKIE[$t]=$(py h2_cookie "${PORT[$t]}")
  log "$t cookie ${COOKIE[$t]%%=*}=..."
done

h2load_run() {  # target workload duration-or-count out: "5s" runs 5 seconds, "20000" requests
  local shape=(-c 50 -m 1) amount=(-D "${3%s}")
  [[ $2 == m10 ]] && shape=(-c 10 -m 10)
  [[ $3 != *s ]] && amount=(-n "$3")
  "${PIN_LOAD[@]}" h2load -t 1 "${shape[@]}" "${amount[@]}" -H "cookie: ${COOKIE[$1]}" \
    "https://127.0.0.1:${PORT[$1]}/" >"$4" 2>&1
}

# System calls per request: strace -c -f attached to the target for N requests.
syscall_counts() {  # target workload requests
  local t=$1 w=$2 n=$3 st=$tmp/out/strace-$1-$2.txt
  strace -c -f -q -o "$st" -p "${PID[$t]}" &
  local tracer=$!
  sleep 1  # strace attaches (a count, not a timing: the wait only has to be long enough)
  h2load_run "$t" "$w" "$n" "$tmp/out/strace-$t-$w-h2load.txt"
  kill -INT "$tracer" 2>/dev/null
  wait "$tracer" 2>/dev/null
  python3 - "$st" "$n" "$t" "$w" <<'PYEOF'
import sys
path, n, target, workload = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
calls, total = {}, 0
for line in open(path):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] not in ("total",):
        c = int(f[3]); calls[f[-1]] = c
    if f and f[-1] == "total":
        total = int(f[2] if len(f) == 5 else f[3])
top = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])[:6])
print(f"{workload:4s} {target:12s} {sum(calls.values()) / n:6.2f} syscalls/request  ({top})")
PYEOF
}

declare -A R
for w in "${WORKLOADS[@]}"; do
  for t in "${TARGETS[@]}"; do h2load_run "$t" "$w" "$WARMUP" /dev/null; done
  for ((r = 1; r <= ROUNDS; r++)); do
    order=("${TARGETS[@]:r % 3}" "${TARGETS[@]:0:r % 3}")  # rotate the order each round
    for t in "${order[@]}"; do
      out=$tmp/out/$t-$w-$r.txt
      t0=$(py ticks "${PID[$t]}")
      h2load_run "$t" "$w" "$DURATION" "$out"
      t1=$(py ticks "${PID[$t]}")
      read -r done_ rps bad < <(py parse_h2load "$out")
      cpu_us=$(python3 -c "print(f'{($t1 - $t0) * 1e6 / $CLK_TCK / max($done_, 1):.1f}')")
      R[$t,$w,rps]+="$rps "
      R[$t,$w,cpu]+="$cpu_us "
      R[$t,$w,bad]=$(( ${R[$t,$w,bad]:-0} + (bad < 0 ? 0 : bad) ))
      log "$w round $r $t: $rps req/s, ${cpu_us} CPU us/req, failed $bad"
    done
  done
done

echo
echo "HTTP/2 over TLS through sessiongate, nginx and HAProxy (h2load -t1, returning session; $ROUNDS rounds of $DURATION, medians)"
printf '%-34s %12s %12s %12s %9s %9s   %s\n' "workload" "sessiongate" "nginx" "haproxy" "sg/nginx" "sg/haproxy" "(CPU us/req sg | nginx | haproxy; failed)"
for w in "${WORKLOADS[@]}"; do
  sg=$(py median ${R[sessiongate,$w,rps]})
  ng=$(py median ${R[nginx,$w,rps]})
  ha=$(py median ${R[haproxy,$w,rps]})
  case $w in
    m1) label="req/s, 50 conns x 1 stream" ;;
    m10) label="req/s, 10 conns x 10 streams" ;;
  esac
  printf '%-34s %12s %12s %12s %9s %9s   %s\n' "$label" "$sg" "$ng" "$ha" "$(py ratio "$sg" "$ng")" "$(py ratio "$sg" "$ha")" \
    "$(py median ${R[sessiongate,$w,cpu]}) | $(py median ${R[nginx,$w,cpu]}) | $(py median ${R[haproxy,$w,cpu]}); ${R[sessiongate,$w,bad]:-0} ${R[nginx,$w,bad]:-0} ${R[haproxy,$w,bad]:-0}"
done
if ((SYSCALLS > 0)); then
  echo
  echo "System calls per request (strace -c -f on the target, $SYSCALLS requests; top six by count)"
  for w in "${WORKLOADS[@]}"; do
    for t in "${TARGETS[@]}"; do syscall_counts "$t" "$w" "$SYSCALLS"; done
  done
fi
if ! kill -0 "$SG_PID" 2>/dev/null; then
  echo "the gateway died during the run: $(tail -5 "$tmp/sg.err")"
fi
