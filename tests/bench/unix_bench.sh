#!/usr/bin/env bash
# Unix-domain upstreams against loopback TCP (issue 17 item 5), sessiongate and nginx, in one run.
# A benchmark that prints figures; not a test (it never fails on a timing).
#
#   bash tests/bench/unix_bench.sh                       # DURATION=5s ROUNDS=5
#   DURATION=3s ROUNDS=3 bash tests/bench/unix_bench.sh  # shorter
#
# Needs (Debian 12): nginx, wrk, python3, util-linux (taskset), and a built gateway.
#
# Environment:
#   DURATION=5s  wrk -d for every measured run
#   ROUNDS=5     rounds, the four targets alternated in each; medians
#   WARMUP=1s    one unrecorded wrk run per target first
#   SG_BIN       the gateway binary (default build/sessiongate)
#   KEEP_TMP=1   keep the temporary directory (configs, wrk outputs, logs)
#
# Set-up. One origin: nginx (1 worker) answering `return 200` with a 100-byte body, listening on
# 127.0.0.1:PORT and on unix:$tmp/origin.sock at once, so both paths reach the same server. Four
# proxies, each one worker, in front of it: sessiongate with `servers = ["127.0.0.1:PORT"]` and with
# `servers = ["unix:$tmp/origin.sock"]` (access log off), nginx (the session proxy of run_bench.sh:
# userid cookie, X-Session-Id, keep-alive pool of 64) with `server 127.0.0.1:PORT` and with
# `server unix:...`. wrk -t1 -c50 on CPU 0, keep-alive, a returning session (the cookie fetched
# from each proxy first); proxies and origin on CPU 1. Figures: requests/s, p50/p99, the proxy's
# CPU per request (utime+stime over the measured run), the unix/TCP ratio per proxy.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_lib.sh"
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-1s}
SG_BIN=${SG_BIN:-$root/build/sessiongate}

bench_require unix_bench.sh nginx wrk python3 taskset
NGINX=$(command -v nginx)
ulimit -n "$(ulimit -Hn)" 2>/dev/null

bench_pin_cpus
bench_tmpdir sg-unix-bench out temp
bench_helper <<'PY'
PY

read -r P_ORIGIN P_SG_TCP P_SG_UNIX P_NG_TCP P_NG_UNIX < <(py free_ports 5)
sock=$tmp/origin.sock
body=$(printf '%-99s' 'sessiongate benchmark origin: the same fixed body for every target')
write_origin_conf "$tmp/origin.conf" origin "$P_ORIGIN" 4096 "" "" "listen unix:$sock backlog=4096;"

gateway_toml "$P_SG_TCP" "$P_ORIGIN" >"$tmp/sg-tcp.toml"
gateway_toml "$P_SG_UNIX" "$P_ORIGIN" | sed "s|^servers = .*|servers = [\"unix:$sock\"]|" >"$tmp/sg-unix.toml"
for f in sg-tcp sg-unix; do printf '[session]\nidle_timeout = "1h"\n' >>"$tmp/$f.toml"; done

write_nginx_conf() {  # file port upstream-server
  cat >"$1" <<EOF
$(nginx_main "proxy-$2" 4096)
http {
$(nginx_http_common "proxy-$2")
  access_log off;
$(nginx_upstream_origin | sed "s|server 127.0.0.1:$P_ORIGIN;|server $3;|")
  server {
    listen 127.0.0.1:$2 backlog=4096;
$(nginx_session_proxy "httponly samesite=lax")
  }
}
EOF
}
write_nginx_conf "$tmp/ng-tcp.conf" "$P_NG_TCP" "127.0.0.1:$P_ORIGIN"
write_nginx_conf "$tmp/ng-unix.conf" "$P_NG_UNIX" "unix:$sock"

log "CPUs: wrk on $LOAD_CPU, proxies and origin on $SRV_CPU"
"${PIN_SRV[@]}" "$NGINX" -c "$tmp/origin.conf" -e "$tmp/origin.err" >"$tmp/origin.log" 2>&1 &
pids+=($!)
declare -A PID MASTER PORT=([sg-tcp]=$P_SG_TCP [sg-unix]=$P_SG_UNIX [ng-tcp]=$P_NG_TCP [ng-unix]=$P_NG_UNIX)
for t in sg-tcp sg-unix; do
  "${PIN_SRV[@]}" "$SG_BIN" --config "$tmp/$t.toml" >"$tmp/$t.out" 2>"$tmp/$t.err" &
  PID[$t]=$!
  pids+=($!)
done
for t in ng-tcp ng-unix; do
  "${PIN_SRV[@]}" "$NGINX" -c "$tmp/$t.conf" -e "$tmp/$t.err" >"$tmp/$t.log" 2>&1 &
  MASTER[$t]=$!
  pids+=($!)
done
for p in "$P_ORIGIN" "$P_SG_TCP" "$P_SG_UNIX" "$P_NG_TCP" "$P_NG_UNIX"; do
  if ! py wait_port "$p" 10; then
    log "port $p did not answer; logs in $tmp"
    KEEP_TMP=1
    exit 1
  fi
done
# nginx's worker (the child of the master started above) is the process that does the work.
for t in ng-tcp ng-unix; do
  PID[$t]=$(pgrep -P "${MASTER[$t]}" | head -1)
done

TARGETS=(sg-tcp sg-unix ng-tcp ng-unix)
declare -A COOKIE RPS P50 P99 CPU BAD
for t in "${TARGETS[@]}"; do
  COOKIE[$t]=$(py get_cookie "${PORT[$t]}")
  [[ -n ${COOKIE[$t]} ]] || { log "$t set no cookie; logs in $tmp"; KEEP_TMP=1; exit 1; }
  bench_wrk /dev/null "http://127.0.0.1:${PORT[$t]}/" "$WARMUP" 50 -H "Cookie: ${COOKIE[$t]}"
done
for ((r = 1; r <= ROUNDS; r++)); do
  for t in "${TARGETS[@]}"; do
    out="$tmp/out/$t-$r.txt"
    t0=$(py ticks "${PID[$t]}")
    bench_wrk "$out" "http://127.0.0.1:${PORT[$t]}/" "$DURATION" 50 -H "Cookie: ${COOKIE[$t]}"
    t1=$(py ticks "${PID[$t]}")
    read -r n rps p50 p99 errs non2xx < <(py parse_wrk "$out")
    cpu=$(python3 -c "print(f'{($t1 - $t0) / $CLK_TCK * 1e6 / max($n, 1):.2f}')")
    RPS[$t]+="$rps "
    P50[$t]+="$p50 "
    P99[$t]+="$p99 "
    CPU[$t]+="$cpu "
    BAD[$t]=$((${BAD[$t]:-0} + errs + non2xx))
    log "round $r $t: $rps req/s (p50 $p50 us, p99 $p99 us, $cpu us CPU/request, $errs socket errors, $non2xx non-2xx)"
  done
done

echo
echo "## Unix-domain vs loopback TCP upstream ($(date -u +%F), $(nproc) CPUs (wrk on $LOAD_CPU, proxies + origin on $SRV_CPU), wrk -t1 -c50 -d$DURATION keep-alive returning session, $ROUNDS alternated rounds, medians)"
echo
printf '| %-32s | %10s | %8s | %8s | %12s | %5s |\n' target "req/s" "p50" "p99" "CPU/request" bad
printf '|%s|\n' "----------------------------------|------------|----------|----------|--------------|------"
declare -A NAME=([sg-tcp]="sessiongate, upstream TCP" [sg-unix]="sessiongate, upstream unix:"
  [ng-tcp]="nginx, upstream TCP" [ng-unix]="nginx, upstream unix:")
declare -A MED
for t in "${TARGETS[@]}"; do
  MED[$t]=$(py median ${RPS[$t]})
  printf '| %-32s | %10s | %5s us | %5s us | %9s us | %5s |\n' "${NAME[$t]}" "${MED[$t]}" \
    "$(py median ${P50[$t]})" "$(py median ${P99[$t]})" "$(py median ${CPU[$t]})" "${BAD[$t]}"
done
echo
echo "unix/TCP requests/s: sessiongate $(py ratio "${MED[sg-unix]}" "${MED[sg-tcp]}"), nginx $(py ratio "${MED[ng-unix]}" "${MED[ng-tcp]}");"
echo "sessiongate/nginx: over TCP $(py ratio "${MED[sg-tcp]}" "${MED[ng-tcp]}"), over unix: $(py ratio "${MED[sg-unix]}" "${MED[ng-unix]}")"
echo "CPU/request is the proxy process's utime+stime over the measured run (nginx: its one worker)."
