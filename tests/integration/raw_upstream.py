"""A recording upstream that keeps every byte the gateway sent, parses it strictly, and answers
with scripted raw responses (used by test_smuggling.py, test_spoofing.py and test_faults.py).

- ``raw(conn)``: every byte received on upstream connection ``conn`` (numbered from 1 in accept
  order), exactly as it arrived.
- ``requests``: the requests parsed from those bytes by a deliberately strict HTTP/1.1 parser
  (single spaces in the request line, CRLF only, no whitespace before a colon, no obs-fold, digits-only
  Content-Length, Transfer-Encoding exactly ``chunked``, never both). Each is a dict: conn, index (on
  its connection), method, target, version, headers [(name, value)], body (bytes, decoded from chunked
  when chunked), framing ("none" | "length" | "chunked"), trailers.
- ``malformed``: (conn, reason, bytes) for anything that is not a well-framed request: a request the
  gateway forwarded in a form our strict parser refuses. Bytes left over when a connection closed
  are in ``leftover(conn)`` (an incomplete request; the gateway may abandon a body it refused).
- ``script``: path -> raw response bytes, or a callable(sock, request) -> bool (keep the connection).
  Anything else gets ``200`` with a JSON body {"conn", "index", "target"} and keep-alive. A scripted
  raw response leaves the connection open (reading on) unless it is a callable that says otherwise:
  a gateway that must not reuse the connection has to decide that by itself.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(rb"^HTTP/1\.[01]$")


class _Malformed(Exception):
    pass


class _Incomplete(Exception):
    pass


def parse_request(buf: bytes | bytearray, start: int = 0):
    """Parse one request at buf[start:]; returns (request dict, end offset).

    Raises _Incomplete when more bytes are needed and _Malformed when the bytes are not a well-framed
    HTTP/1.1 request."""
    end = buf.find(b"\r\n\r\n", start)
    if end < 0:
        if len(buf) - start > 1 << 20:
            raise _Malformed("head over 1 MiB")
        raise _Incomplete()
    head = bytes(buf[start:end])
    if b"\n" in head.replace(b"\r\n", b"") or b"\r" in head.replace(b"\r\n", b""):
        raise _Malformed("bare CR or LF in the head")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[1] or not _VERSION.match(parts[2]):
        raise _Malformed(f"request line {lines[0][:100]!r}")
    headers = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise _Malformed("obs-fold")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise _Malformed(f"header line {line[:100]!r}")
        value = value.strip(b" \t")
        if any(c < 0x20 and c != 0x09 or c == 0x7F for c in value):
            raise _Malformed(f"control byte in {name!r}")
        headers.append((name.decode("latin-1"), value.decode("latin-1")))
    lower = [(k.lower(), v) for k, v in headers]
    cls = [v for k, v in lower if k == "content-length"]
    tes = [v for k, v in lower if k == "transfer-encoding"]
    if cls and tes:
        raise _Malformed("Content-Length and Transfer-Encoding")
    if len(cls) > 1:
        raise _Malformed("several Content-Length fields")
    if len(tes) > 1 or (tes and tes[0].lower() != "chunked"):
        raise _Malformed(f"Transfer-Encoding {tes!r}")
    pos = end + 4
    body = bytearray()
    trailers = []
    framing = "none"
    if cls:
        if not re.fullmatch(r"[0-9]{1,15}", cls[0]):
            raise _Malformed(f"Content-Length {cls[0]!r}")
        n = int(cls[0])
        framing = "length"
        if len(buf) - pos < n:
            raise _Incomplete()
        body += buf[pos : pos + n]
        pos += n
    elif tes:
        framing = "chunked"
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                raise _Incomplete()
            m = re.fullmatch(rb"([0-9A-Fa-f]{1,15})(;[^\r\n]*)?", bytes(buf[pos:eol]))
            if not m:
                raise _Malformed(f"chunk size line {bytes(buf[pos:eol])[:60]!r}")
            size = int(m.group(1), 16)
            pos = eol + 2
            if size == 0:
                while True:
                    eol = buf.find(b"\r\n", pos)
                    if eol < 0:
                        raise _Incomplete()
                    line = bytes(buf[pos:eol])
                    pos = eol + 2
                    if not line:
                        break
                    n_, _, v_ = line.partition(b":")
                    trailers.append((n_.decode("latin-1"), v_.strip().decode("latin-1")))
                break
            if len(buf) - pos < size + 2:
                raise _Incomplete()
            body += buf[pos : pos + size]
            if buf[pos + size : pos + size + 2] != b"\r\n":
                raise _Malformed("chunk data not followed by CRLF")
            pos += size + 2
    method, target, version = (p.decode("latin-1") for p in parts)
    return {"method": method, "target": target, "version": version, "headers": headers,
            "body": bytes(body), "framing": framing, "trailers": trailers}, pos


def header_values(headers, name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


class RecordingUpstream:
    def __init__(self, test=None, script: dict | None = None):
        self.script = dict(script or {})
        self.requests: list[dict] = []
        self.malformed: list[tuple[int, str, bytes]] = []
        self.connections = 0
        self._raw: dict[int, bytearray] = {}
        self._leftover: dict[int, bytes] = {}
        self._closed: set[int] = set()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._socks: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 0))
        ls.listen(512)
        ls.settimeout(0.1)
        self._listener = ls
        self.port = ls.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        if test is not None:
            test.addCleanup(self.stop)

    def stop(self):
        self._stop.set()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout=3)
        self._listener.close()

    # -- inspection ------------------------------------------------------------------------------
    def raw(self, conn: int) -> bytes:
        with self._lock:
            return bytes(self._raw.get(conn, b""))

    def all_raw(self) -> bytes:
        with self._lock:
            return b"".join(bytes(v) for _, v in sorted(self._raw.items()))

    def leftover(self, conn: int) -> bytes:
        with self._lock:
            return self._leftover.get(conn, b"")

    def is_closed(self, conn: int) -> bool:
        with self._lock:
            return conn in self._closed

    def wait_requests(self, count: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"upstream saw {len(self.requests)} requests, wanted {count}")
                self._cond.wait(left)
            return list(self.requests)

    def wait_closed(self, conn: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while conn not in self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"upstream connection {conn} still open after {timeout}s")
                self._cond.wait(left)

    def quiesce(self, timeout: float = 5.0) -> None:
        """Wait until every accepted connection has been closed by the gateway."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._closed) < self.connections:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("upstream connections still open")
                self._cond.wait(left)

    def targets(self) -> list[str]:
        with self._lock:
            return [r["target"] for r in self.requests]

    # -- serving ---------------------------------------------------------------------------------
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                conn = self.connections
                self._raw[conn] = bytearray()
                self._socks.add(sock)
            t = threading.Thread(target=self._serve, args=(sock, conn), daemon=True)
            t.start()  # before it is listed: stop() may join any listed thread at any moment
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)

    def _serve(self, sock: socket.socket, conn: int):
        buf = bytearray()
        pos = 0
        index = 0
        keep = True
        try:
            while not self._stop.is_set():
                try:
                    data = sock.recv(256 * 1024)
                except OSError:
                    break
                if not data:
                    break
                with self._lock:
                    self._raw[conn] += data
                buf += data
                while keep:
                    try:
                        req, pos2 = parse_request(buf, pos)
                    except _Incomplete:
                        break
                    except _Malformed as e:
                        with self._cond:
                            self.malformed.append((conn, str(e), bytes(buf[pos:])))
                            self._cond.notify_all()
                        keep = False
                        break
                    pos = pos2
                    index += 1
                    req.update(conn=conn, index=index)
                    with self._cond:
                        self.requests.append(req)
                        self._cond.notify_all()
                    keep = self._answer(sock, req)
                if not keep:
                    break
        finally:
            with self._cond:
                self._leftover[conn] = bytes(buf[pos:])
                self._closed.add(conn)
                self._socks.discard(sock)
                self._cond.notify_all()
            try:
                sock.close()
            except OSError:
                pass

    def _answer(self, sock: socket.socket, req: dict) -> bool:
        path = req["target"].split("?")[0]
        action = self.script.get(path)
        try:
            if callable(action):
                return bool(action(sock, req))
            if action is not None:
                sock.sendall(action)
                return True
            body = json.dumps({"conn": req["conn"], "index": req["index"], "target": req["target"]}).encode()
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                         % len(body) + body)
        except OSError:
            return False
        return True
