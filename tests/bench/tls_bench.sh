#!/usr/bin/env bash
# TLS termination: sessiongate against nginx with the same certificate, in one run (issue 5).
#
#   bash tests/bench/tls_bench.sh                        # DURATION=5s ROUNDS=3
#   DURATION=3s ROUNDS=5 KEY=rsa bash tests/bench/tls_bench.sh
#
# Not a test: it prints figures and never fails on a timing. Needs nginx (with the ssl and userid
# modules, as Debian's), wrk, openssl, python3, taskset and a built gateway
# (cmake --build build --target sessiongate).
#
# Environment:
#   DURATION=5s   wrk -d of every measured run
#   ROUNDS=3      rounds per workload; targets alternate sessiongate nginx sessiongate nginx ...;
#                 medians reported
#   WARMUP=1s     one unrecorded wrk run per target and workload first
#   CONNS=50      wrk -c (always -t1)
#   KEY=ec        certificate key: "ec" (P-256) or "rsa" (2048 bits)
#   STIME=3       seconds of sequential full handshakes per round; 0 = skip
#   SG_BIN        the gateway (default build/sessiongate)
#   KEEP_TMP=1    keep the temporary directory
#
# Setup, on loopback with free ports: the origin is nginx (1 worker) answering `return 200` with
# a 100-byte body. Both targets have 1 worker, terminate TLS with the same certificate and key
# (made here with openssl), keep a keep-alive pool to the origin and issue a session cookie:
#   sessiongate  [server] workers = 1, [log] access = "off", [tls] certificate/private_key
#   nginx        listen ssl, TLSv1.2 TLSv1.3, session cache + tickets, userid cookie passed
#                upstream as X-Session-Id, proxy_pass with keepalive, X-Forwarded-Proto
# Both are given a returning-session cookie (fetched from each first). wrk runs on CPU 0, the
# targets and the origin on CPU 1 when there are two CPUs.
# Workloads:
#   ka     wrk -t1 -c$CONNS over https, keep-alive: TLS record throughput (requests/s)
#   close  the same with -H "Connection: close": one TLS handshake per request (handshakes/s).
#          wrk reconnects with SSL_clear(), which offers the previous session, so these are
#          mostly *resumed* handshakes; the script measures the resumed share on a probe nginx
#          ($ssl_session_reused) and prints it.
#   full   one client making full handshakes (no resumption) one after another for $STIME
#          seconds (Python ssl): handshakes/s, bound by handshake latency
# Figures: requests/s, p50/p99 latency, the target's CPU microseconds per request
# (utime+stime from /proc/PID/stat over the run / requests), and ratios sessiongate / nginx.
# Sources bench_lib.sh (this folder) for the parts shared with the other benchmark scripts.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_lib.sh"  # root, log, stop_pid, py, the Python helper, the configuration pieces
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-1s}
CONNS=${CONNS:-50}
KEY=${KEY:-ec}
STIME=${STIME:-3}
SG_BIN=${SG_BIN:-$root/build/sessiongate}

bench_require tls_bench.sh nginx wrk openssl python3 taskset
NGINX=$(command -v nginx)
ulimit -n "$(ulimit -Hn)" 2>/dev/null

bench_pin_cpus
bench_tmpdir sg-tls-bench out temp

# ---------------------------------------------------------------------------------------------
bench_helper <<'PY'
def get(port, cookie=""):
    s = tls_ctx().wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=10))
    req = f"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    if cookie: req += f"Cookie: {cookie}\r\n"
    s.sendall((req + "\r\n").encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d: break
        data += d
    s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return int(head[0].split()[1]), [tuple(x.split(":", 1)) for x in head[1:] if ":" in x], s

def tls_get_cookie(port):
    status, headers, _ = get(port)
    for k, v in headers:
        if k.lower() == "set-cookie":
            print(v.split(";", 1)[0].strip()); return 0
    print(""); return 0

def check(port, cookie):
    status, headers, _ = get(port, cookie)
    sc = [v for k, v in headers if k.lower() == "set-cookie"]
    print(f"status {status}, " + ("still sets a cookie" if sc else "no Set-Cookie"))

def full_handshakes(port, seconds):
    """Sequential full TLS handshakes (a new context each time: no session to resume) for
    `seconds`; prints handshakes per wall-clock second. One client, so latency-bound."""
    end = time.monotonic() + float(seconds)
    n, t0 = 0, time.monotonic()
    c = tls_ctx()  # one context (loading it is costly); Python resumes only when given a session
    while time.monotonic() < end:
        with c.wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=10),
                           server_hostname="localhost") as s:
            assert not s.session_reused
        n += 1
    print(f"{n / (time.monotonic() - t0):.1f}")

def reused_share(path):
    lines = [l.strip() for l in open(path) if l.strip()]
    r = sum(1 for l in lines if l == "r")
    print(f"{r} of {len(lines)} handshakes resumed ({100.0 * r / max(len(lines), 1):.0f}%)")

COMMANDS.update({"tls_get_cookie": tls_get_cookie, "check": check,
                 "full_handshakes": full_handshakes, "reused_share": reused_share})
PY

# ---------------------------------------------------------------------------------------------
read -r P_ORIGIN P_SG P_NGINX P_PROBE < <(py free_ports 4)
cert=$tmp/cert.pem key=$tmp/key.pem
bench_cert "$KEY" "$cert" "$key" 2

body=$(printf '%-99s' 'sessiongate TLS benchmark origin: the same fixed body for every target')
write_origin_conf "$tmp/origin.conf" origin "$P_ORIGIN" 8192

write_nginx_tls() {  # file name port access-log-line
  cat >"$1" <<EOF
$(nginx_main "$2" 8192)
http {
$(nginx_http_common "$2")
  $4
$(nginx_upstream_origin)
  server {
    listen 127.0.0.1:$3 ssl backlog=4096;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
$(nginx_session_proxy "httponly samesite=lax secure")
  }
}
EOF
}
write_nginx_tls "$tmp/nginx.conf" nginx "$P_NGINX" "access_log off;"
write_nginx_tls "$tmp/probe.conf" probe "$P_PROBE" "log_format reused '\$ssl_session_reused'; access_log $tmp/probe.log reused;"

{
  gateway_toml "$P_SG" "$P_ORIGIN" 'drain_timeout = "2s"'
  cat <<EOF
[tls]
certificate = "$cert"
private_key = "$key"
EOF
} >"$tmp/gateway.toml"

start_nginx() {  # name conf port -> pid in $started
  "${PIN_SRV[@]}" "$NGINX" -c "$2" -p "$tmp" >"$tmp/$1.out" 2>&1 &
  started=$!
  pids+=("$started")
}

log "origin nginx :$P_ORIGIN, sessiongate :$P_SG, nginx :$P_NGINX, probe nginx :$P_PROBE; key $KEY; wrk on CPU $LOAD_CPU, servers on CPU $SRV_CPU"
start_nginx origin "$tmp/origin.conf"
py wait_port "$P_ORIGIN" 10 || { echo "origin nginx did not start: $(cat "$tmp"/origin.err)" >&2; exit 1; }
"${PIN_SRV[@]}" "$SG_BIN" --config "$tmp/gateway.toml" >"$tmp/sg.out" 2>"$tmp/sg.err" &
SG_PID=$!
pids+=("$SG_PID")
start_nginx nginx "$tmp/nginx.conf"
NGINX_MASTER=$started
start_nginx probe "$tmp/probe.conf"
py wait_tls "$P_SG" 10 || { echo "gateway did not start: $(cat "$tmp/sg.err")" >&2; exit 1; }
py wait_tls "$P_NGINX" 10 || { echo "nginx did not start: $(cat "$tmp/nginx.err")" >&2; exit 1; }
py wait_tls "$P_PROBE" 10 || { echo "probe nginx did not start" >&2; exit 1; }
NGINX_WORKER=$(pgrep -P "$NGINX_MASTER" | head -1)
NGINX_WORKER=${NGINX_WORKER:-$NGINX_MASTER}

declare -A PORT=([sessiongate]=$P_SG [nginx]=$P_NGINX)
declare -A PID=([sessiongate]=$SG_PID [nginx]=$NGINX_WORKER)
declare -A COOKIE
for t in sessiongate nginx; do
  COOKIE[$t]=$(py tls_get_cookie "${PORT[$t]}")
  log "$t cookie ${COOKIE[$t]%%=*}=...; returning: $(py check "${PORT[$t]}" "${COOKIE[$t]}")"
done

# How wrk reconnects: resumed or full handshakes (on the probe nginx, same settings).
bench_wrk /dev/null "https://127.0.0.1:$P_PROBE/" 1s 2 -H "Connection: close"
RESUMED=$(py reused_share "$tmp/probe.log")
log "wrk -H 'Connection: close': $RESUMED"

tls_wrk() {  # target workload duration out
  local hdr=(-H "Cookie: ${COOKIE[$1]}")
  [[ $2 == close ]] && hdr+=(-H "Connection: close")
  bench_wrk "$4" "https://127.0.0.1:${PORT[$1]}/" "$3" "$CONNS" "${hdr[@]}"
}

run_wrk() {  # target workload out
  local t0 t1
  t0=$(py ticks "${PID[$1]}")
  tls_wrk "$1" "$2" "$DURATION" "$3"
  t1=$(py ticks "${PID[$1]}")
  echo "$((t1 - t0))" >"$3.ticks"
}

declare -A R  # R[target,workload] = "rps ..." per round, space separated lists
for w in ka close; do
  for t in sessiongate nginx; do  # warm-up
    tls_wrk "$t" "$w" "$WARMUP" /dev/null
  done
  for ((r = 1; r <= ROUNDS; r++)); do
    order=(sessiongate nginx)
    ((r % 2 == 0)) && order=(nginx sessiongate)
    for t in "${order[@]}"; do
      out=$tmp/out/$t-$w-$r.txt
      run_wrk "$t" "$w" "$out"
      read -r reqs rps p50 p99 errs non2xx < <(py parse_wrk "$out")
      ticks=$(cat "$out.ticks")
      cpu_us=$(python3 -c "print(f'{$ticks * 1e6 / $CLK_TCK / max($reqs, 1):.1f}')")
      R[$t,$w,rps]+="$rps "
      R[$t,$w,p50]+="$p50 "
      R[$t,$w,p99]+="$p99 "
      R[$t,$w,cpu]+="$cpu_us "
      R[$t,$w,err]=$(( ${R[$t,$w,err]:-0} + errs + non2xx ))
      log "$w round $r $t: $rps req/s, p50 ${p50}us p99 ${p99}us, ${cpu_us} CPU us/req, errors $errs, non-2xx $non2xx"
    done
  done
done

# Sequential full handshakes (no resumption; Python ssl client, one at a time), alternated.
if ((STIME > 0)); then
  for ((r = 1; r <= ROUNDS; r++)); do
    order=(sessiongate nginx)
    ((r % 2 == 0)) && order=(nginx sessiongate)
    for t in "${order[@]}"; do
      v=$("${PIN_LOAD[@]}" python3 "$helper" full_handshakes "${PORT[$t]}" "$STIME")
      R[$t,stime,rps]+="$v "
      log "sequential full handshakes round $r $t: $v/s"
    done
  done
fi

echo
echo "TLS through sessiongate vs nginx (same certificate: $KEY; wrk -t1 -c$CONNS -d$DURATION; $ROUNDS rounds, medians)"
printf '%-28s %12s %12s %8s   %s\n' "workload" "sessiongate" "nginx" "sg/nginx" "(p50/p99 us, CPU us/req: sg | nginx)"
for w in ka close stime; do
  [[ $w == stime ]] && ((STIME == 0)) && continue
  sg=$(py median ${R[sessiongate,$w,rps]})
  ng=$(py median ${R[nginx,$w,rps]})
  case $w in
    ka) label="keep-alive req/s" ;;
    close) label="Connection: close req/s" ;;
    stime) label="sequential full hs/s" ;;
  esac
  extra=""
  if [[ $w != stime ]]; then
    extra="$(py median ${R[sessiongate,$w,p50]})/$(py median ${R[sessiongate,$w,p99]}), $(py median ${R[sessiongate,$w,cpu]}) | $(py median ${R[nginx,$w,p50]})/$(py median ${R[nginx,$w,p99]}), $(py median ${R[nginx,$w,cpu]}); errors sg ${R[sessiongate,$w,err]:-0} nginx ${R[nginx,$w,err]:-0}"
  fi
  printf '%-28s %12s %12s %8s   %s\n' "$label" "$sg" "$ng" "$(py ratio "$sg" "$ng")" "$extra"
done
echo "Connection: close handshakes by wrk: $RESUMED (probe nginx)"
if ! kill -0 "$SG_PID" 2>/dev/null; then
  echo "the gateway died during the run: $(tail -5 "$tmp/sg.err")"
fi
