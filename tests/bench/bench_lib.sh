# Shared parts of the benchmark scripts in this folder (run_bench.sh, tls_bench.sh, redis_bench.sh,
# run_testssl.sh). Sourced, not run: each script does
#
#   here=$(cd "$(dirname "$0")" && pwd)
#   . "$here/bench_lib.sh"
#
# Sets root (the repository), start_time, and defines:
#   log MSG...             "[elapsed s] MSG" on stderr
#   bench_require SCRIPT TOOL...  exit 2 naming the missing tools (and $SG_BIN if not built)
#   bench_pin_cpus         ncpu, LOAD_CPU/SRV_CPU (0 and 1 with two CPUs or more, else 0 and 0),
#                          PIN_LOAD/PIN_SRV (taskset commands), CLK_TCK
#   bench_tmpdir PREFIX SUBDIR...  tmp=/tmp/PREFIX.XXXXXX (mode 755) with subdirectories; bench_traps
#   bench_traps            pids=(); at exit stop every pid in pids and remove $tmp (KEEP_TMP=1 keeps
#                          it and calls bench_kept_note, which a script may redefine)
#   stop_pid PID [SIGNAL]  signal (TERM), wait up to 10 s, then SIGKILL
#   bench_helper <<'PY'    writes $helper: the shared Python below, then the script's own Python
#                          (which may add to COMMANDS), then the command dispatcher; py CMD ARGS...
#   bench_cert TYPE CERT KEY DAYS  self-signed localhost certificate: EC P-256, or RSA 2048 ("rsa")
#   nginx_main, nginx_http_common, write_origin_conf, nginx_upstream_origin, nginx_session_proxy
#                          nginx configuration pieces: the origin (answers "$body\n", which the
#                          script sets), the pool to $P_ORIGIN, the session-cookie proxy
#   gateway_toml PORT ORIGIN-PORT [SERVER-LINES]  a 1-worker gateway configuration, access log off
#   bench_wrk OUT URL DURATION CONNS [WRK-OPTIONS...]  wrk -t1 --latency on the load CPU
# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # variables set here for the scripts, or by them for here

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
start_time=$(date +%s)
log() { printf '[%4ds] %s\n' $(($(date +%s) - start_time)) "$*" >&2; }

bench_require() {  # script tool...: exits 2 naming what is missing
  local name=$1 tool missing=()
  shift
  for tool; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [[ -x $SG_BIN ]] || missing+=("$SG_BIN (cmake --build build --target sessiongate)")
  if ((${#missing[@]})); then
    echo "$name: missing: ${missing[*]}" >&2
    exit 2
  fi
}

bench_pin_cpus() {  # the load generator on CPU 0, the servers on CPU 1 when there are two CPUs
  ncpu=$(nproc)
  if ((ncpu >= 2)); then
    LOAD_CPU=0
    SRV_CPU=1
  else
    LOAD_CPU=0
    SRV_CPU=0
  fi
  PIN_LOAD=(taskset -c "$LOAD_CPU")
  PIN_SRV=(taskset -c "$SRV_CPU")
  CLK_TCK=$(getconf CLK_TCK)
}

# ---------------------------------------------------------------------------------------------
# Temporary directory and the processes started: stopped at exit, whatever the exit.
bench_tmpdir() {  # prefix subdir...
  local d
  tmp=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$tmp"  # the nginx workers read configurations and files in it
  shift
  for d; do
    mkdir -p "$tmp/$d"
  done
  bench_traps
}

bench_traps() {
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

stop_pid() {  # pid [signal]: signal, wait up to 10 s, then SIGKILL
  local pid=$1 sig=${2:-TERM} i
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -"$sig" "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

bench_kept_note() { log "temporary files kept in $tmp"; }

bench_cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    stop_pid "$pid"
  done
  if [[ ${KEEP_TMP:-0} == 1 ]]; then
    bench_kept_note
  else
    rm -rf "$tmp"
  fi
}

# ---------------------------------------------------------------------------------------------
# The Python helper (standard library only): `py COMMAND ARGS...`. A script's own Python comes on
# stdin and registers its commands in COMMANDS; a command's return value is the exit status.
bench_helper() {
  helper=$tmp/helper.py
  {
    cat <<'PY'
import os, re, selectors, socket, ssl, statistics, sys, time

def free_ports(n):
    """Prints n free loopback ports."""
    socks = [socket.socket() for _ in range(int(n))]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()

def wait_port(port, timeout):
    """Exits 0 once the port accepts a connection, 1 after timeout seconds."""
    end = time.time() + float(timeout)
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
            return 0
        except OSError:
            time.sleep(0.05)
    return 1

def tls_ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c

def wait_tls(port, timeout):
    """Exits 0 once a TLS handshake on the port succeeds, 1 after timeout seconds."""
    end = time.time() + float(timeout)
    while time.time() < end:
        try:
            with tls_ctx().wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=1)):
                return 0
        except OSError:
            time.sleep(0.05)
    return 1

def read_response(sock, buf):
    """Reads one response; returns (status, headers list, leftover bytes)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:] if ":" in l]
    length = 0
    chunked = False
    for k, v in headers:
        if k.lower() == "content-length":
            length = int(v)
        if k.lower() == "transfer-encoding" and "chunked" in v.lower():
            chunked = True
    if chunked:
        raise ValueError("chunked response not expected")
    while len(rest) < length:
        chunk = sock.recv(max(65536, length - len(rest)))
        if not chunk:
            raise ConnectionError("closed in body")
        rest += chunk
    return status, headers, rest[length:]

def request(port, cookie, host=""):
    """GET / with Host: host (default 127.0.0.1:port) and the cookie if any."""
    r = f"GET / HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n"
    if cookie:
        r += f"Cookie: {cookie}\r\n"
    return (r + "\r\n").encode()

def get_cookie(port, host=""):
    """Prints name=value of the first Set-Cookie of GET / without a cookie (empty if none)."""
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    s.sendall(request(port, "", host))
    status, headers, _ = read_response(s, b"")
    s.close()
    for k, v in headers:
        if k.lower() == "set-cookie":
            print(v.split(";", 1)[0].strip())
            return
    print("")

def keepalive_run(port, n, cookie, host="", timeout=120):
    """n requests on one keep-alive connection, one after another; returns (not 200, with Set-Cookie)."""
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=timeout)
    req = request(port, cookie, host)
    buf, bad, cookies = b"", 0, 0
    for _ in range(int(n)):
        s.sendall(req)
        status, headers, buf = read_response(s, buf)
        bad += status != 200
        cookies += any(k.lower() == "set-cookie" for k, v in headers)
    s.close()
    return bad, cookies

def ticks(pid):
    """Prints utime+stime of the process in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    print(int(fields[11]) + int(fields[12]))

def uticks(pid):
    """Prints utime alone (user space) of the process in clock ticks (field 14 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        print(int(f.read().rsplit(")", 1)[1].split()[11]))

def ctxsw(pid):
    """Prints the context switches of every thread of the process so far, all and involuntary
    (preempted), from /proc/PID/task/*/status (a thread that ended is not counted)."""
    total = involuntary = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches"):
                    total += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    total += int(line.split()[1])
                    involuntary += int(line.split()[1])
    print(total, involuntary)

UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}

def parse_dur(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")

def parse_wrk(path):
    """Prints: requests req_per_s p50_us p99_us errors non2xx (nan when absent)."""
    text = open(path, errors="replace").read()
    def grab(pattern, conv=float, default=float("nan")):
        m = re.search(pattern, text, re.M)
        return conv(m.group(1)) if m else default
    requests = grab(r"^\s*(\d+) requests in", int, 0)
    rps = grab(r"^Requests/sec:\s*([\d.]+)")
    p50 = grab(r"^\s*50%\s+(\S+)", parse_dur)
    p99 = grab(r"^\s*99%\s+(\S+)", parse_dur)
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors = sum(int(x) for x in m.groups())
    non2xx = grab(r"Non-2xx or 3xx responses:\s*(\d+)", int, 0)
    print(requests, rps, p50, p99, errors, non2xx)

def median(*xs):
    """Prints the median of the arguments that are not nan, one decimal (nan if none)."""
    v = [float(x) for x in xs if x not in ("nan", "")]
    print(f"{statistics.median(v):.1f}" if v else "nan")

def ratio(a, b):
    """Prints a / b, two decimals (nan if it cannot be computed)."""
    try:
        print(f"{float(a) / float(b):.2f}")
    except (ValueError, ZeroDivisionError):
        print("nan")

COMMANDS = {"free_ports": free_ports, "wait_port": wait_port, "wait_tls": wait_tls,
            "get_cookie": get_cookie, "ticks": ticks, "uticks": uticks, "ctxsw": ctxsw,
            "parse_wrk": parse_wrk, "median": median, "ratio": ratio}
PY
    cat
    cat <<'PY'

if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    sys.exit(COMMANDS[cmd](*args) or 0)
PY
  } >"$helper"
}
py() { python3 "$helper" "$@"; }

# ---------------------------------------------------------------------------------------------
# Configurations. The nginx pieces keep every connection alive (keepalive_requests 100000000:
# nginx's default closes a keep-alive connection every 1000 requests) and keep all files in $tmp.
bench_cert() {  # type cert key days
  local newkey
  if [[ $1 == rsa ]]; then newkey=(-newkey rsa:2048); else newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1); fi
  openssl req -x509 "${newkey[@]}" -nodes -keyout "$3" -out "$2" -days "$4" -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null || { echo "openssl req failed" >&2; exit 1; }
  chmod 600 "$3"
}

nginx_main() {  # name worker-connections: 1 worker in the foreground, $tmp/name.err and .pid
  cat <<EOF
worker_processes 1;
daemon off;
error_log $tmp/$1.err warn;
pid $tmp/$1.pid;
worker_rlimit_nofile $(ulimit -n);
$( ((EUID == 0)) && echo 'user root;')
events { worker_connections $2; multi_accept off; }
EOF
}

nginx_http_common() {  # name
  cat <<EOF
  client_body_temp_path $tmp/temp/$1-body;
  proxy_temp_path $tmp/temp/$1-proxy;
  fastcgi_temp_path $tmp/temp/$1-fastcgi;
  uwsgi_temp_path $tmp/temp/$1-uwsgi;
  scgi_temp_path $tmp/temp/$1-scgi;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
EOF
}

# The origin: `return 200` with "$body\n" on /, access log off.
write_origin_conf() {  # file name port worker-connections [main lines] [http lines] [server lines]
  cat >"$1" <<EOF
$(nginx_main "$2" "$4")
${5:-}
http {
$(nginx_http_common "$2")
  access_log off;
  ${6:-}
  server {
    listen 127.0.0.1:$3 backlog=4096;
    ${7:-}
    location / { return 200 "$body\n"; }
  }
}
EOF
}

nginx_upstream_origin() {  # a keep-alive pool to the origin on $P_ORIGIN
  cat <<EOF
  upstream origin {
    server 127.0.0.1:$P_ORIGIN;
    keepalive 64;
    keepalive_requests 100000000;
  }
EOF
}

nginx_session_proxy() {  # userid-flags: the userid cookie, passed upstream as X-Session-Id
  cat <<EOF
    userid on;
    userid_name uid;
    userid_path /;
    userid_flags $1;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Session-Id \$uid_got\$uid_set;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
    }
EOF
}

gateway_toml() {  # port origin-port [more [server] lines]; a script appends its own sections
  cat <<EOF
[server]
listen = ["127.0.0.1:$1"]
workers = 1
${3:-}
[upstream]
servers = ["127.0.0.1:$2"]
[log]
access = "off"
level = "warn"
EOF
}

# ---------------------------------------------------------------------------------------------
bench_wrk() {  # out url duration connections [wrk options...]: one wrk thread on the load CPU
  local out=$1 url=$2 duration=$3 conns=$4
  shift 4
  "${PIN_LOAD[@]}" wrk -t1 -c"$conns" -d"$duration" --latency "$@" "$url" >"$out" 2>&1
}
