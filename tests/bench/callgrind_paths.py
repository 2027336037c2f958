#!/usr/bin/env python3
"""User-space instructions per request on the gateway's hot paths, under callgrind.

    python3 tests/bench/callgrind_paths.py [--bin build/sessiongate] [-n 2000] [PATH ...]

PATH is one of: returning (keep-alive, one session cookie), new (keep-alive, no cookie: every
request is a new visitor), new-on-return (the same with session.create = "on_return"). Default:
all three. --extra TOML is appended to the configuration and --upstream-extra TOML put in its
[upstream] table (a feature to measure: one [[access.rules]], sign = true). --redis HOST:PORT
puts the sessions in that Redis (session.store = "redis", key_prefix "sgbench:"); the first
request is repeated until the store is connected (a 503 before), in both runs. For each, the gateway (one worker) runs under valgrind --tool=callgrind in front of a
small origin on loopback; the figure is (Ir with n requests - Ir with none) / n, so start-up and
shutdown cancel out. Instructions, not seconds: repeatable on a busy machine. Prints one line per
path. A benchmark, never a test: it does not fail on a figure. Standard library only.
"""
import argparse
import http.server
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTRA = {"returning": "", "new": "", "new-on-return": 'create = "on_return"\n'}


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b"x" * 100

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


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


def run(binary, path, n, origin_port, extra="", upstream_extra="", redis=""):
    port = free_port()
    store = f'store = "redis"\n' if redis else ""
    if redis:
        extra += f'\n[store.redis]\naddress = "{redis}"\nkey_prefix = "sgbench:"\ntimeout = "5s"\n'
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "gateway.toml")
        with open(conf, "w") as f:
            f.write(f'[server]\nlisten = ["127.0.0.1:{port}"]\nworkers = 1\n'
                    f'[upstream]\nservers = ["127.0.0.1:{origin_port}"]\n{upstream_extra}\n'
                    f'[session]\n{EXTRA[path]}{store}[log]\naccess = "off"\nlevel = "warn"\n' + extra)
        out = os.path.join(tmp, "cg.out")
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                 binary, "--config", conf],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not wait_port(port):
                raise RuntimeError("gateway did not start")
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            cookie, buf = "", b""
            # One unmeasured request would be counted: take it in both runs (with Redis, until the
            # store is connected).
            if path == "returning" or redis:
                while True:
                    s.sendall(f"GET / HTTP/1.1\r\nHost: a\r\n\r\n".encode())
                    status, cookie, buf = read_response(s, buf)
                    if status == b"200" or not redis:
                        break
                    time.sleep(0.2)
                    s.close()  # a 503 may close the connection: take a new one
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
        finally:
            proc.terminate()
            proc.wait(timeout=120)
        with open(out) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    return int(line.split()[1])
    raise RuntimeError("no callgrind total")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "sessiongate"))
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--extra", default="")
    ap.add_argument("--upstream-extra", default="")
    ap.add_argument("--redis", default="", help="HOST:PORT of a Redis for the sessions")
    ap.add_argument("paths", nargs="*", default=list(EXTRA))
    args = ap.parse_args()
    extra = args.extra.replace("\\n", "\n")
    upstream_extra = args.upstream_extra.replace("\\n", "\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for path in args.paths:
        base = run(args.bin, path, 0, server.server_address[1], extra, upstream_extra, args.redis)
        full = run(args.bin, path, args.n, server.server_address[1], extra, upstream_extra,
                   args.redis)
        print(f"{path:14s} {(full - base) / args.n:10.0f} instructions/request  (n={args.n})")
    server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
