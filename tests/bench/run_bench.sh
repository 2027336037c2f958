#!/usr/bin/env bash
# sessiongate against nginx and HAProxy, in one run, on the same work (issue 7).
#
#   bash tests/bench/run_bench.sh                       # DURATION=5s ROUNDS=3
#   DURATION=3s ROUNDS=3 bash tests/bench/run_bench.sh  # shorter
#
# Needs (Debian 12): nginx-light (or any nginx with the userid module), haproxy, wrk, valgrind,
# strace, python3, util-linux (taskset), and a built gateway (cmake --build build --target
# sessiongate session_store_bench). Run as root or as a user that may raise `ulimit -n` to 20000.
#
# Environment:
#   DURATION=5s      wrk -d for every measured run
#   ROUNDS=3         rounds per workload; the targets run A B C D A B C D ...; medians reported
#   WARMUP=1s        one unrecorded wrk run per target and workload before the rounds
#   CG_REQUESTS=2000 keep-alive requests (returning session) under callgrind
#   CG_TARGETS="sessiongate nginx haproxy origin"  the targets measured under callgrind
#   IDLE_CONNS=10000 idle keep-alive connections for the memory-per-connection figure
#   SG_BIN, SG_STORE_BENCH   the gateway and session_store_bench binaries (default build/...)
#   SG_BIN_B=PATH    a second gateway build, target "sessiongate-b" in the wrk workloads (A/B in
#                    one run, alternated with the others: e.g. main's build against a branch's)
#   HAPROXY_SPLICE=1 also run "haproxy-splice": the same HAProxy with `option splice-auto` (kernel
#                    splicing where HAProxy estimates it helps, what a careful operator sets on Linux
#                    for large bodies; tune.bufsize stays at its 16 KiB default in both)
#   SKIP=...         space-separated phases to skip: wrk callgrind strace perf idle idletls store
#                    unix redis h2 (idletls: the idle figure over TLS, a throw-away certificate for
#                    every target; unix, redis, h2: the companion scripts unix_bench.sh,
#                    redis_bench.sh, h2_bench.sh run after the rest with the same DURATION, ROUNDS
#                    and WARMUP, their sections appended to the results file)
#   WORKLOADS="..."  the wrk workloads to run (default all: ka-session ka-c100 ka-c200 ka-new close
#                    1mib post1mib); e.g. WORKLOADS="ka-session ka-c100 ka-c200" SKIP="callgrind strace perf
#                    idle store" for the keep-alive scaling figures alone
#   STRACE_WORKLOADS="ka-session"  the workloads strace counts syscalls for (e.g. "ka-session 1mib
#                    post1mib"; only ka-session's figure goes in the table, every one is logged)
#   PERF_DURATION=5s the wrk run sampled by `perf record` per target and workload
#   PERF_WORKLOADS="ka-session 1mib"  the workloads sampled by `perf record` (e.g. "ka-session
#                    ka-c200" to see where the CPU per request goes as connections grow)
#   PERF_TARGETS="sessiongate nginx haproxy floor"  the targets sampled (sessiongate-b too)
#   KEEP_TMP=1       keep the temporary directory (configs, wrk outputs, logs)
#   RESULTS=FILE     where the results go (default tests/bench/results/YYYY-MM-DD-<host>.md)
#
# What it does. The origin is nginx (1 worker) answering `return 200` with a 100-byte body, and a
# 1 MiB file on /1m. Targets, each 1 worker/thread, each restarted for every workload:
#   sessiongate  this project's gateway ([server] workers = 1, [log] access = "off")
#   nginx        proxy_pass to an upstream keep-alive pool, userid module issuing an HttpOnly cookie
#                passed upstream as X-Session-Id
#   haproxy      nbthread 1, http-reuse always, cookie SRV insert indirect nocache httponly,
#                http-request set-header X-Session-Id
#   floor        null_proxy (null_proxy.cc, built with the gateway): a minimal epoll forwarder, one
#                upstream connection per client connection, no parsing: the floor of any proxy here
#   direct       the client talks to the origin
# Workloads (wrk -t1 -c50 --latency): keep-alive with a returning session (the cookie is fetched
# from each target first and sent with -H), the same with 100 and 200 connections (ka-c100,
# ka-c200: more concurrent requests than a small upstream pool holds), keep-alive new visitors (no
# cookie), Connection: close (returning session), 1 MiB body (returning session). wrk and every Python client run on CPU 0;
# proxies and the origin on CPU 1 (printed). Figures: requests/s, p50/p99, the proxy's CPU
# microseconds per request (utime+stime from /proc/PID/stat over the run / requests), peak RSS
# (VmHWM), ratios to nginx and HAProxy; user-space instructions per request under callgrind
# ((Ir of a run with N requests - Ir of the same run with none) / N); syscalls per request under
# load (strace -c -f); where each proxy's CPU goes (`perf record -e cpu-clock` attached for one
# keep-alive and one 1 MiB run, samples grouped into user space and kernel work: TCP/IP including
# the loopback delivery, copies, epoll and wake-ups, scheduling, syscall entry, memory); bytes per
# idle keep-alive connection (VmRSS delta over IDLE_CONNS
# connections, each after one request); bytes per stored session at 1M sessions
# (session_store_bench). Prints a table and writes tests/bench/results/YYYY-MM-DD-<host>.md.
# Never fails on a timing: a target that fails is reported as such and the run goes on.
# Sources bench_lib.sh (this folder) for the parts shared with the other benchmark scripts.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_lib.sh"  # root, log, stop_pid, py, the Python helper, the configuration pieces
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-1s}
CG_REQUESTS=${CG_REQUESTS:-2000}
IDLE_CONNS=${IDLE_CONNS:-10000}
SG_BIN=${SG_BIN:-$root/build/sessiongate}
SG_STORE_BENCH=${SG_STORE_BENCH:-$root/build/session_store_bench}
SKIP=${SKIP:-}
SG_BIN_B=${SG_BIN_B:-}
NULL_PROXY=${NULL_PROXY:-$root/build/null_proxy}
TARGETS=(sessiongate ${SG_BIN_B:+sessiongate-b} nginx haproxy ${HAPROXY_SPLICE:+haproxy-splice} floor direct)
read -r -a WORKLOADS <<<"${WORKLOADS:-ka-session ka-c100 ka-c200 ka-new close 1mib post1mib}"

skipped() { [[ " $SKIP " == *" $1 "* ]]; }

bench_require run_bench.sh nginx haproxy wrk valgrind strace python3 taskset
NGINX=$(command -v nginx)
HAPROXY=$(command -v haproxy)

ulimit -n "$(ulimit -Hn)" 2>/dev/null
if (($(ulimit -n) < IDLE_CONNS + 1000)); then
  log "ulimit -n is $(ulimit -n): idle-connection figure limited"
fi

bench_pin_cpus
bench_tmpdir sg-bench www out temp

# ---------------------------------------------------------------------------------------------
# Python helpers (standard library only): bench_lib.sh's, and these.
bench_helper <<'PY'
def check_returning(port, cookie):
    """Warns when a request with the target's own cookie still gets a Set-Cookie."""
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    s.sendall(request(port, cookie))
    status, headers, _ = read_response(s, b"")
    s.close()
    sc = [v for k, v in headers if k.lower() == "set-cookie"]
    print(f"status {status}" + (f", still sets a cookie: {sc[0].split(';')[0]}" if sc else ", no Set-Cookie"))

def keepalive(port, n, cookie):
    """n keep-alive requests on one connection, one at a time; exits 1 unless all got 200."""
    bad, _ = keepalive_run(port, n, cookie)
    print(f"{int(n)} requests, {bad} not 200")
    return 1 if bad else 0

def vm(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0

def idle(port, n, cookie, pid, tls="0"):
    """Opens n connections, one request each, leaves them idle; prints bytes per connection.
    tls=1: over TLS (no verification: a throw-away certificate), the cookie taken from the
    first answer (cookie "-")."""
    import ssl
    n = int(n)
    ctx = None
    if tls == "1":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

    def connect(timeout):
        s = socket.create_connection(("127.0.0.1", int(port)), timeout=timeout)
        return ctx.wrap_socket(s) if ctx else s

    connect(10).close()
    warm = connect(10)
    if cookie == "-":
        warm.sendall(request(port, ""))
        _, headers, _ = read_response(warm, b"")
        cookie = next((v.split(";", 1)[0].strip() for k, v in headers
                       if k.lower() == "set-cookie"), "")
    req = request(port, cookie)
    warm.sendall(req)
    read_response(warm, b"")
    time.sleep(0.5)
    before = vm(pid, "VmRSS")
    conns, failed = [], 0
    for _ in range(n):
        if failed >= 3:
            break
        try:
            s = connect(5)
            s.sendall(req)
            status, _, _ = read_response(s, b"")
            if status != 200:
                failed += 1
            conns.append(s)
        except OSError:
            failed += 1
    time.sleep(1.0)
    after = vm(pid, "VmRSS")
    alive = 0
    sel = selectors.DefaultSelector()
    for s in conns:  # a connection the server closed is readable (EOF, or a TLS close_notify)
        sel.register(s, selectors.EVENT_READ)
    ready = {k.fileobj for k, _ in sel.select(timeout=0)}
    ready |= {s for s in conns if ctx and s.pending()}
    alive = sum(1 for s in conns if s not in ready)
    for s in conns:
        s.close()
    warm.close()
    per = (after - before) / max(alive, 1)
    print(f"{per:.0f} {alive} {failed} {before} {after}")

def callgrind_total(path):
    total = None
    for line in open(path, errors="replace"):
        if line.startswith("summary:") or line.startswith("totals:"):
            total = int(line.split()[1])
    print(total if total is not None else "nan")

def strace_summary(path, requests, top_out):
    """Prints total syscalls; writes the top syscalls per request to top_out."""
    requests = max(int(requests), 1)
    rows, total = [], None
    for line in open(path, errors="replace"):
        parts = line.split()
        if not parts or parts[0].startswith(("%", "-")):
            continue
        if parts[-1] == "total":
            total = int(parts[3])
            continue
        try:
            float(parts[0])
            rows.append((int(parts[3]), parts[-1]))
        except (ValueError, IndexError):
            continue
    rows.sort(reverse=True)
    with open(top_out, "w") as f:
        f.write(", ".join(f"{name} {calls / requests:.2f}" for calls, name in rows[:6]))
    print(total if total is not None else "nan")

# Kernel symbols by the work they do; the first matching group wins. Self samples only.
PERF_GROUPS = [
    ("copy", r"copy_user|_copy_to_iter|_copy_from_iter|copy_page|memcpy|memmove|skb_copy_datagram|simple_copy_to_iter|csum_partial_copy"),
    ("epoll+wake-up", r"^ep_|epoll|__wake_up|try_to_wake_up|sock_def_readable|ttwu|wake_up_q|select_task_rq"),
    ("scheduler", r"schedule|finish_task_switch|pick_next|enqueue_|dequeue_|update_curr|update_load|psi_|sched_|switch_mm|__switch_to|reweight|set_next|put_prev|cpuacct|account_"),
    ("memory (skb, slab, pages, memcg)", r"kmem_cache|kmalloc|kfree|slab|alloc_skb|skb_release|__skb_clone|skb_free|_page|page_|folio|memcg|mem_cgroup|obj_cgroup|refill_stock|charge|pcp|rmqueue|ksize"),
    ("TCP/IP + loopback delivery", r"tcp|^ip_|__ip_|^ipv4|^inet|^sk_|__sk_|^sock_|__sock_|^skb_|__skb|loopback|dev_|netif_|net_rx|napi|process_backlog|^nf_|ip_finish|ip_output|neigh|validate_xmit|raw_local|lock_sock|release_sock|__release_sock|eth_|dst_|fib_|security_sock|bpf|__netdev|qdisc|rps_"),
    ("syscall entry/exit, fd, vfs", r"entry_SYSCALL|syscall|exit_to_user|do_syscall|__x64_sys|ksys_|vfs_|fdget|__fget|fput|__fsnotify|rw_verify|security_|apparmor|aa_|sockfd_lookup|__sys_|sock_read_iter|sock_write_iter|import_iovec|iovec|__import|rcu_read|__rcu"),
    ("irq/timers (VM)", r"irq|_raw_spin|native_|hrtimer|timer|tick|clockevents|apic|__softirqentry|do_softirq|__do_softirq|ktime"),
]

def perf_summary(report, top_out):
    """Groups `perf report --sort dso,sym` self samples; prints "user% kernel% group=% ..."."""
    import re
    groups = {name: 0.0 for name, _ in PERF_GROUPS}
    groups["other kernel"] = 0.0
    user, kernel, dsos, syms = 0.0, 0.0, {}, []
    for line in open(report, errors="replace"):
        m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[([k.])\]\s+(\S+)", line)
        if not m:
            continue
        pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4)
        syms.append((pct, sym))
        if kind == "k":
            kernel += pct
            for name, rx in PERF_GROUPS:
                if re.search(rx, sym):
                    groups[name] += pct
                    break
            else:
                groups["other kernel"] += pct
        else:
            user += pct
            dso = dso.rsplit("/", 1)[-1].split(".so")[0]
            dsos[dso] = dsos.get(dso, 0.0) + pct
    with open(top_out, "w") as f:
        f.write("; ".join(f"{s} {p:.1f}%" for p, s in sorted(syms, reverse=True)[:8]))
    parts = [f"user {user:.1f}% ({', '.join(f'{d} {p:.1f}' for d, p in sorted(dsos.items(), key=lambda x: -x[1])[:4])})",
             f"kernel {kernel:.1f}%"]
    parts += [f"{n} {p:.1f}%" for n, p in sorted(groups.items(), key=lambda x: -x[1]) if p >= 0.5]
    print(" · ".join(parts))

COMMANDS.update({"perf_summary": perf_summary})
COMMANDS.update({"check_returning": check_returning, "keepalive": keepalive, "idle": idle,
                 "vm": lambda pid, key: print(vm(pid, key)),
                 "callgrind_total": callgrind_total, "strace_summary": strace_summary})
PY

# ---------------------------------------------------------------------------------------------
# Configurations.
read -r P_ORIGIN P_SG P_NGINX P_HAPROXY P_CG P_CG_ORIGIN P_SG_B P_FLOOR P_HAPROXY_S < <(py free_ports 9)
head -c 1048576 /dev/urandom >"$tmp/www/1m"
# post1mib: wrk posts the same 1 MiB body on every request.
cat >"$tmp/post1m.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
body=$(printf '%-99s' 'sessiongate benchmark origin: the same fixed body for every target')  # + "\n": 100 bytes
# Generous keep-alive limits everywhere so no peer closes a wrk connection every 1000 requests
# (nginx's default keepalive_requests, raised in bench_lib.sh's nginx pieces); the gateway and
# HAProxy have no such limit.
NGINX_CONNS=$(($(ulimit -n) - 100))

write_1m_origin_conf() {  # file port extra-main-directives: the origin, also serving /1m
  write_origin_conf "$1" "origin-$2" "$2" "$NGINX_CONNS" "$3" "default_type application/octet-stream;
  sendfile on;" "root $tmp/www;
    location = /1m { }
    # 1 MiB request bodies (post1mib): read and dropped, then the 100-byte answer.
    location = /upload { client_max_body_size 0; return 200 \"$body\n\"; }"
}

write_nginx_conf() {  # file port extra-main-directives [TLS server directives: listen with ssl]
  cat >"$1" <<EOF
$(nginx_main "proxy-$2" "$NGINX_CONNS")
$3
http {
$(nginx_http_common "proxy-$2")
  access_log off;
$(nginx_upstream_origin)
  server {
    listen 127.0.0.1:$2${4:+ ssl} backlog=4096;
    client_max_body_size 0;  # post1mib; request buffering stays at nginx's default (on)
    ${4:-}
$(nginx_session_proxy "httponly samesite=lax")
  }
}
EOF
}

# HAProxy reserves two descriptors per connection: its maxconn is what the descriptor limit allows.
HA_MAXCONN=$((($(ulimit -n) - 100) / 2))
write_haproxy_conf() {  # file port origin-port [extra defaults lines] [maxconn] [TLS pem: bind with ssl]
  cat >"$1" <<EOF
global
  nbthread 1
  maxconn ${5:-$HA_MAXCONN}
defaults
  mode http
  maxconn ${5:-$HA_MAXCONN}
${4:-}
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s
frontend fe
  bind 127.0.0.1:$2${6:+ ssl crt $6}
  default_backend be
backend be
  http-reuse always
  cookie SRV insert indirect nocache httponly attr "SameSite=Lax"
  http-request set-header X-Session-Id %[req.cook(SRV)]
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  option forwardfor
  server s1 127.0.0.1:$3 cookie s1
EOF
}

write_sg_conf() {  # file port origin-port [more sections]
  { gateway_toml "$2" "$3" 'drain_timeout = "1s"
max_connections = 30000'; echo "${4:-}"; } >"$1"
}

write_1m_origin_conf "$tmp/origin.conf" "$P_ORIGIN" ""
write_nginx_conf "$tmp/nginx.conf" "$P_NGINX" ""
write_haproxy_conf "$tmp/haproxy.cfg" "$P_HAPROXY" "$P_ORIGIN"
# With splicing HAProxy also reserves pipes (maxpipes = maxconn / 4, two descriptors each).
write_haproxy_conf "$tmp/haproxy-splice.cfg" "$P_HAPROXY_S" "$P_ORIGIN" "  option splice-auto" $((HA_MAXCONN * 2 / 3))
write_sg_conf "$tmp/sessiongate.toml" "$P_SG" "$P_ORIGIN"
[[ -n $SG_BIN_B ]] && write_sg_conf "$tmp/sessiongate-b.toml" "$P_SG_B" "$P_ORIGIN"
# The idle figure over TLS: every target on a second port with the same throw-away certificate.
if ! skipped idletls; then
  read -r P_SG_TLS P_NGINX_TLS P_HAPROXY_TLS < <(py free_ports 3)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
  cat "$tmp/tls.crt" "$tmp/tls.key" >"$tmp/tls.pem"
  write_nginx_conf "$tmp/nginx-tls.conf" "$P_NGINX_TLS" "" \
    "ssl_certificate $tmp/tls.crt; ssl_certificate_key $tmp/tls.key;"
  write_haproxy_conf "$tmp/haproxy-tls.cfg" "$P_HAPROXY_TLS" "$P_ORIGIN" "" "" "$tmp/tls.pem"
  write_sg_conf "$tmp/sessiongate-tls.toml" "$P_SG_TLS" "$P_ORIGIN" "[tls]
certificate = \"$tmp/tls.crt\"
private_key = \"$tmp/tls.key\""
fi

"$NGINX" -t -q -c "$tmp/origin.conf" -p "$tmp" 2>"$tmp/out/origin-check" ||
  { cat "$tmp/out/origin-check" >&2; exit 2; }
"$NGINX" -t -q -c "$tmp/nginx.conf" -p "$tmp" 2>"$tmp/out/nginx-check" ||
  { cat "$tmp/out/nginx-check" >&2; exit 2; }
"$HAPROXY" -c -f "$tmp/haproxy.cfg" >"$tmp/out/haproxy-check" 2>&1 ||
  { cat "$tmp/out/haproxy-check" >&2; exit 2; }
"$SG_BIN" --check --config "$tmp/sessiongate.toml" >"$tmp/out/sg-check" 2>&1 ||
  { cat "$tmp/out/sg-check" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# Processes. start_* set MEASURE_PID (the process that does the work) and RUN_PID (the one to
# stop); both are remembered for the exit trap.
MEASURE_PID=
RUN_PID=

child_of() {  # the first child of a pid (an nginx worker), waiting up to 5 s
  local parent=$1 i c
  for ((i = 0; i < 50; i++)); do
    c=$(cat /proc/"$parent"/task/*/children 2>/dev/null | awk '{print $1; exit}')
    [[ -n $c ]] && { echo "$c"; return 0; }
    sleep 0.1
  done
  return 1
}

start_target() {  # name: sets MEASURE_PID, RUN_PID, PORT; returns 1 on failure
  local name=$1
  MEASURE_PID=
  RUN_PID=
  case $name in
    sessiongate | sessiongate-tls)
      PORT=$P_SG
      [[ $name == *-tls ]] && PORT=$P_SG_TLS
      "${PIN_SRV[@]}" "$SG_BIN" --config "$tmp/$name.toml" >>"$tmp/out/$name.log" 2>&1 &
      RUN_PID=$!
      MEASURE_PID=$RUN_PID
      ;;
    sessiongate-b)
      PORT=$P_SG_B
      "${PIN_SRV[@]}" "$SG_BIN_B" --config "$tmp/sessiongate-b.toml" >>"$tmp/out/sessiongate-b.log" 2>&1 &
      RUN_PID=$!
      MEASURE_PID=$RUN_PID
      ;;
    nginx | nginx-tls)
      PORT=$P_NGINX
      [[ $name == *-tls ]] && PORT=$P_NGINX_TLS
      "${PIN_SRV[@]}" "$NGINX" -c "$tmp/$name.conf" -p "$tmp" >>"$tmp/out/$name.log" 2>&1 &
      RUN_PID=$!
      MEASURE_PID=$(child_of "$RUN_PID")
      ;;
    haproxy | haproxy-tls)
      PORT=$P_HAPROXY
      [[ $name == *-tls ]] && PORT=$P_HAPROXY_TLS
      "${PIN_SRV[@]}" "$HAPROXY" -db -f "$tmp/$name.cfg" >>"$tmp/out/$name.log" 2>&1 &
      RUN_PID=$!
      MEASURE_PID=$RUN_PID
      ;;
    haproxy-splice)
      PORT=$P_HAPROXY_S
      "${PIN_SRV[@]}" "$HAPROXY" -db -f "$tmp/haproxy-splice.cfg" >>"$tmp/out/haproxy-splice.log" 2>&1 &
      RUN_PID=$!
      MEASURE_PID=$RUN_PID
      ;;
    floor)
      # The null proxy (null_proxy.cc): one upstream connection per client connection, no
      # parsing; the floor of any read/write proxy on this kernel (issue 17 item 1).
      PORT=$P_FLOOR
      [[ -x $NULL_PROXY ]] || { log "floor: no $NULL_PROXY (cmake --build build --target null_proxy)"; return 1; }
      "${PIN_SRV[@]}" "$NULL_PROXY" "$PORT" "$P_ORIGIN" >>"$tmp/out/floor.log" 2>&1 &
      RUN_PID=$!
      MEASURE_PID=$RUN_PID
      ;;
    direct)
      PORT=$P_ORIGIN
      RUN_PID=
      MEASURE_PID=$ORIGIN_WORKER
      return 0
      ;;
  esac
  pids+=("$RUN_PID")
  [[ -n $MEASURE_PID ]] && pids+=("$MEASURE_PID")
  if ! py wait_port "$PORT" 15 || [[ -z $MEASURE_PID ]] || ! kill -0 "$RUN_PID" 2>/dev/null; then
    log "$name: failed to start (see its log)"
    stop_pid "$RUN_PID"
    return 1
  fi
  return 0
}

stop_target() {  # name
  [[ $1 == direct ]] && return 0
  stop_pid "$RUN_PID"
  [[ -n $MEASURE_PID ]] && stop_pid "$MEASURE_PID"
}

target_cookie() {  # name port -> cookie to send as a returning visitor
  local c
  c=$(py get_cookie "$2" 2>/dev/null)
  if [[ -z $c ]]; then
    # direct: no cookie is issued; send one of the gateway's shape so the request is the same size
    c="session_id=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
  fi
  echo "$c"
}

"${PIN_SRV[@]}" "$NGINX" -c "$tmp/origin.conf" -p "$tmp" >"$tmp/out/origin.log" 2>&1 &
ORIGIN_PID=$!
pids+=("$ORIGIN_PID")
ORIGIN_WORKER=$(child_of "$ORIGIN_PID")
pids+=("$ORIGIN_WORKER")
if ! py wait_port "$P_ORIGIN" 10 || [[ -z $ORIGIN_WORKER ]]; then
  echo "run_bench.sh: the origin did not start:" >&2
  cat "$tmp/out/origin.log" "$tmp"/origin-*.err >&2 2>/dev/null
  exit 2
fi

cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
[[ -z $cpu_model ]] && cpu_model=$(lscpu 2>/dev/null | awk -F': +' '/Model name/ {print $2; exit}')
host=$(hostname -s 2>/dev/null || hostname)
sg_rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
sg_dirty=$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (uncommitted changes)")
sg_build=$(awk -F= '/^CMAKE_BUILD_TYPE:/ {print $2}' "$(dirname "$SG_BIN")/CMakeCache.txt" 2>/dev/null)
[[ -z $sg_build ]] && sg_build="(default: RelWithDebInfo)"
meta=$tmp/meta
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "host=$host"
  echo "cores=$ncpu"
  echo "cpu=$cpu_model"
  echo "kernel=$(uname -r)"
  echo "loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "pinning=wrk and Python clients on CPU $LOAD_CPU (taskset -c $LOAD_CPU); proxies and origin on CPU $SRV_CPU (taskset -c $SRV_CPU)"
  echo "duration=$DURATION"
  echo "rounds=$ROUNDS"
  echo "warmup=$WARMUP"
  echo "versions=sessiongate $sg_rev$sg_dirty build $sg_build (${SG_BIN#"$root"/})${SG_BIN_B:+; sessiongate-b ${SG_BIN_B#"$root"/}}; $("$NGINX" -v 2>&1 | sed 's/.*version: //'); $("$HAPROXY" -v | head -1 | awk '{print "HAProxy " $3}'); $(wrk --version 2>&1 | head -1 | awk '{print "wrk " $2}'); $(valgrind --version)"
  echo "command=DURATION=$DURATION ROUNDS=$ROUNDS${SKIP:+ SKIP=\"$SKIP\"} WORKLOADS=\"${WORKLOADS[*]}\" bash tests/bench/run_bench.sh"
} >"$meta"
log "pinning: load generator (wrk, Python clients) on CPU $LOAD_CPU; proxies and origin on CPU $SRV_CPU"
((ncpu < 2)) && log "only $ncpu CPU: everything shares CPU 0, figures are not comparable"
log "origin 127.0.0.1:$P_ORIGIN (worker $ORIGIN_WORKER); sessiongate :$P_SG nginx :$P_NGINX haproxy :$P_HAPROXY floor :$P_FLOOR"

# ---------------------------------------------------------------------------------------------
# wrk workloads.
data=$tmp/data.tsv   # workload target round requests rps p50_us p99_us errors non2xx cpu_us_per_req
hwm=$tmp/hwm.tsv     # workload target VmHWM_bytes
: >"$data"
: >"$hwm"

run_wrk() {  # workload target cookie duration outfile
  local path=/ hdr=() conns=50
  case $1 in
    ka-session) hdr=(-H "Cookie: $3") ;;
    ka-c100) hdr=(-H "Cookie: $3"); conns=100 ;;
    ka-c200) hdr=(-H "Cookie: $3"); conns=200 ;;
    ka-new) hdr=() ;;
    close) hdr=(-H "Cookie: $3" -H "Connection: close") ;;
    1mib) hdr=(-H "Cookie: $3"); path=/1m ;;
    post1mib) hdr=(-H "Cookie: $3" -s "$tmp/post1m.lua"); path=/upload ;;
  esac
  bench_wrk "$5" "http://127.0.0.1:$PORT$path" "$4" "$conns" "${hdr[@]}"
}

extra=$tmp/extra.tsv   # key value
: >"$extra"
if ! skipped wrk; then
  for wl in "${WORKLOADS[@]}"; do
    log "workload $wl: starting targets"
    declare -A T_RUN=() T_MEAS=() T_PORT=() T_COOKIE=()
    for t in "${TARGETS[@]}"; do
      if start_target "$t"; then
        T_RUN[$t]=$RUN_PID
        T_MEAS[$t]=$MEASURE_PID
        T_PORT[$t]=$PORT
        T_COOKIE[$t]=$(target_cookie "$t" "$PORT")
        [[ $wl == ka-session && $t != direct ]] &&
          log "  $t: cookie ${T_COOKIE[$t]:0:24}...; returning request: $(py check_returning "$PORT" "${T_COOKIE[$t]}" 2>&1 | tail -1)"
        run_wrk "$wl" "$t" "${T_COOKIE[$t]}" "$WARMUP" "$tmp/out/warmup-$wl-$t.txt"
      fi
    done
    for ((r = 1; r <= ROUNDS; r++)); do
      for t in "${TARGETS[@]}"; do
        [[ -n ${T_MEAS[$t]:-} ]] || { echo -e "$wl\t$t\t$r\t0\tnan\tnan\tnan\t0\t0\tnan" >>"$data"; continue; }
        PORT=${T_PORT[$t]}
        out=$tmp/out/wrk-$wl-$t-$r.txt
        c0=$(py ticks "${T_MEAS[$t]}" 2>/dev/null || echo nan)
        u0=$(py uticks "${T_MEAS[$t]}" 2>/dev/null || echo nan)
        read -r x0 i0 < <(py ctxsw "${T_MEAS[$t]}" 2>/dev/null || echo nan nan)
        run_wrk "$wl" "$t" "${T_COOKIE[$t]}" "$DURATION" "$out"
        c1=$(py ticks "${T_MEAS[$t]}" 2>/dev/null || echo nan)
        u1=$(py uticks "${T_MEAS[$t]}" 2>/dev/null || echo nan)
        read -r x1 i1 < <(py ctxsw "${T_MEAS[$t]}" 2>/dev/null || echo nan nan)
        read -r nreq rps p50 p99 errs non2xx < <(py parse_wrk "$out")
        # Context switches per request (issue 17 item 1: where the scheduler time goes); the
        # last round's figure is kept.
        if [[ $wl == ka-session ]]; then
          per_req='import sys; a,b,n=sys.argv[1:]; print("nan" if "nan" in (a,b) or int(n)==0 else (int(b)-int(a))/int(n))'
          echo -e "ctx_$t\t$(python3 -c "$per_req" "$x0" "$x1" "$nreq")" >>"$extra"
          echo -e "ctxi_$t\t$(python3 -c "$per_req" "$i0" "$i1" "$nreq")" >>"$extra"
        fi
        cpu=$(python3 -c "import sys; c0,c1,n,hz=sys.argv[1:]; print('nan' if 'nan' in (c0,c1) or int(n)==0 else (int(c1)-int(c0))*1e6/int(hz)/int(n))" "$c0" "$c1" "$nreq" "$CLK_TCK")
        echo -e "$wl\t$t\t$r\t$nreq\t$rps\t$p50\t$p99\t$errs\t$non2xx\t$cpu" >>"$data"
        # The user-space part and the context switches per request go to the log only (issue 17
        # item 2: whether what grows with the connections is ours or the kernel's).
        ucpu=$(python3 -c "import sys; c0,c1,n,hz=sys.argv[1:]; print('nan' if 'nan' in (c0,c1) or int(n)==0 else round((int(c1)-int(c0))*1e6/int(hz)/int(n), 2))" "$u0" "$u1" "$nreq" "$CLK_TCK")
        ctxr=$(python3 -c 'import sys; a,b,n=sys.argv[1:]; print("nan" if "nan" in (a,b) or int(n)==0 else round((int(b)-int(a))/int(n), 3))' "$x0" "$x1" "$nreq")
        log "  $wl round $r $t: $rps req/s p99 ${p99}us cpu ${cpu}us/req (user ${ucpu}) ctxsw ${ctxr}/req errors $errs non-2xx $non2xx"
      done
    done
    for t in "${TARGETS[@]}"; do
      [[ -n ${T_MEAS[$t]:-} ]] || continue
      echo -e "$wl\t$t\t$(py vm "${T_MEAS[$t]}" VmHWM 2>/dev/null || echo nan)" >>"$hwm"
      RUN_PID=${T_RUN[$t]}
      MEASURE_PID=${T_MEAS[$t]}
      stop_target "$t"
    done
    unset T_RUN T_MEAS T_PORT T_COOKIE
  done
fi


# ---------------------------------------------------------------------------------------------
# Instructions per request under callgrind: gateway, nginx, HAProxy, and the origin alone.
cg_run() {  # name n -> sets CG_IR to the Ir total (nan on failure)
  local name=$1 n=$2 port=$P_CG pid out=$tmp/out/callgrind-$1-$2 cookie
  local vg=(valgrind --tool=callgrind --callgrind-out-file="$out.cg" --trace-children=no)
  CG_IR=nan
  case $name in
    sessiongate)
      write_sg_conf "$tmp/cg.toml" "$port" "$P_ORIGIN"
      "${PIN_SRV[@]}" "${vg[@]}" "$SG_BIN" --config "$tmp/cg.toml" >"$out.log" 2>&1 &
      ;;
    nginx)
      write_nginx_conf "$tmp/cg-nginx.conf" "$port" "master_process off;"
      "${PIN_SRV[@]}" "${vg[@]}" "$NGINX" -c "$tmp/cg-nginx.conf" -p "$tmp" >"$out.log" 2>&1 &
      ;;
    haproxy)
      write_haproxy_conf "$tmp/cg-haproxy.cfg" "$port" "$P_ORIGIN"
      "${PIN_SRV[@]}" "${vg[@]}" "$HAPROXY" -db -f "$tmp/cg-haproxy.cfg" >"$out.log" 2>&1 &
      ;;
    origin)
      write_1m_origin_conf "$tmp/cg-origin.conf" "$port" "master_process off;"
      "${PIN_SRV[@]}" "${vg[@]}" "$NGINX" -c "$tmp/cg-origin.conf" -p "$tmp" >"$out.log" 2>&1 &
      ;;
  esac
  pid=$!
  pids+=("$pid")
  if ! py wait_port "$port" 90; then
    log "callgrind $name: did not start (see $out.log)"
    stop_pid "$pid" KILL
    return
  fi
  cookie=$(target_cookie "$name" "$port")
  if ((n > 0)); then
    "${PIN_LOAD[@]}" python3 "$helper" keepalive "$port" "$n" "$cookie" >"$out.client" 2>&1 ||
      log "callgrind $name: client: $(tail -1 "$out.client")"
  fi
  stop_pid "$pid" TERM
  [[ -s $out.cg ]] && CG_IR=$(py callgrind_total "$out.cg")
  return 0
}

if ! skipped callgrind; then
  for t in ${CG_TARGETS:-sessiongate nginx haproxy origin}; do
    log "callgrind $t: baseline and $CG_REQUESTS keep-alive requests"
    cg_run "$t" 0
    ir0=$CG_IR
    cg_run "$t" "$CG_REQUESTS"
    ir1=$CG_IR
    per=$(python3 -c "import sys; a,b,n=sys.argv[1:]; print('nan' if 'nan' in (a,b) else (int(b)-int(a))/int(n))" "$ir0" "$ir1" "$CG_REQUESTS")
    echo -e "ir_$t\t$per" >>"$extra"
    log "  $t: baseline Ir $ir0, with requests $ir1, per request $per"
  done
fi

start_with_cookie() {  # target key: start_target, its cookie in $cookie; on failure "key_target nan"
  if ! start_target "$1"; then
    echo -e "$2_$1\tnan" >>"$extra"
    return 1
  fi
  cookie=$(target_cookie "$1" "$PORT")
}

# ---------------------------------------------------------------------------------------------
# Syscalls per request under load: strace -c -f attached for one wrk run (keep-alive, returning).
if ! skipped strace; then
  for swl in ${STRACE_WORKLOADS:-ka-session}; do
  for t in sessiongate ${SG_BIN_B:+sessiongate-b} nginx haproxy floor; do
    log "strace $t: wrk -d$DURATION $swl"
    start_with_cookie "$t" sys || continue
    so=$tmp/out/strace-$swl-$t
    strace -c -f -q -o "$so.txt" -p "$MEASURE_PID" &
    spid=$!
    pids+=("$spid")
    sleep 1
    run_wrk "$swl" "$t" "$cookie" "$DURATION" "$so-wrk.txt"
    stop_pid "$spid" INT
    read -r nreq _ < <(py parse_wrk "$so-wrk.txt")
    total=$(py strace_summary "$so.txt" "$nreq" "$so-top.txt")
    per=$(python3 -c "import sys; a,n=sys.argv[1:]; print('nan' if a=='nan' or int(n)==0 else int(a)/int(n))" "$total" "$nreq")
    if [[ $swl == ka-session ]]; then
      echo -e "sys_$t\t$per" >>"$extra"
      echo -e "systop_$t\t$(cat "$so-top.txt")" >>"$extra"
      echo -e "sysreq_$t\t$nreq" >>"$extra"
    fi
    log "  $swl $t: $total syscalls / $nreq requests = $per per request ($(cat "$so-top.txt"))"
    stop_target "$t"
  done
  done
fi

# ---------------------------------------------------------------------------------------------
# Where the CPU goes: `perf record -e cpu-clock` (a software clock, which works in VMs without
# hardware counters) attached to the proxy process for one wrk run per workload.
PERF_DURATION=${PERF_DURATION:-5s}
if ! skipped perf; then
  if ! command -v perf >/dev/null || ! perf record -q -e cpu-clock -o "$tmp/out/perf-probe.data" true >/dev/null 2>&1; then
    log "perf: not available here (Debian linux-perf, perf_event_paranoid <= 2); skipped"
  else
    for wl in ${PERF_WORKLOADS:-ka-session 1mib}; do
      for t in ${PERF_TARGETS:-sessiongate nginx haproxy floor}; do
        log "perf $t: wrk -d$PERF_DURATION $wl"
        start_with_cookie "$t" "perf_$wl" || continue
        perf record -q -e cpu-clock -F 2000 -o "$tmp/out/perf-$wl-$t.data" -p "$MEASURE_PID" \
          >"$tmp/out/perf-$wl-$t.log" 2>&1 &
        ppid=$!
        pids+=("$ppid")
        sleep 0.5
        run_wrk "$wl" "$t" "$cookie" "$PERF_DURATION" "$tmp/out/perf-wrk-$wl-$t.txt"
        stop_pid "$ppid" INT
        perf report -i "$tmp/out/perf-$wl-$t.data" --stdio --no-children --sort dso,sym \
          >"$tmp/out/perf-$wl-$t.txt" 2>/dev/null
        summary=$(py perf_summary "$tmp/out/perf-$wl-$t.txt" "$tmp/out/perf-top-$wl-$t.txt")
        echo -e "perf_${wl}_$t\t$summary" >>"$extra"
        echo -e "perftop_${wl}_$t\t$(cat "$tmp/out/perf-top-$wl-$t.txt")" >>"$extra"
        log "  $t: $summary"
        stop_target "$t"
      done
    done
  fi
fi

# ---------------------------------------------------------------------------------------------
# Bytes per idle keep-alive connection.
idle_targets=()
skipped idle || idle_targets+=(sessiongate nginx haproxy)
skipped idletls || idle_targets+=(sessiongate-tls nginx-tls haproxy-tls)
if ((${#idle_targets[@]})); then
  for t in "${idle_targets[@]}"; do
    log "idle: $IDLE_CONNS keep-alive connections to $t"
    tls=0
    if [[ $t == *-tls ]]; then
      start_target "$t" || { echo -e "idle_$t\tnan" >>"$extra"; continue; }
      tls=1
      cookie=-  # taken from the first answer, over TLS
    else
      start_with_cookie "$t" idle || continue
    fi
    n=$IDLE_CONNS
    [[ $t == haproxy* ]] && ((n > HA_MAXCONN - 100)) && n=$((HA_MAXCONN - 100))
    read -r per alive failed before after < <("${PIN_LOAD[@]}" python3 "$helper" idle "$PORT" "$n" "$cookie" "$MEASURE_PID" "$tls" 2>"$tmp/out/idle-$t.err")
    echo -e "idle_$t\t${per:-nan}" >>"$extra"
    echo -e "idlen_$t\t${alive:-0}" >>"$extra"
    log "  $t: ${per:-?} bytes per connection (${alive:-?} open, ${failed:-?} failed; VmRSS ${before:-?} -> ${after:-?})"
    stop_target "$t"
  done
fi

# ---------------------------------------------------------------------------------------------
# Bytes per stored session at 1M sessions.
if ! skipped store; then
  if [[ -x $SG_STORE_BENCH ]]; then
    log "session_store_bench"
    "$SG_STORE_BENCH" >"$tmp/out/store.txt" 2>&1  # not pinned: it also measures 2 and 4 threads
    rss=$(awk -F': *' '/memory per session \(RSS\)/ {print $2+0}' "$tmp/out/store.txt")
    heap=$(awk -F': *' '/memory per session \(heap\)/ {print $2+0}' "$tmp/out/store.txt")
    echo -e "store_rss\t${rss:-nan}" >>"$extra"
    echo -e "store_heap\t${heap:-nan}" >>"$extra"
    log "  ${rss:-?} bytes per session (RSS), ${heap:-?} (heap)"
  else
    log "no $SG_STORE_BENCH: build it with cmake --build build --target session_store_bench"
  fi
fi

elapsed=$(($(date +%s) - start_time))
echo "elapsed=${elapsed}s" >>"$meta"

# ---------------------------------------------------------------------------------------------
# Report.
mkdir -p "$here/results"
results=${RESULTS:-$here/results/$(date +%F)-$host.md}
python3 - "$meta" "$data" "$hwm" "$extra" "$results" "$CG_REQUESTS" "$IDLE_CONNS" <<'PY'
import math, statistics, sys
meta_p, data_p, hwm_p, extra_p, out_p, cg_n, idle_n = sys.argv[1:]
meta = dict(l.rstrip("\n").split("=", 1) for l in open(meta_p) if "=" in l)
rows = [l.rstrip("\n").split("\t") for l in open(data_p) if l.strip()]
hwm = {(w, t): float(v) for w, t, v in (l.rstrip("\n").split("\t") for l in open(hwm_p) if l.strip())}
extra = {}
for l in open(extra_p):
    if l.strip():
        k, _, v = l.rstrip("\n").partition("\t")
        extra[k] = v

def f(x):
    try:
        return float(x)
    except ValueError:
        return math.nan

def med(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else math.nan

WORKLOADS = [("ka-session", "keep-alive, returning session"),
             ("ka-c100", "keep-alive, returning session, 100 connections"),
             ("ka-c200", "keep-alive, returning session, 200 connections"),
             ("ka-new", "keep-alive, new visitors"),
             ("close", "Connection: close, returning session"), ("1mib", "1 MiB body, keep-alive"),
             ("post1mib", "1 MiB request body (POST), keep-alive")]
TARGETS = ["sessiongate", "sessiongate-b", "nginx", "haproxy", "haproxy-splice", "floor", "direct"]
res = {}
for w, t, r, nreq, rps, p50, p99, errs, non2xx, cpu in rows:
    d = res.setdefault((w, t), {"rps": [], "p50": [], "p99": [], "cpu": [], "errs": 0, "non2xx": 0})
    d["rps"].append(f(rps)); d["p50"].append(f(p50)); d["p99"].append(f(p99)); d["cpu"].append(f(cpu))
    d["errs"] += int(errs) if errs.isdigit() else 0
    d["non2xx"] += int(non2xx) if non2xx.isdigit() else 0
M = {k: {"rps": med(v["rps"]), "p50": med(v["p50"]), "p99": med(v["p99"]), "cpu": med(v["cpu"]),
         "rounds": v["rps"], "errs": v["errs"], "non2xx": v["non2xx"]} for k, v in res.items()}

def num(x, fmt="{:,.0f}"):
    return "n/a" if x is None or math.isnan(x) else fmt.format(x)

def lat(us):
    if math.isnan(us):
        return "n/a"
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.2f} ms"

def ratio(a, b):
    return "n/a" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}"

def mib(b):
    return "n/a" if b is None or math.isnan(b) else f"{b / 1048576:.1f} MiB"

lines = []
for w, title in WORKLOADS:
    if not any((w, t) in M for t in TARGETS):
        continue
    lines.append(f"### {title} (`{w}`)\n")
    lines.append("| target | req/s | ×nginx | ×haproxy | ×floor | p50 | p99 | CPU µs/req | CPU ×nginx | CPU ×haproxy | CPU ×floor | peak RSS | req/s by round | errors |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    ng = M.get((w, "nginx"), {})
    hp = M.get((w, "haproxy"), {})
    fl = M.get((w, "floor"), {})
    for t in TARGETS:
        m = M.get((w, t))
        if not m:
            continue
        name = {"direct": "direct (origin CPU)", "floor": "floor (null proxy)"}.get(t, t)
        err = m["errs"] + m["non2xx"]
        errtxt = "0" if not err else f"{m['errs']} socket, {m['non2xx']} non-2xx"
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            name, num(m["rps"]), ratio(m["rps"], ng.get("rps", math.nan)),
            ratio(m["rps"], hp.get("rps", math.nan)), ratio(m["rps"], fl.get("rps", math.nan)),
            lat(m["p50"]), lat(m["p99"]),
            num(m["cpu"], "{:.1f}"), ratio(m["cpu"], ng.get("cpu", math.nan)),
            ratio(m["cpu"], hp.get("cpu", math.nan)), ratio(m["cpu"], fl.get("cpu", math.nan)),
            mib(hwm.get((w, t), math.nan)),
            " / ".join(num(x) for x in m["rounds"]), errtxt))
    lines.append("")

def ex(k):
    return f(extra.get(k, "nan"))

other = ["| figure | sessiongate | nginx | haproxy | origin alone; floor for syscalls |", "|---|---:|---:|---:|---:|"]
have_other = False
if any(k.startswith("ir_") for k in extra):
    have_other = True
    other.append("| user-space instructions per request (callgrind, Ir) | {} | {} | {} | {} |".format(
        *(num(ex(f"ir_{t}")) for t in ("sessiongate", "nginx", "haproxy", "origin"))))
if any(k.startswith("sys_") for k in extra):
    have_other = True
    other.append("| syscalls per request under load (strace -c -f) | {} | {} | {} | {} (floor) |".format(
        *(num(ex(f"sys_{t}"), "{:.2f}") for t in ("sessiongate", "nginx", "haproxy", "floor"))))
if any(k.startswith("ctx_") for k in extra):
    have_other = True
    def ctx(t):
        return num(ex(f"ctx_{t}"), "{:.3f}") + " (" + num(ex(f"ctxi_{t}"), "{:.3f}") + " preempted)"
    other.append("| context switches of the proxy per request, keep-alive returning, last round "
                 "(/proc/PID/task/*/status; the floor: {}) | {} | {} | {} | |".format(
                     ctx("floor"), *(ctx(t) for t in ("sessiongate", "nginx", "haproxy"))))
if any(k.startswith("idle_") for k in extra):
    have_other = True
    other.append(f"| bytes per idle keep-alive connection (at {int(idle_n):,}) | " + " | ".join(
        num(ex(f"idle_{t}")) + ("" if extra.get(f"idlen_{t}") in (None, idle_n) else f" ({extra.get(f'idlen_{t}')} open)")
        for t in ("sessiongate", "nginx", "haproxy")) + " | |")
if any(k.startswith("idle_") and k.endswith("-tls") for k in extra):
    other.append(f"| bytes per idle keep-alive TLS connection (at {int(idle_n):,}) | " + " | ".join(
        num(ex(f"idle_{t}-tls")) + ("" if extra.get(f"idlen_{t}-tls") in (None, idle_n) else f" ({extra.get(f'idlen_{t}-tls')} open)")
        for t in ("sessiongate", "nginx", "haproxy")) + " | |")
if "store_rss" in extra:
    have_other = True
    other.append("| bytes per stored session at 1M sessions (session_store_bench, RSS / heap) | {} / {} | | | |".format(
        num(ex("store_rss"), "{:.0f}"), num(ex("store_heap"), "{:.0f}")))
if have_other:
    lines.append("### Per-request cost and memory\n")
    lines += other
    lines.append("")
    tops = [(t, extra[f"systop_{t}"]) for t in ("sessiongate", "nginx", "haproxy", "floor")
            if extra.get(f"systop_{t}")]
    if tops:
        lines.append("Top syscalls per request under strace: " + "; ".join(f"{t}: {v}" for t, v in tops) + ".\n")

perf_rows = [(wl, t) for wl, _ in WORKLOADS for t in TARGETS if extra.get(f"perf_{wl}_{t}")]
if perf_rows:
    lines.append("### Where the proxy's CPU goes (perf record -e cpu-clock, self samples)\n")
    lines.append("| workload | target | samples by group | top symbols |")
    lines.append("|---|---|---|---|")
    for wl, t in perf_rows:
        lines.append(f"| {wl} | {t} | {extra[f'perf_{wl}_{t}']} | {extra.get(f'perftop_{wl}_{t}', '')} |")
    lines.append("")

# The issue's targets, informational only.
def chk(ok):
    return "n/a" if ok is None else ("met" if ok else "not met")
def cmp(a, b, op):
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    return op(a, b)
g = lambda w, t, k: M.get((w, t), {}).get(k, math.nan)
ge = lambda a, b: a >= b
le = lambda a, b: a <= b
checks = [
    ("keep-alive returning: req/s >= 1.25x nginx", cmp(g("ka-session", "sessiongate", "rps"), 1.25 * g("ka-session", "nginx", "rps"), ge)),
    ("keep-alive returning: req/s >= 0.90x the floor (null proxy)", cmp(g("ka-session", "sessiongate", "rps"), 0.90 * g("ka-session", "floor", "rps"), ge)),
    ("keep-alive returning: CPU/req <= 1.15x the floor", cmp(g("ka-session", "sessiongate", "cpu"), 1.15 * g("ka-session", "floor", "cpu"), le)),
    ("keep-alive returning: req/s >= 1.25x HAProxy", cmp(g("ka-session", "sessiongate", "rps"), 1.25 * g("ka-session", "haproxy", "rps"), ge)),
    ("keep-alive returning: CPU/req <= 0.8x nginx", cmp(g("ka-session", "sessiongate", "cpu"), 0.8 * g("ka-session", "nginx", "cpu"), le)),
    ("instructions/req <= 0.75x nginx", cmp(ex("ir_sessiongate"), 0.75 * ex("ir_nginx"), le)),
    ("syscalls/req under load <= 5", cmp(ex("sys_sessiongate"), 5.0, le)),
    ("keep-alive returning: p99 <= nginx", cmp(g("ka-session", "sessiongate", "p99"), g("ka-session", "nginx", "p99"), le)),
    ("keep-alive returning: 200 connections >= 0.9x 50 connections", cmp(g("ka-c200", "sessiongate", "rps"), 0.9 * g("ka-session", "sessiongate", "rps"), ge)),
    ("keep-alive returning, 100 connections: req/s >= HAProxy", cmp(g("ka-c100", "sessiongate", "rps"), g("ka-c100", "haproxy", "rps"), ge)),
    ("keep-alive returning, 200 connections: req/s >= HAProxy", cmp(g("ka-c200", "sessiongate", "rps"), g("ka-c200", "haproxy", "rps"), ge)),
    ("new visitors >= 0.9x returning", cmp(g("ka-new", "sessiongate", "rps"), 0.9 * g("ka-session", "sessiongate", "rps"), ge)),
    ("Connection: close >= nginx", cmp(g("close", "sessiongate", "rps"), g("close", "nginx", "rps"), ge)),
    ("1 MiB bodies within 5% of direct", cmp(g("1mib", "sessiongate", "rps"), 0.95 * g("1mib", "direct", "rps"), ge)),
    ("<= 256 bytes per session at 1M", cmp(ex("store_rss"), 256.0, le)),
    ("<= 4 KiB per idle keep-alive connection", cmp(ex("idle_sessiongate"), 4096.0, le)),
]
lines.append("### Issue 7 and 17 targets (informational; the benchmark never fails on a timing)\n")
lines.append("| target | status |")
lines.append("|---|---|")
lines += [f"| {name} | {chk(ok)} |" for name, ok in checks]
lines.append("")
table = "\n".join(lines)

head = f"""# sessiongate benchmark, {meta.get('date')}

- Command: `{meta.get('command')}` ({meta.get('elapsed', '?')} for the whole run)
- Machine: {meta.get('host')}, {meta.get('cores')} cores, CPU {meta.get('cpu')}, Linux {meta.get('kernel')};
  load average at the start {meta.get('loadavg')} (anything above ~0 means other work shared the CPUs)
- Pinning: {meta.get('pinning')}
- Versions: {meta.get('versions')}
- wrk -t1 -c50 (ka-c100, ka-c200: -c100, -c200) -d{meta.get('duration')} --latency, {meta.get('rounds')} rounds (targets alternated round by
  round, a {meta.get('warmup')} unrecorded warm-up each), medians. Every target 1 worker/thread, restarted for
  each workload. CPU µs/req: the proxy process's utime+stime (/proc/PID/stat) over the run divided by
  the requests wrk completed; for "direct" it is the origin's. Peak RSS: VmHWM at the end of the
  workload (nginx: the worker; direct: the origin's worker over the run so far). Instructions: callgrind Ir of a run with {int(cg_n):,} keep-alive
  returning-session requests minus a run with none, divided by {int(cg_n):,}. Syscalls: `strace -c -f`
  attached for one wrk run (strace slows the proxy; the count per request is what matters).

"""
open(out_p, "w").write(head + table)
print()
print(head + table)
PY
log "results written to $results"

# ---------------------------------------------------------------------------------------------
# The companion benchmarks, so that one command gives every figure of issue 17 in one file: each
# prints its own markdown section (its progress goes to stderr), appended here as it is. Each
# starts its own servers with the same pinning and the same DURATION/ROUNDS/WARMUP.
companion() {  # phase script title [fence: the script prints plain columns, not markdown]
  skipped "$1" && return 0
  log "$2 (phase $1; SKIP=\"$1\" leaves it out)"
  local section=$tmp/out/companion-$1.md
  if DURATION=$DURATION ROUNDS=$ROUNDS WARMUP=$WARMUP SG_BIN=$SG_BIN bash "$here/$2" >"$section"; then
    {
      echo
      echo "## $3 (\`$2\`, same run)"
      if [[ ${4:-} == fence ]]; then echo '```text'; cat "$section"; echo '```'; else sed 's/^## /### /' "$section"; fi
    } >>"$results"
  else
    { echo; echo "## $3 (\`$2\`): failed, see its log above"; } >>"$results"
    log "$2 failed; the run goes on"
  fi
}
companion unix unix_bench.sh "Unix-domain upstream against loopback TCP"
companion redis redis_bench.sh "Redis store against the memory store"
companion h2 h2_bench.sh "HTTP/2 over TLS" fence
log "done in $(($(date +%s) - start_time)) s"
exit 0
