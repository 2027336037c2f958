"""Soak test: N minutes of mixed, checked traffic against a two-worker gateway (run by soak.sh).

Traffic, from several client threads (Python stdlib, raw HTTP/1.1 through tests/integration's
HttpClient), each request's answer checked:
  new        GET /echo without a cookie: a Set-Cookie with a fresh token; the upstream saw one
             X-Session-Id and no user
  return     GET /echo with a known token (keep-alive or fresh connection): the upstream saw that
             session's handle and user; any Set-Cookie carries the same token
  login      upstream answers X-Session-Control: rotate + X-Session-Set-User: uN; the client gets a
             new token; with it the upstream sees the same handle and user uN; the old token now
             gives a new, empty session
  logout     upstream answers X-Session-Control: destroy; the client gets an expiring cookie; the
             old token now gives a new, empty session
  upload     POST /upload, 1 MiB (Content-Length or chunked): the upstream's SHA-256 of the body
             equals ours
  download   GET /bytes?n=1MiB (Content-Length or chunked): the body's SHA-256 is the pattern's
  slow       request head written in small pieces, a 256 KiB body read in small slow reads
Fault injection: the upstream process is killed (SIGKILL) every --restart-every seconds and
started again --restart-gap seconds later. A failure (502/504, or the connection closed before a
complete response) whose request overlapped such a window is counted as explained; any other
failure, and any wrong answer at any time, is an unexplained error.

Also samples the gateway's RSS and open descriptors every few seconds, and prints its /metrics
at the end. Exit status 0 when there was no unexplained error and the gateway exited 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import ConnectionClosed, Gateway, HttpClient, free_port, wait_until  # noqa: E402
from upstream import Upstream, pattern_sha256  # noqa: E402

COOKIE = "session_id"
TOKEN_RE = re.compile(rf"^{COOKIE}=([A-Za-z0-9_-]{{43}});")
EXPIRED_RE = re.compile(rf"^{COOKIE}=; .*Max-Age=0")
MIB = 1 << 20


class Check(Exception):
    """A wrong answer: always an unexplained error."""


class Transport(Exception):
    """No complete answer (refused, reset, closed early) or a 5xx from the gateway itself."""


def run_upstream(port: int) -> int:
    """Child mode: the test upstream on `port`, forgetting its request log (it grows otherwise)."""
    up = Upstream(port).start()
    print(f"upstream listening on 127.0.0.1:{up.port}", flush=True)
    while True:
        time.sleep(1.0)
        with up._lock:
            up.requests.clear()


class UpstreamProcess:
    def __init__(self, port: int, log_path: str):
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--upstream-child",
                                      str(self.port)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()

        def accepting():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"upstream exited {self.proc.returncode}; see {self.log_path}")
                return False
        wait_until(accepting, 15.0, 0.02, "the upstream to accept")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok: dict[str, int] = {}
        self.explained: dict[str, int] = {}
        self.unexplained: list[str] = []
        self.unexplained_count = 0
        self.latencies: list[float] = []  # seconds, non-bulk requests only (bounded sample)
        self.requests = 0
        self.bytes = 0

    def add_ok(self, kind: str, n_requests: int, latency: float | None = None, nbytes: int = 0):
        with self.lock:
            self.ok[kind] = self.ok.get(kind, 0) + 1
            self.requests += n_requests
            self.bytes += nbytes
            if latency is not None:
                if len(self.latencies) < 200_000:
                    self.latencies.append(latency)
                else:
                    self.latencies[random.randrange(len(self.latencies))] = latency

    def add_explained(self, kind: str, n_requests: int):
        with self.lock:
            self.explained[kind] = self.explained.get(kind, 0) + 1
            self.requests += n_requests

    def add_unexplained(self, kind: str, message: str, n_requests: int):
        with self.lock:
            self.unexplained_count += 1
            self.requests += n_requests
            if len(self.unexplained) < 50:
                self.unexplained.append(f"{time.strftime('%H:%M:%S')} {kind}: {message}")


class Faults:
    """Windows [kill time, restarted-and-accepting time] during which the upstream was down."""

    def __init__(self):
        self.lock = threading.Lock()
        self.windows: list[list[float]] = []  # [start, end]; end = inf while down

    def begin(self) -> None:
        with self.lock:
            self.windows.append([time.monotonic(), float("inf")])

    def end(self) -> None:
        with self.lock:
            self.windows[-1][1] = time.monotonic()

    def overlaps(self, start: float, end: float) -> bool:
        with self.lock:
            return any(s <= end and start <= e for s, e in self.windows)


class Session:
    def __init__(self, token: str, handle: str, user: str | None):
        self.token, self.handle, self.user = token, handle, user


def respond_target(*headers: tuple[str, str]) -> str:
    q = [("status", "200")] + [("h", f"{k}:{v}") for k, v in headers]
    return "/respond?" + urllib.parse.urlencode(q, quote_via=urllib.parse.quote)


def our_cookies(resp) -> list[str]:
    return [v for v in resp.headers_all("Set-Cookie") if v.startswith(COOKIE + "=")]


def session_headers(resp) -> dict[str, list[str]]:
    """X-Session-* headers the upstream received, from /echo's JSON body."""
    out: dict[str, list[str]] = {}
    for k, v in resp.json()["headers"]:
        if k.lower().startswith("x-session-"):
            out.setdefault(k.lower(), []).append(v)
    return out


class Client(threading.Thread):
    """One simulated browser population: a few sessions, a keep-alive connection, random actions."""

    ACTIONS = [("new", 10), ("return", 40), ("login", 8), ("logout", 5), ("upload", 3),
               ("download", 3), ("slow", 1)]

    def __init__(self, no: int, port: int, stats: Stats, faults: Faults, stop: threading.Event,
                 upload_body: bytes, only_slow: bool = False):
        super().__init__(name=f"client-{no}", daemon=True)
        self.no, self.port, self.stats, self.faults, self.stop_ev = no, port, stats, faults, stop
        self.rng = random.Random(no)
        self.sessions: list[Session] = []
        self.conn: HttpClient | None = None
        self.upload_body = upload_body
        self.upload_sha = hashlib.sha256(upload_body).hexdigest()
        self.only_slow = only_slow
        self.user_seq = 0

    # -- plumbing ------------------------------------------------------------------------------
    def connection(self, fresh: bool) -> HttpClient:
        if fresh or self.conn is None:
            self.drop()
            self.conn = HttpClient(self.port, timeout=30.0)
        return self.conn

    def drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def call(self, method: str, target: str, token: str | None = None, body: bytes | None = None,
             headers=(), fresh: bool | None = None, hashed: bool = False):
        """One request; raises Transport for no answer or a gateway 5xx."""
        if fresh is None:
            fresh = self.rng.random() < 0.3
        hdrs = list(headers)
        if token is not None:
            hdrs.append(("Cookie", f"{COOKIE}={token}"))
        c = self.connection(fresh)
        try:
            c.request(method, target, headers=hdrs, body=body)
            if hashed:
                resp, n, sha = c.read_response_hashed(method)
                resp.hashed = (n, sha)
            else:
                resp = c.read_response(method)
        except (OSError, ConnectionClosed) as e:
            self.drop()
            raise Transport(f"{method} {target[:60]}: {type(e).__name__}: {e}") from None
        if "close" in resp.tokens("Connection"):
            self.drop()
        if resp.status in (502, 504):  # what an upstream outage may cause; any other status is checked
            raise Transport(f"{method} {target[:60]}: {resp.status}")
        return resp

    def expect(self, cond: bool, message: str):
        if not cond:
            raise Check(message)

    def echo(self, token: str | None, **kw):
        resp = self.call("GET", "/echo", token=token, **kw)
        self.expect(resp.status == 200, f"/echo answered {resp.status}")
        return resp, session_headers(resp)

    def new_session_from(self, resp, seen, old: str | None = None) -> Session:
        ours = our_cookies(resp)
        self.expect(len(ours) == 1, f"expected one Set-Cookie for a new session, got {ours}")
        m = TOKEN_RE.match(ours[0])
        self.expect(m is not None, f"bad Set-Cookie {ours[0]!r}")
        self.expect(m.group(1) != old, "the gateway re-issued the old token")
        ids = seen.get("x-session-id", [])
        self.expect(len(ids) == 1 and re.fullmatch(r"[0-9a-f]{32}", ids[0]) is not None,
                    f"upstream saw X-Session-Id {ids}")
        self.expect("x-session-user" not in seen, f"a new session carries a user: {seen}")
        return Session(m.group(1), ids[0], None)

    def pick(self) -> Session | None:
        return self.rng.choice(self.sessions) if self.sessions else None

    def remember(self, s: Session):
        self.sessions.append(s)
        if len(self.sessions) > 20:
            self.sessions.pop(0)

    def forget(self, s: Session):
        if s in self.sessions:
            self.sessions.remove(s)

    # -- actions -------------------------------------------------------------------------------
    def act_new(self):
        resp, seen = self.echo(None)
        self.remember(self.new_session_from(resp, seen))
        return 1

    def act_return(self):
        s = self.pick()
        if s is None:
            return self.act_new()
        resp, seen = self.echo(s.token)
        self.expect(seen.get("x-session-id") == [s.handle],
                    f"returning session: upstream saw id {seen.get('x-session-id')}, expected {s.handle}")
        want_user = [s.user] if s.user else None
        self.expect(seen.get("x-session-user") == want_user,
                    f"returning session: user {seen.get('x-session-user')}, expected {want_user}")
        for c in our_cookies(resp):  # a refresh re-sends the same token
            self.expect(c.startswith(f"{COOKIE}={s.token};"), f"returning session got a new cookie {c!r}")
        return 1

    def act_login(self):
        s = self.pick()
        if s is None:
            return self.act_new()
        self.user_seq += 1
        user = f"u{self.no}x{self.user_seq}"
        resp = self.call("GET", respond_target(("X-Session-Control", "rotate"), ("X-Session-Set-User", user)),
                         token=s.token)
        self.expect(resp.status == 200, f"login answered {resp.status}")
        self.expect(not any(k.lower().startswith("x-session-") for k, _ in resp.headers),
                    f"session directives reached the client: {resp.headers}")
        ours = our_cookies(resp)
        self.expect(len(ours) == 1, f"login: expected one Set-Cookie, got {ours}")
        m = TOKEN_RE.match(ours[0])
        self.expect(m is not None and m.group(1) != s.token, f"login: no new token in {ours[0]!r}")
        old = s.token
        s.token, s.user = m.group(1), user
        resp, seen = self.echo(s.token)
        self.expect(seen.get("x-session-id") == [s.handle], f"after login: id {seen.get('x-session-id')} != {s.handle}")
        self.expect(seen.get("x-session-user") == [user], f"after login: user {seen.get('x-session-user')} != {user}")
        n = 2
        if self.rng.random() < 0.3:  # the old token must be dead
            resp, seen = self.echo(old)
            fresh = self.new_session_from(resp, seen, old=old)
            self.expect(fresh.handle != s.handle, "the pre-login token still reaches the session")
            n += 1
        return n

    def act_logout(self):
        s = self.pick()
        if s is None:
            return self.act_new()
        resp = self.call("GET", respond_target(("X-Session-Control", "destroy")), token=s.token)
        self.expect(resp.status == 200, f"logout answered {resp.status}")
        ours = our_cookies(resp)
        self.expect(len(ours) == 1 and EXPIRED_RE.match(ours[0]) is not None,
                    f"logout: expected an expiring cookie, got {ours}")
        self.forget(s)
        resp, seen = self.echo(s.token)
        fresh = self.new_session_from(resp, seen, old=s.token)
        self.expect(fresh.handle != s.handle, "the session survived its logout")
        self.remember(fresh)
        return 2

    def act_upload(self):
        chunked = self.rng.random() < 0.5
        body = self.upload_body
        if chunked:
            piece = 64 * 1024
            framed = b"".join(b"%x\r\n" % len(body[i:i + piece]) + body[i:i + piece] + b"\r\n"
                              for i in range(0, len(body), piece)) + b"0\r\n\r\n"
            resp = self.call("POST", "/upload", body=framed, headers=[("Transfer-Encoding", "chunked")])
        else:
            resp = self.call("POST", "/upload", body=body)
        self.expect(resp.status == 200, f"upload answered {resp.status}")
        rec = resp.json()
        self.expect(rec["body_length"] == len(body) and rec["body_sha256"] == self.upload_sha,
                    f"upload arrived as {rec['body_length']} bytes, sha {rec['body_sha256'][:12]}")
        return 1, len(body)

    def act_download(self):
        n = MIB + self.rng.randrange(0, 4096)
        chunked = "&chunked=1" if self.rng.random() < 0.5 else ""
        resp = self.call("GET", f"/bytes?n={n}{chunked}", hashed=True)
        self.expect(resp.status == 200, f"download answered {resp.status}")
        got_n, got_sha = resp.hashed
        self.expect(got_n == n and got_sha == pattern_sha256(n) == resp.header("X-Body-Sha256"),
                    f"download of {n} bytes arrived as {got_n} bytes, sha {got_sha[:12]}")
        return 1, n

    def act_slow(self):
        """A slow client: the head in 12 pieces 40 ms apart, then a 256 KiB body read 8 KiB at a time."""
        n = 256 * 1024
        c = HttpClient(self.port, timeout=30.0)
        try:
            head = (f"GET /bytes?n={n} HTTP/1.1\r\nHost: gw.test\r\nUser-Agent: soak-slow\r\n"
                    f"Connection: close\r\n\r\n").encode()
            step = len(head) // 12 + 1
            for i in range(0, len(head), step):
                c.send(head[i:i + step])
                time.sleep(0.04)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
            resp = c.read_head()
            if resp.status in (502, 504):
                raise Transport(f"slow: {resp.status}")
            self.expect(resp.status == 200, f"slow answered {resp.status}")
            h = hashlib.sha256()
            got = 0
            for piece in c.body_chunks(resp, chunk=8192):
                h.update(piece)
                got += len(piece)
                time.sleep(0.002)
            self.expect(got == n and h.hexdigest() == pattern_sha256(n), f"slow body {got} bytes, wrong hash")
        except (OSError, ConnectionClosed) as e:
            raise Transport(f"slow: {type(e).__name__}: {e}") from None
        finally:
            c.close()
        return 1, n

    def run(self):
        kinds = [k for k, _ in self.ACTIONS]
        weights = [w for _, w in self.ACTIONS]
        while not self.stop_ev.is_set():
            kind = "slow" if self.only_slow else self.rng.choices(kinds, weights)[0]
            start = time.monotonic()
            try:
                result = getattr(self, "act_" + kind)()
                n, nbytes = result if isinstance(result, tuple) else (result, 0)
                elapsed = time.monotonic() - start
                self.stats.add_ok(kind, n, elapsed / n if kind in ("new", "return") else None, nbytes)
            except Transport as e:
                if self.faults.overlaps(start, time.monotonic()):
                    self.stats.add_explained(kind, 1)
                else:
                    self.stats.add_unexplained(kind, str(e), 1)
                self.stop_ev.wait(0.05)  # pace retries while the upstream is down
            except Check as e:
                self.stats.add_unexplained(kind, "WRONG ANSWER: " + str(e), 1)
                self.drop()
                # The session's state is now unknown (e.g. a rotation applied but its answer lost).
                self.sessions.clear()
            except Exception as e:  # noqa: BLE001 - a bug in the client is reported, not hidden
                self.stats.add_unexplained(kind, f"client exception {type(e).__name__}: {e}", 1)
                self.drop()
                self.sessions.clear()
        self.drop()


def scrape(admin_port: int) -> str:
    c = HttpClient(admin_port, timeout=10.0)
    try:
        c.request("GET", "/metrics", headers=[("Connection", "close")])
        return c.read_response().body.decode()
    finally:
        c.close()


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description="sessiongate soak test")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--slow-clients", type=int, default=1)
    ap.add_argument("--workers", default="2")
    ap.add_argument("--restart-every", type=float, default=180.0, help="seconds between upstream kills")
    ap.add_argument("--restart-gap", type=float, default=2.0, help="seconds the upstream stays down")
    ap.add_argument("--max-sessions", type=int, default=20000,
                    help="store.memory.max_sessions: small enough that eviction runs and RSS must plateau")
    ap.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples")
    ap.add_argument("--upstream-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.upstream_child is not None:
        return run_upstream(args.upstream_child)

    workdir = os.environ.get("SG_SOAK_DIR") or f"/tmp/sg-soak-{os.getpid()}"
    os.makedirs(workdir, exist_ok=True)
    up = UpstreamProcess(free_port(), os.path.join(workdir, "upstream.log"))
    up.start()
    admin_port = free_port()
    workers = args.workers if args.workers == "auto" else int(args.workers)
    try:
        gw = Gateway(None, up.port, {
            "server": {"workers": workers, "drain_timeout": "5s"},
            "upstream": {"response_timeout": "10s"},
            "admin": {"listen": f"127.0.0.1:{admin_port}"},
            "store.memory": {"max_sessions": args.max_sessions},
            "log": {"level": "warn", "access": "off"},
        })
    except BaseException:
        up.kill()
        raise
    print(f"soak: {args.minutes} min, gateway pid {gw.pid} on :{gw.port} (workers={workers}), "
          f"upstream :{up.port}, {args.clients} clients + {args.slow_clients} slow, upstream killed every "
          f"{args.restart_every:.0f}s for {args.restart_gap:.1f}s; logs in {gw.dir} and {workdir}", flush=True)

    stats, faults, stop = Stats(), Faults(), threading.Event()
    upload_body = random.Random(7).randbytes(MIB)
    clients = [Client(i, gw.port, stats, faults, stop, upload_body) for i in range(args.clients)]
    clients += [Client(100 + i, gw.port, stats, faults, stop, upload_body, only_slow=True)
                for i in range(args.slow_clients)]
    t0 = time.monotonic()
    rss_samples: list[tuple[float, int, int]] = [(0.0, gw.rss_kib(), fd_count(gw.pid))]
    for c in clients:
        c.start()

    duration = args.minutes * 60
    next_restart = t0 + args.restart_every
    next_sample = t0 + args.sample_every
    next_report = t0 + 60
    restarts = 0
    try:
        while (now := time.monotonic()) < t0 + duration:
            if not gw.alive():
                print("soak: THE GATEWAY DIED", flush=True)
                break
            if now >= next_restart:
                faults.begin()
                up.kill()
                time.sleep(args.restart_gap)  # the injected outage itself
                up.start()
                faults.end()
                restarts += 1
                next_restart = time.monotonic() + args.restart_every
            if now >= next_sample:
                rss_samples.append((now - t0, gw.rss_kib(), fd_count(gw.pid)))
                next_sample += args.sample_every
            if now >= next_report:
                with stats.lock:
                    print(f"soak: {int(now - t0) // 60:3d} min  requests {stats.requests}  "
                          f"unexplained {stats.unexplained_count}  explained {sum(stats.explained.values())}  "
                          f"rss {rss_samples[-1][1]} KiB  fds {rss_samples[-1][2]}", flush=True)
                next_report += 60
            time.sleep(0.05)
    finally:
        stop.set()
        for c in clients:
            c.join(60)
        elapsed = time.monotonic() - t0
        alive = gw.alive()
        if alive:
            rss_samples.append((elapsed, gw.rss_kib(), fd_count(gw.pid)))
        metrics = scrape(admin_port) if alive else ""
        rc = gw.stop(15) if alive else gw.proc.returncode
        up.kill()

    lat = sorted(stats.latencies)
    rss = [r for _, r, _ in rss_samples]
    fds = [f for _, _, f in rss_samples]
    after_warmup = [r for t, r, _ in rss_samples if t >= 60] or rss
    print("\n=== soak summary ===")
    print(f"duration            {elapsed / 60:.1f} min, upstream restarts {restarts}")
    print(f"requests            {stats.requests} ({stats.requests / elapsed:.0f}/s), "
          f"body bytes checked {stats.bytes / MIB:.0f} MiB")
    print(f"actions ok          {dict(sorted(stats.ok.items()))}")
    print(f"explained failures  {sum(stats.explained.values())} {dict(sorted(stats.explained.items()))} "
          f"(overlapping an upstream outage)")
    print(f"UNEXPLAINED errors  {stats.unexplained_count}")
    for line in stats.unexplained:
        print(f"    {line}")
    print(f"latency (new/return, per request) p50 {pct(lat, 50) * 1000:.1f} ms  p99 {pct(lat, 99) * 1000:.1f} ms  "
          f"max {pct(lat, 100) * 1000:.1f} ms")
    print(f"gateway RSS KiB     start {rss[0]}  after 1 min {after_warmup[0]}  end {rss[-1]}  max {max(rss)}  "
          f"(samples every {args.sample_every:.0f}s: {len(rss)})")
    marks = [f"{int(t) // 60}m:{r}" for t, r, _ in rss_samples if int(t) % 300 < args.sample_every]
    print(f"gateway RSS KiB every 5 min  {' '.join(marks)}")
    print(f"gateway open fds    start {fds[0]}  end {fds[-1]}  max {max(fds)}")
    print(f"gateway exit code   {rc} (SIGTERM)")
    print("gateway metrics at the end (histogram buckets and zero values left out):")
    for line in metrics.splitlines():
        if line.startswith("#") or "_bucket{" in line or line.endswith(" 0"):
            continue
        print(f"    {line}")
    with open(os.path.join(workdir, "rss.tsv"), "w") as f:
        f.write("seconds\trss_kib\tfds\n")
        f.writelines(f"{t:.0f}\t{r}\t{n}\n" for t, r, n in rss_samples)
    print(f"RSS samples in {os.path.join(workdir, 'rss.tsv')}")
    ok = stats.unexplained_count == 0 and rc == 0
    if ok and not os.environ.get("SG_KEEP_LOGS"):
        shutil.rmtree(gw.dir, ignore_errors=True)  # the gateway's config and logs (kept on failure)
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
