"""Integration-test harness: start the real sessiongate binary, talk raw HTTP/1.1 to it.

- ``free_port()``: a loopback port nobody listens on right now.
- ``Gateway(test, upstream_port, overrides)``: writes gateway.toml into a temp dir, starts the binary
  (stdout/stderr to files), waits for GET /healthz 200. ``.port``, ``.pid``, ``.rss_kib()``,
  ``.logs()``, ``.stop()``. Registered with ``test.addCleanup``: stopped even when the test fails, and
  the cleanup fails the test if the process crashed, or did not exit 0 on SIGTERM.
- ``HttpClient``: one raw TCP connection; ``send()`` bytes, ``read_response()`` with Content-Length /
  chunked / close framing, keep-alive and pipelining, ``assert_closed()``.
- ``wait_until(predicate, timeout)``: poll with a deadline instead of sleeping.

Environment: SESSIONGATE_BIN (the binary; default <repository>/build/sessiongate, else
<repository>/build-test/sessiongate, the directories tests/run.sh and the README build into; a missing
binary skips the tests unless the variable is set), SG_KEEP_LOGS=1 keeps each gateway's temp dir (config,
stdout, stderr) and prints its path, SG_TEST_WORKERS (N or "auto") sets server.workers where a test
does not, SG_TESTS_REQUIRE_TOOLS=1 (set by ctest) turns a missing test tool into a failure,
SG_TEST_DEADLINE_SCALE (a factor, default 1) lengthens the deadlines of conditions waited for.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Build directories relative to the repository, in order of preference: a plain developer build,
# then the one tests/run.sh makes. Never a machine-specific absolute path.
DEFAULT_BUILD_DIRS = ("build", "build-test")
# Deadlines of conditions that must come true (wait_until, start, stop) are multiplied by
# SG_TEST_DEADLINE_SCALE: tests/run.sh sets it for the sanitizer runs, whose gateways are several
# times slower on a loaded machine. A longer deadline never fails a correct run; it only makes a
# broken one take longer to fail.
DEADLINE_SCALE = max(1.0, float(os.environ.get("SG_TEST_DEADLINE_SCALE", "1") or 1))
READY_DEADLINE_S = 10.0 * DEADLINE_SCALE
STOP_GRACE_S = 10.0 * DEADLINE_SCALE  # after SIGTERM, on top of the configured drain_timeout
IO_TIMEOUT_S = 15.0


def default_gateway_bin() -> str:
    """The first built <repo>/<build dir>/sessiongate, else the first candidate (reported as missing)."""
    candidates = [os.path.join(REPO_ROOT, d, "sessiongate") for d in DEFAULT_BUILD_DIRS]
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    return candidates[0]


def gateway_bin() -> str:
    return os.environ.get("SESSIONGATE_BIN") or default_gateway_bin()


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# Set by ctest (CMakeLists.txt): the tools that `deploy/install-deps.sh test` installs (redis-server,
# haproxy, promtool, kubectl, PyYAML...) are then required, so that a CI machine without one fails
# instead of skipping whole suites and reporting success. A manual run skips what it cannot run.
TOOLS_REQUIRED = os.environ.get("SG_TESTS_REQUIRE_TOOLS") == "1"


def missing_tool(what: str):
    """A tool the tests need is missing: a failure under ctest, a skip in a manual run."""
    if TOOLS_REQUIRED:
        raise AssertionError(f"{what}; `bash deploy/install-deps.sh test` installs it")
    raise unittest.SkipTest(what)


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.01, message: str = ""):
    """Return predicate()'s first truthy value; raise AssertionError after `timeout` seconds
    (times SG_TEST_DEADLINE_SCALE)."""
    timeout *= DEADLINE_SCALE
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            if callable(message):
                message = message()
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


# -- TOML ---------------------------------------------------------------------------------------

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table; a list of them stands for [[section.key]] blocks
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML form for {v!r}")


def to_toml(sections: dict) -> str:
    out = []
    for name, keys in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
        out.append("")
    return "\n".join(out)


def merge(base: dict, overrides: dict | None) -> dict:
    merged = {k: dict(v) for k, v in base.items()}
    for section, keys in (overrides or {}).items():
        merged.setdefault(section, {}).update(keys)
    return merged


# -- HTTP client --------------------------------------------------------------------------------

class Response:
    def __init__(self, version: str, status: int, reason: str, headers: list, body: bytes, raw_head: bytes):
        self.version, self.status, self.reason = version, status, reason
        self.headers = headers  # [(name, value)] in order received
        self.body = body
        self.raw_head = raw_head
        self.trailers: list = []

    def header(self, name: str, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def headers_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def tokens(self, name: str) -> list[str]:
        return [t.strip().lower() for v in self.headers_all(name) for t in v.split(",") if t.strip()]

    def json(self):
        return json.loads(self.body)

    @property
    def body_framing(self) -> str:
        if "chunked" in self.tokens("Transfer-Encoding"):
            return "chunked"
        if self.header("Content-Length") is not None:
            return "length"
        return "close"

    def __repr__(self):
        return f"<Response {self.status} {self.reason} {len(self.body)}B {self.headers}>"


class ConnectionClosed(Exception):
    """The peer closed (or reset) the connection before a complete response."""

    def __init__(self, message: str, partial: bytes = b""):
        super().__init__(message)
        self.partial = partial


class HttpClient:
    """One raw client connection. Owns the socket; registered for cleanup when `test` is given."""

    def __init__(self, port: int, test: unittest.TestCase | None = None, timeout: float = IO_TIMEOUT_S,
                 host: str = "127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.received_total = 0
        if test is not None:
            test.addCleanup(self.close)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def settimeout(self, t: float):
        self.sock.settimeout(t)

    def send(self, data: bytes | str):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def request(self, method: str, target: str, headers=None, body: bytes | None = None,
                host: str | None = "gw.test", version: str = "HTTP/1.1") -> None:
        """Send one request; Content-Length is added when a body is given and none is set."""
        headers = list(headers or [])
        lines = [f"{method} {target} {version}"]
        if host is not None and not any(k.lower() == "host" for k, _ in headers):
            lines.append(f"Host: {host}")
        if body is not None and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
            headers.append(("Content-Length", str(len(body))))
        lines += [f"{k}: {v}" for k, v in headers]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))

    # -- low-level reads -------------------------------------------------------------------
    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.received_total += len(data)
        self.buf += data
        return True

    def _read_line(self, limit: int = 1 << 20) -> bytes:
        start = 0
        while True:
            i = self.buf.find(b"\r\n", start)
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            if len(self.buf) > limit:
                raise AssertionError("response line too long")
            start = max(0, len(self.buf) - 1)
            if not self._fill():
                raise ConnectionClosed("connection closed inside a line", bytes(self.buf))

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionClosed(f"connection closed with {n - len(self.buf)} bytes missing", bytes(self.buf))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self, maximum: int = 1 << 20) -> bytes:
        """Up to `maximum` bytes (b'' at EOF)."""
        if not self.buf and not self._fill():
            return b""
        out = bytes(self.buf[:maximum])
        del self.buf[:maximum]
        return out

    # -- responses -------------------------------------------------------------------------
    def read_head(self) -> Response:
        """Read one response head (interim 1xx heads included)."""
        raw = bytearray()
        line = self._read_line()
        raw += line + b"\r\n"
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise AssertionError(f"bad status line {line!r}")
        version, status, reason = parts[0], int(parts[1]), parts[2] if len(parts) > 2 else ""
        headers = []
        while True:
            line = self._read_line()
            raw += line + b"\r\n"
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name, value.strip(" \t")))
        return Response(version, status, reason, headers, b"", bytes(raw))

    def body_chunks(self, resp: Response, method: str = "GET", chunk: int = 1 << 20):
        """Yield the body of `resp` piece by piece (framing per RFC 9112 §6.3)."""
        if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
            return
        if "chunked" in resp.tokens("Transfer-Encoding"):
            while True:
                size_line = self._read_line(64 * 1024)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self._read_line()
                        if not t:
                            return
                        n, _, v = t.decode("latin-1").partition(":")
                        resp.trailers.append((n, v.strip()))
                left = size
                while left:
                    if not self.buf and not self._fill():
                        raise ConnectionClosed("connection closed inside a chunk")
                    piece = bytes(self.buf[: min(left, chunk)])
                    del self.buf[: len(piece)]
                    left -= len(piece)
                    yield piece
                if self._read_exact(2) != b"\r\n":
                    raise AssertionError("chunk not followed by CRLF")
        elif resp.header("Content-Length") is not None:
            left = int(resp.header("Content-Length"))
            while left:
                if not self.buf and not self._fill():
                    raise ConnectionClosed(f"connection closed with {left} body bytes missing")
                piece = bytes(self.buf[: min(left, chunk)])
                del self.buf[: len(piece)]
                left -= len(piece)
                yield piece
        else:
            while True:
                piece = self.read_some(chunk)
                if not piece:
                    return
                yield piece

    def read_response(self, method: str = "GET", skip_interim: bool = True) -> Response:
        """Read a complete response; 1xx interim responses (not 101) are skipped unless asked."""
        while True:
            resp = self.read_head()
            if resp.status == 101:
                return resp
            if 100 <= resp.status < 200 and skip_interim:
                continue
            resp.body = b"".join(self.body_chunks(resp, method))
            return resp

    def read_response_hashed(self, method: str = "GET") -> tuple[Response, int, str]:
        """Read a response without keeping its body; returns (resp, length, sha256 hex)."""
        while True:
            resp = self.read_head()
            if not (100 <= resp.status < 200 and resp.status != 101):
                break
        h = hashlib.sha256()
        n = 0
        for piece in self.body_chunks(resp, method):
            h.update(piece)
            n += len(piece)
        return resp, n, h.hexdigest()

    def roundtrip(self, method: str, target: str, **kw) -> Response:
        self.request(method, target, **kw)
        return self.read_response(method)

    def is_closed(self, timeout: float = 5.0) -> tuple[bool, bytes]:
        """Wait up to `timeout` for EOF/reset; returns (closed, any bytes that arrived instead)."""
        self.sock.settimeout(timeout)
        extra = bytes(self.buf)
        self.buf.clear()
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True, extra
                extra += data
        except (ConnectionResetError, BrokenPipeError):
            return True, extra
        except socket.timeout:
            return False, extra
        finally:
            self.sock.settimeout(IO_TIMEOUT_S)

    def assert_closed(self, test: unittest.TestCase, timeout: float = 5.0, probe: bytes | None = None):
        """Assert the peer closes the connection and sends nothing more.

        With `probe`, those bytes (a well-formed request) are written first: a connection that is
        closed after an error must not answer them."""
        if probe is not None:
            try:
                self.sock.sendall(probe)
            except (BrokenPipeError, ConnectionResetError):
                pass
        closed, extra = self.is_closed(timeout)
        test.assertEqual(extra, b"", f"data after the error response: {extra[:200]!r}")
        test.assertTrue(closed, f"connection still open {timeout}s later (expected the gateway to close it)")


def simple_get(port: int, target: str, timeout: float = 5.0, headers=None) -> Response:
    """One GET on a fresh connection (Connection: close)."""
    c = HttpClient(port, timeout=timeout)
    try:
        c.request("GET", target, headers=list(headers or []) + [("Connection", "close")])
        return c.read_response()
    finally:
        c.close()


# -- the gateway process ------------------------------------------------------------------------

def default_workers():
    """server.workers for gateways whose test does not choose: SG_TEST_WORKERS (a number or "auto";
    the TSan run uses 2 so that every test exercises cross-worker sharing), else 1."""
    value = os.environ.get("SG_TEST_WORKERS", "1")
    return value if value == "auto" else int(value)


def base_config(port: int, upstream_port: int) -> dict:
    return {
        "server": {"listen": [f"127.0.0.1:{port}"], "workers": default_workers(), "drain_timeout": "3s"},
        "upstream": {"servers": [f"127.0.0.1:{upstream_port}"], "response_timeout": "5s"},
        "limits": {},
        "health": {"path": "/healthz", "ready_path": "/readyz"},
        "log": {"level": "info", "access": "stdout", "format": "json"},
    }


# As `[admin] listen` in overrides: a free port, picked again on every start attempt (a port that
# someone else took between picking and binding is retried like the main one); see gw.admin_port.
FREE_ADMIN_LISTEN = "127.0.0.1:<free>"


class Gateway:
    """A running sessiongate; `overrides` is {section: {key: value}} merged over base_config."""

    def __init__(self, test: unittest.TestCase | None, upstream_port: int, overrides: dict | None = None,
                 start: bool = True):
        self.test = test
        self.upstream_port = upstream_port
        self.overrides = overrides or {}
        self.dir = tempfile.mkdtemp(prefix="sg-it-")
        self.config_path = os.path.join(self.dir, "gateway.toml")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.admin_port: int | None = None  # with FREE_ADMIN_LISTEN
        self.stopped = False
        self.returncode: int | None = None
        if test is not None:
            test.addCleanup(self._cleanup)
        if start:
            self.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def config(self) -> dict:
        c = merge(base_config(self.port, self.upstream_port), self.overrides)
        if c.get("admin", {}).get("listen") == FREE_ADMIN_LISTEN:
            c["admin"]["listen"] = f"127.0.0.1:{self.admin_port}"
        return c

    def start(self) -> "Gateway":
        binary = gateway_bin()
        if not os.access(binary, os.X_OK):
            if "SESSIONGATE_BIN" in os.environ:  # set by ctest: a missing binary is a failure
                raise AssertionError(f"SESSIONGATE_BIN={binary} is not an executable file")
            raise unittest.SkipTest(f"gateway binary {binary} not built")
        last_err = ""
        for _attempt in range(5):
            self.port = free_port()
            if self.overrides.get("admin", {}).get("listen") == FREE_ADMIN_LISTEN:
                # Two free_port() calls may return the same port (each closes its socket before the
                # next binds): the gateway refuses an admin listener on its own address (seen in CI).
                self.admin_port = free_port()
                while self.admin_port == self.port:
                    self.admin_port = free_port()
            with open(self.config_path, "w") as f:
                f.write(to_toml(self.config()))
            out = open(self.stdout_path, "wb")
            err = open(self.stderr_path, "wb")
            self.proc = subprocess.Popen([binary, "--config", self.config_path], stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, cwd=self.dir)
            out.close()
            err.close()
            ok, last_err = self._wait_ready()
            if ok:
                return self
            if self.proc.poll() is None:
                self._kill()
            if "in use" not in last_err.lower() and "eaddrinuse" not in last_err.lower():
                break
        self.stopped = True
        raise AssertionError(f"gateway did not become healthy: {last_err}\nconfig:\n{to_toml(self.config())}")

    def _wait_ready(self) -> tuple[bool, str]:
        deadline = time.monotonic() + READY_DEADLINE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.logs()
                return False, f"exited with {self.proc.returncode}; stderr: {err[-3000:]} stdout: {out[-1000:]}"
            try:
                r = simple_get(self.port, "/healthz", timeout=1.0)
                if r.status == 200 and self._admin_accepts():
                    return True, ""
            except (OSError, ConnectionClosed, AssertionError):
                pass
            time.sleep(0.02)
        out, err = self.logs()
        return False, f"no 200 from /healthz within {READY_DEADLINE_S}s; stderr: {err[-3000:]}"

    def _admin_accepts(self) -> bool:
        """True when no [admin] listen is configured, or it accepts connections: the admin listener
        opens after the workers' listeners (what systemd's READY=1 waits for, too)."""
        listen = self.config().get("admin", {}).get("listen")
        if not listen:
            return True
        host, _, port = listen.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
            return True
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def fd_count(self) -> int:
        """Open file descriptors of the gateway process (sockets, pipes, files)."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def logs(self) -> tuple[str, str]:
        def read(p):
            try:
                with open(p, "rb") as f:
                    return f.read().decode("utf-8", "replace")
            except FileNotFoundError:
                return ""
        return read(self.stdout_path), read(self.stderr_path)

    def access_log_lines(self) -> list[dict]:
        """The JSON objects on stdout (non-JSON lines skipped)."""
        out = []
        for line in self.logs()[0].splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def signal(self, sig: int):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM, wait (drain_timeout + grace), then SIGKILL. Returns the exit code."""
        if self.stopped:
            return self.returncode
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.wait_exit(timeout if timeout is not None else STOP_GRACE_S)
            if rc is None:
                self._kill()
                self.returncode = -9
                raise AssertionError(f"gateway did not exit within {timeout or STOP_GRACE_S}s of SIGTERM; "
                                     f"killed. stderr: {self.logs()[1][-2000:]}")
        self.returncode = self.proc.returncode
        return self.returncode

    def _kill(self):
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def _cleanup(self):
        try:
            if self.proc is None or self.stopped:
                return
            died_before = self.proc.poll() is not None
            rc = self.stop()
            if died_before:
                raise AssertionError(f"gateway died during the test with exit code {rc}; "
                                     f"stderr: {self.logs()[1][-3000:]}")
            if rc != 0:
                raise AssertionError(f"gateway exited {rc} after SIGTERM; stderr: {self.logs()[1][-3000:]}")
        finally:
            if os.environ.get("SG_KEEP_LOGS"):
                print(f"\n[gateway logs kept in {self.dir}]")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)


def start_upstream(test: unittest.TestCase):
    """An in-process Upstream, stopped at test cleanup."""
    from upstream import Upstream
    up = Upstream().start()
    test.addCleanup(up.stop)
    return up
