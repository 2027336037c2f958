"""Helpers for the Redis store integration tests (test_redis.py): redis-server, a replica, Sentinels
and HAProxy as child processes on free loopback ports, each in its own temp dir, bounded in time
and stopped at test cleanup even when the test fails. Python 3 standard library only.

- ``resp(port, *args)``: one command on a fresh connection, RESP2 reply decoded (bytes, int, list,
  None; an error reply raises ``RedisError``).
- ``RedisServer(test, port=0, extra=[], replicaof=None)``: redis-server with persistence off
  (``--save "" --appendonly no``). ``.port``, ``.address``, ``.cmd(*args)``, ``.kill()``
  (SIGKILL), ``.start()`` (again, on the same port), ``.suspend()`` / ``.resume()``.
- ``wait_replica_online(master)``: until the master reports a replica in state online.
- ``Sentinel(test, master_port, name, quorum)``: ``redis-server sentinel.conf --sentinel``.
- ``sentinel_failover(sentinel, name, timeout)``: SENTINEL FAILOVER, retried while the sentinel
  has no good replica yet (NOGOODSLAVE) or a failover is already running.
- ``HAProxy(test, backends, check_path)``: Debian haproxy in the foreground (``-db``), http mode,
  ``balance roundrobin``, ``option httpchk GET <path>``, ``http-check expect status 200``,
  ``check inter 200ms fall 2 rise 1``; ``.port``, ``.server_states()`` via the admin socket.
- ``session_key(prefix, token)``: the store's key for a token, ``prefix + hex(sha256(token))``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import free_port, missing_tool, wait_until

START_DEADLINE_S = 10.0


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if not have(t)]
    if missing:
        missing_tool(f"not installed: {', '.join(missing)}")


def session_key(prefix: str, token: str) -> str:
    return prefix + hashlib.sha256(token.encode("ascii")).hexdigest()


# -- a minimal RESP2 client ---------------------------------------------------------------------

class RedisError(Exception):
    pass


def _encode(args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = str(a)
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, bytearray()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("redis closed the connection")
        self.buf += data

    def line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return out
            self._fill()

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[: n + 2]
        return out

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RedisError(rest.decode("latin-1"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ConnectionError(f"unexpected RESP line {line!r}")


def resp(port: int, *args, timeout: float = 2.0, host: str = "127.0.0.1"):
    """One command on a fresh connection; returns the decoded reply."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(_encode(args))
        return _Reader(s).reply()


def resp_ok(port: int, *args, timeout: float = 0.5):
    """The reply, or None when the server does not answer (down, refused, timed out, error)."""
    try:
        return resp(port, *args, timeout=timeout)
    except (OSError, ConnectionError, RedisError):
        return None


# -- processes ----------------------------------------------------------------------------------

class _Process:
    """A child process with stdout/stderr in files of its own temp dir; cleaned up by `test`."""

    name = "process"

    def __init__(self, test: unittest.TestCase | None):
        self.dir = tempfile.mkdtemp(prefix=f"sg-it-{self.name}-")
        self.log_path = os.path.join(self.dir, "output.log")
        self.proc: subprocess.Popen | None = None
        if test is not None:
            test.addCleanup(self._cleanup)

    def _spawn(self, argv: list[str]) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.dir, start_new_session=True)

    def _start(self, argv, write_config=lambda: None, fixed_port: bool = False, retry_pause: float = 0.0) -> None:
        """Spawn argv() until _ready() holds. Each attempt takes a free port (unless fixed_port) and
        calls write_config() first: a port taken by someone else meanwhile is retried, until the
        deadline."""
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if not fixed_port:
                self.port = free_port()
            write_config()
            self._spawn(argv())
            if self._wait_ready(deadline):
                return
            self.kill()
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.name} did not start on port {self.port}: {self.failure_details()}")
            time.sleep(retry_pause)

    def _ready(self) -> bool:
        """Whether the started process serves; by default, its port accepts a connection."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def _wait_ready(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._ready():
                return True
            time.sleep(0.01)
        return False

    def failure_details(self) -> str:
        return self.output()[-2000:]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL (after SIGCONT, in case it was suspended) and reap."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        except ProcessLookupError:
            pass

    def suspend(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def _cleanup(self) -> None:
        self.kill()
        if os.environ.get("SG_KEEP_LOGS"):
            print(f"\n[{self.name} files kept in {self.dir}]")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer(_Process):
    """redis-server on 127.0.0.1, persistence off (a restart loses every key)."""

    name = "redis"

    def __init__(self, test: unittest.TestCase | None, port: int = 0, extra=(), replicaof: int | None = None,
                 start: bool = True):
        super().__init__(test)
        self.port = port
        self.extra = list(extra)
        if replicaof is not None:
            self.extra += ["--replicaof", "127.0.0.1", str(replicaof)]
        if start:
            self.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--dir", self.dir, "--loglevel", "notice",
                "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0", *self.extra]

    def start(self) -> "RedisServer":
        """Start (again). A fixed port is retried for a while (it may still be in TIME_WAIT use)."""
        self._start(self._argv, fixed_port=self.port != 0, retry_pause=0.1)
        return self

    def _ready(self) -> bool:
        return resp_ok(self.port, "PING") == b"PONG"

    def cmd(self, *args, timeout: float = 2.0):
        return resp(self.port, *args, timeout=timeout)


def wait_replica_online(master: RedisServer, timeout: float = 10.0) -> None:
    wait_until(lambda: b"state=online" in (resp_ok(master.port, "INFO", "replication") or b""), timeout,
               interval=0.02, message="the replica to be online")


class Sentinel(_Process):
    """A Sentinel monitoring `name` at 127.0.0.1:master_port (quorum `quorum`)."""

    name = "sentinel"

    def __init__(self, test: unittest.TestCase | None, master_port: int, name: str = "mymaster",
                 quorum: int = 1, down_after_ms: int = 1000, failover_timeout_ms: int = 5000):
        super().__init__(test)
        self.master_name = name
        conf = os.path.join(self.dir, "sentinel.conf")

        def write_config():  # the sentinel rewrites it: a fresh copy per attempt
            with open(conf, "w") as f:
                f.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                        f"sentinel monitor {name} 127.0.0.1 {master_port} {quorum}\n"
                        f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
                        f"sentinel failover-timeout {name} {failover_timeout_ms}\n"
                        f"sentinel parallel-syncs {name} 1\n")
        self._start(lambda: ["redis-server", conf, "--sentinel"], write_config)

    def _ready(self) -> bool:
        return resp_ok(self.port, "PING") == b"PONG"

    def master_addr(self) -> str | None:
        r = resp_ok(self.port, "SENTINEL", "get-master-addr-by-name", self.master_name)
        return f"{r[0].decode()}:{r[1].decode()}" if r else None

    def cmd(self, *args, timeout: float = 2.0):
        return resp(self.port, *args, timeout=timeout)


def sentinel_failover(sentinel: Sentinel, timeout: float = 15.0) -> None:
    """SENTINEL FAILOVER, retried while the sentinel does not know a good replica yet."""
    last = ""

    def attempt():
        nonlocal last
        try:
            return sentinel.cmd("SENTINEL", "FAILOVER", sentinel.master_name) == b"OK"
        except (RedisError, OSError, ConnectionError) as e:
            last = str(e)
            time.sleep(0.05)
            return False
    wait_until(attempt, timeout, interval=0.05, message=lambda: f"SENTINEL FAILOVER to be accepted ({last})")


class HAProxy(_Process):
    """Debian haproxy in front of `backends` (ports), round robin with HTTP health checks."""

    name = "haproxy"

    def __init__(self, test: unittest.TestCase | None, backends: list[int], check_path: str = "/healthz",
                 inter_ms: int = 200, fall: int = 2, rise: int = 1, extra_backend: str = ""):
        super().__init__(test)
        self.backends = list(backends)
        self.socket_path = os.path.join(self.dir, "admin.sock")
        self.config_path = os.path.join(self.dir, "haproxy.cfg")
        servers = "\n".join(f"  server gw{i} 127.0.0.1:{p} check inter {inter_ms}ms fall {fall} rise {rise}"
                            for i, p in enumerate(self.backends))

        def write_config():
            with open(self.config_path, "w") as f:
                f.write(f"""global
  stats socket {self.socket_path} mode 600 level admin
  log stdout format raw local0 info
defaults
  mode http
  log global
  option httplog
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout check 1s
frontend fe
  bind 127.0.0.1:{self.port}
  default_backend gateways
backend gateways
  balance roundrobin
  option httpchk GET {check_path}
  http-check expect status 200
{extra_backend}
{servers}
""")
        self._start(lambda: ["haproxy", "-db", "-f", self.config_path], write_config)

    def _ready(self) -> bool:
        return super()._ready() and os.path.exists(self.socket_path)

    def admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2.0)
            s.connect(self.socket_path)
            s.sendall(command.encode() + b"\n")
            out = bytearray()
            while True:
                data = s.recv(65536)
                if not data:
                    break
                out += data
        return out.decode("utf-8", "replace")

    def server_states(self) -> dict[str, str]:
        """{server name: status ("UP", "DOWN", "UP 1/2", ...)} of the gateways backend."""
        lines = self.admin("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        i_px, i_sv, i_st = header.index("pxname"), header.index("svname"), header.index("status")
        out = {}
        for line in lines[1:]:
            f = line.split(",")
            if len(f) > i_st and f[i_px] == "gateways" and f[i_sv] not in ("FRONTEND", "BACKEND"):
                out[f[i_sv]] = f[i_st]
        return out

    def wait_all_up(self, timeout: float = 5.0) -> None:
        wait_until(lambda: all(s == "UP" for s in self.server_states().values()), timeout, interval=0.02,
                   message=lambda: f"every HAProxy server UP: {self.server_states()}")
