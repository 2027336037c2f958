#!/usr/bin/env python3
"""User-space instructions per request on the gateway's hot paths, under callgrind.

    python3 tests/bench/callgrind_paths.py [--bin build/sessiongate] [-n 2000] [PATH ...]

PATH is one of: returning (keep-alive, one session cookie), new (keep-alive, no cookie: every
request is a new visitor), new-on-return (the same with session.create = "on_return"),
h2-returning (HTTP/2 cleartext with prior knowledge, server.http2_cleartext = true: one
connection, one stream at a time, one session cookie; the requests are sent by h2load, which
must be installed), h2-tls-returning (the same over TLS with ALPN h2: a self-signed EC
certificate made with the openssl command; TLS record work included, the handshake cancels out),
tls-returning (HTTP/1.1 keep-alive over TLS, ALPN http/1.1, one session cookie, also sent by
h2load, with --h1). Default: the first three. --extra TOML is appended to the configuration and --upstream-extra TOML put in its
[upstream] table (a feature to measure: one [[access.rules]], sign = true). For each, the gateway (one worker) runs under valgrind --tool=callgrind in front of a
small origin on loopback; the figure is (Ir with n requests - Ir with none) / n, so start-up and
shutdown cancel out. --nginx BIN measures nginx (one process, master_process off) as the
same session proxy instead, for comparison (its userid cookie; paths returning, h2-returning,
h2-tls-returning, tls-returning).
--redis HOST:PORT puts the gateway's sessions in that Redis (session.store = "redis", key_prefix
"sgbench:"; HTTP/1.1 paths): the first request is repeated until the store is connected (a 503
before), in both runs. --redis-local-cache D sets its store.redis.local_cache (default "0s": every
visit asks Redis; a long one, "1h", measures the visits the local cache answers: valgrind is too
slow for the default 1s to keep a copy alive between two requests).
--connections C (HTTP/1.1 paths) sends the n requests over C keep-alive connections at once, as
wrk does (each connection sends its next request when its response has arrived, so up to C are
in flight and the gateway handles them in batches): both runs open the C connections and make
one request on each first (which opens the upstream pool's connections), so that set-up cancels
out and the figure stays comparable with C = 1 (the default, one connection, as before).
--cache-sim adds callgrind's cache simulation (--cache-sim=yes: first-level and last-level
misses, data and instructions, per request; a simulated cache, the same on every machine), and
--ll SIZE,ASSOC,LINE sets its last level (valgrind's --LL; by default the host's last level,
which on a VM with a large L3 never misses: give a core's L2, e.g. 2097152,16,64).
--keep DIR keeps both callgrind outputs for callgrind_annotate. Instructions, not seconds: repeatable on a busy machine. Prints one line per
path. A benchmark, never a test: it does not fail on a figure. Standard library only.
"""
import argparse
import http.server
import selectors
import os
import re
import shutil
import ssl
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTRA = {"returning": "", "new": "", "new-on-return": 'create = "on_return"\n', "h2-returning": "",
         "h2-tls-returning": "", "tls-returning": ""}
H2LOAD_PATHS = ("h2-returning", "h2-tls-returning", "tls-returning")  # the requests sent by h2load
TLS_PATHS = ("h2-tls-returning", "tls-returning")
DEFAULT_PATHS = ["returning", "new", "new-on-return"]


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b"x" * 100

    one_write = False  # --one-write-origin

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        if self.one_write:  # head and body in one send, as nginx or most applications answer
            self._headers_buffer.extend([b"\r\n", self.body])
            self.flush_headers()
            return
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


class OriginServer(http.server.ThreadingHTTPServer):
    request_queue_size = 1024  # --connections: the gateway may open hundreds at once
    daemon_threads = True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=90):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head).group(1))
    while len(rest) < length:
        rest += sock.recv(65536)
    cookie = re.search(rb"(?i)\r\nset-cookie:\s*([^;\r]+)", head)
    return head.split(b" ", 2)[1], cookie.group(1).decode() if cookie else "", rest[length:]


REDIS = ""  # --redis HOST:PORT, or empty for the memory store
REDIS_LOCAL_CACHE = "0s"  # --redis-local-cache
CONNECTIONS = 1  # --connections C
CACHE_SIM = False  # --cache-sim
LL = ""  # --ll SIZE,ASSOC,LINE
EVENTS = ("Ir", "I1mr", "ILmr", "D1mr", "D1mw", "DLmr", "DLmw")  # what --cache-sim prints


def gateway_command(binary, tmp, path, port, origin_port, extra, upstream_extra):
    store = 'store = "redis"\n' if REDIS else ""
    if REDIS:
        extra += (f'\n[store.redis]\naddress = "{REDIS}"\nkey_prefix = "sgbench:"\ntimeout = "5s"\n'
                  f'local_cache = "{REDIS_LOCAL_CACHE}"\n')
    conf = os.path.join(tmp, "gateway.toml")
    with open(conf, "w") as f:
        h2c = "http2_cleartext = true\n" if path == "h2-returning" else ""
        tls = ""
        if path in TLS_PATHS:
            cert, key = make_certificate(tmp)
            tls = f'[tls]\ncertificate = "{cert}"\nprivate_key = "{key}"\n'
        f.write(f'[server]\nlisten = ["127.0.0.1:{port}"]\nworkers = 1\n{h2c}'
                f'[upstream]\nservers = ["127.0.0.1:{origin_port}"]\n{upstream_extra}\n'
                f'[session]\n{EXTRA[path]}{store}[log]\naccess = "off"\nlevel = "warn"\n{tls}' + extra)
    return [binary, "--config", conf], port


def make_certificate(tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=localhost"], check=True, capture_output=True)
    return cert, key


def nginx_command(binary, tmp, path, port, origin_port):
    """nginx in one process (master_process off) as a session proxy like h2_bench.sh's: the
    userid cookie, passed upstream as X-Session-Id, a keep-alive pool to the origin. For
    h2-returning it listens h2c on `port` and HTTP/1.1 on another (for the first cookie)."""
    temp = "".join(f"  {k}_temp_path {tmp}/{k};\n"
                   for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    listen = f"    listen 127.0.0.1:{port};\n"
    cookie_port = port
    if path == "h2-returning":
        cookie_port = free_port()
        listen = f"    listen 127.0.0.1:{port} http2;\n    listen 127.0.0.1:{cookie_port};\n"
    elif path in TLS_PATHS:
        cert, key = make_certificate(tmp)
        http2 = " http2" if path == "h2-tls-returning" else ""
        listen = (f"    listen 127.0.0.1:{port} ssl{http2};\n    ssl_certificate {cert};\n"
                  f"    ssl_certificate_key {key};\n")
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""master_process off;
daemon off;
{user}error_log {tmp}/nginx.err warn;
pid {tmp}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
{temp}  access_log off;
  keepalive_requests 100000000;
  http2_max_requests 100000000;
  upstream origin {{
    server 127.0.0.1:{origin_port};
    keepalive 64;
  }}
  server {{
{listen}    userid on;
    userid_name uid;
    userid_path /;
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Session-Id $uid_got$uid_set;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
""")
    return [binary, "-c", conf, "-p", tmp], cookie_port


def run(binary, path, n, origin_port, extra="", upstream_extra="", keep=None, nginx=None):
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        if nginx:
            cmd, cookie_port = nginx_command(nginx, tmp, path, port, origin_port)
        else:
            cmd, cookie_port = gateway_command(binary, tmp, path, port, origin_port, extra,
                                               upstream_extra)
        out = os.path.join(tmp, "cg.out")
        sim = ["--cache-sim=yes"] + ([f"--LL={LL}"] if LL else []) if CACHE_SIM else []
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
                                + sim + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not wait_port(cookie_port):
                raise RuntimeError("the proxy did not start")
            if path in H2LOAD_PATHS:
                h2load_requests(port, n, cookie_port, path in TLS_PATHS, path == "tls-returning")
            elif CONNECTIONS > 1:
                http1_concurrent_requests(port, path, n, CONNECTIONS)
            else:
                http1_requests(port, path, n)
        finally:
            proc.terminate()
            proc.wait(timeout=120)
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(out, os.path.join(keep, f"callgrind.{path}.n{n}.out"))
        return read_totals(out)


def read_totals(out):
    """{event: count} from a callgrind output's summary line (Ir alone without --cache-sim)."""
    names = []
    with open(out) as f:
        for line in f:
            if line.startswith("events:"):
                names = line.split()[1:]
            if line.startswith("summary:") or line.startswith("totals:"):
                return dict(zip(names, map(int, line.split()[1:])))
    raise RuntimeError("no callgrind total")


def http1_requests(port, path, n):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    cookie, buf = "", b""
    # One unmeasured request would be counted: take it in both runs (with Redis, until the store
    # is connected; a 503 may close the connection).
    if path == "returning" or REDIS:
        while True:
            s.sendall(f"GET / HTTP/1.1\r\nHost: a\r\n\r\n".encode())
            status, cookie, buf = read_response(s, buf)
            if status == b"200" or not REDIS:
                break
            time.sleep(0.2)
            s.close()
            s, buf = socket.create_connection(("127.0.0.1", port), timeout=60), b""
        if path != "returning":
            cookie = ""
    for _ in range(n):
        req = "GET / HTTP/1.1\r\nHost: a\r\n"
        if cookie:
            req += f"Cookie: {cookie}\r\n"
        s.sendall((req + "\r\n").encode())
        status, _, buf = read_response(s, buf)
        if status != b"200":
            raise RuntimeError(f"status {status}")
    s.close()


def http1_concurrent_requests(port, path, n, connections):
    """n requests over `connections` keep-alive connections, each sending its next request when
    its response has arrived (as wrk does). First one request on every connection, all at once,
    in both runs (n = 0 too): it opens the connections upstream, and with the returning path it
    gives the cookie."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(connections)]
    bufs = [b""] * connections
    for s in socks:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    cookie = ""
    for i, s in enumerate(socks):
        status, got, bufs[i] = read_response(s, bufs[i])
        if status != b"200":
            raise RuntimeError(f"status {status}")
        cookie = cookie or got
    req = b"GET / HTTP/1.1\r\nHost: a\r\n"
    if path == "returning":
        req += f"Cookie: {cookie}\r\n".encode()
    req += b"\r\n"
    sel = selectors.DefaultSelector()
    sent = done = 0
    for i, s in enumerate(socks):
        if sent < n:
            s.sendall(req)
            sent += 1
        sel.register(s, selectors.EVENT_READ, i)
    while done < n:
        for key, _ in sel.select(timeout=60):
            i, s = key.data, key.fileobj
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the gateway")
            bufs[i] += chunk
            while complete_response(bufs[i]):
                status, _, bufs[i] = read_response(s, bufs[i])
                if status != b"200":
                    raise RuntimeError(f"status {status}")
                done += 1
                if sent < n:
                    s.sendall(req)
                    sent += 1
    for s in socks:
        s.close()


def complete_response(buf):
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = int(re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head).group(1))
    return len(rest) >= length


def h2load_requests(port, n, cookie_port, tls, h1):
    """The cookie from one HTTP/1.1 request (a listener with http2_cleartext takes both), then
    h2load: one connection (h2c, h2 or with h1 HTTP/1.1 keep-alive), one request at a time, 1 + n
    requests with that cookie (the connection and the first request cancel out against the n = 0
    run)."""
    s = socket.create_connection(("127.0.0.1", cookie_port), timeout=60)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    _, cookie, _ = read_response(s, b"")
    s.close()
    protocol = ["--h1"] if h1 else []
    out = subprocess.run(["h2load"] + protocol + ["-n", str(n + 1), "-c", "1", "-m", "1", "-H",
                          f"cookie: {cookie}", f"{'https' if tls else 'http'}://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=3600).stdout
    if not re.search(rf"status codes: {n + 1} 2xx", out):
        raise RuntimeError("h2load: not every request succeeded:\n" + out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "sessiongate"))
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--extra", default="")
    ap.add_argument("--upstream-extra", default="")
    ap.add_argument("--nginx", metavar="NGINX", help="measure this nginx binary instead of the "
                    "gateway, configured as the same session proxy (its userid cookie)")
    ap.add_argument("--one-write-origin", action="store_true",
                    help="the origin sends head and body in one write (default: two, as the "
                    "figures before 2026-12-02 were measured): a proxy then sees one upstream "
                    "read, one client write (one TLS record) per request")
    ap.add_argument("--keep", metavar="DIR", help="keep the callgrind outputs there "
                    "(callgrind_annotate DIR/callgrind.PATH.nN.out)")
    ap.add_argument("--redis", metavar="HOST:PORT", default="",
                    help="the gateway keeps its sessions in this Redis")
    ap.add_argument("--redis-local-cache", default="0s", metavar="DURATION",
                    help="with --redis: store.redis.local_cache (default 0s)")
    ap.add_argument("--connections", type=int, default=1, metavar="C",
                    help="HTTP/1.1 paths: the n requests over C keep-alive connections at once "
                    "(as wrk does; default 1)")
    ap.add_argument("--cache-sim", action="store_true",
                    help="also simulate the caches: first- and last-level misses per request")
    ap.add_argument("--ll", default="", metavar="SIZE,ASSOC,LINE",
                    help="with --cache-sim: the simulated last-level cache (valgrind --LL)")
    ap.add_argument("paths", nargs="*", default=DEFAULT_PATHS, choices=list(EXTRA))
    args = ap.parse_args()
    global REDIS, REDIS_LOCAL_CACHE, CONNECTIONS, CACHE_SIM, LL
    REDIS, CONNECTIONS, CACHE_SIM, LL = args.redis, args.connections, args.cache_sim, args.ll
    REDIS_LOCAL_CACHE = args.redis_local_cache
    extra = args.extra.replace("\\n", "\n")
    upstream_extra = args.upstream_extra.replace("\\n", "\n")
    Origin.one_write = args.one_write_origin
    server = OriginServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for path in args.paths:
        base = run(args.bin, path, 0, server.server_address[1], extra, upstream_extra, args.keep,
                   args.nginx)
        full = run(args.bin, path, args.n, server.server_address[1], extra, upstream_extra,
                   args.keep, args.nginx)
        per = {e: (full[e] - base.get(e, 0)) / args.n for e in full}
        conns = f", {CONNECTIONS} connections" if CONNECTIONS > 1 else ""
        print(f"{path:14s} {per['Ir']:10.0f} instructions/request  (n={args.n}{conns})")
        if CACHE_SIM:
            print("    per request: " + ", ".join(f"{e} {per[e]:.1f}" for e in EVENTS if e in per))
    server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
