"""A scriptable HTTP/1.1 upstream for the integration tests (stdlib only, raw sockets).

Runs in-process (``Upstream().start()``, ``.port``, ``.requests``, ``.connections``, ``.stop()``;
``Upstream(unix_path=P)`` listens on a Unix-domain socket at P instead of TCP)
or standalone (``python3 upstream.py --port N``). One thread per connection; keep-alive and
pipelining work because requests are read one after another from a per-connection buffer.

Behaviour is chosen by the request path (any method; HEAD gets the same head and no body):

  /echo                 200, JSON of the request as received (method, target, version, headers in
                        order, body length and sha256, body text when short)
  /upload               same as /echo; named for body tests (request body is streamed and hashed);
                        ?pause_after=N&pause_ms=M stops reading a Content-Length body for M ms
                        after N bytes (request-body backpressure); ?early=S answers S before
                        reading a Content-Length body, then reads it (recorded after the answer)
                        and keeps the connection, or with &then=close says Connection: close and
                        reads nothing more (an early response)
  /bytes?n=N&chunked=1  N deterministic bytes (see ``pattern_chunks``), Content-Length or chunked,
                        with X-Body-Sha256
  /status/NNN           that status; 204 and 304 and 1xx have no body
  /silent               read the request and never answer (the connection stays open)
  /reset-mid-body       head with Content-Length 1000000, 100000 bytes, a pause, then RST; with
                        ?wait=1 the pause lasts until the test sets ``reset_go`` (its client has the head)
  /close                200 with Connection: close, then close
  /close-delimited?n=N  200 with no Content-Length or chunked; N bytes then close
  /delay?ms=N           sleep N ms, then answer like /echo
  /slow-body?chunks=N&ms=M&size=S   chunked body, M ms between chunks of S bytes
  /bad-response?kind=garbage|cl-te|bad-cl|huge-header|bad-chunk|short-cl   a broken response, then close
  /bad-response?kind=extra-response        a response followed by an unsolicited second one
  /late-extra-response  a response, then 200 ms later an unsolicited second one (keeps the connection)
  /bad-response?kind=body-anyway&status=S  status S with a 7-byte body even for HEAD/204/304
  /respond?status=S&h=Name:Value&h=...&body=TEXT   arbitrary status, headers and body
                        (&delay_ms=N: answered after N ms, a slow application)
  /ws                   WebSocket handshake (RFC 6455 §4.2.2) then echo of every data frame
  anything else         like /echo

Every request is recorded in ``requests`` (dicts, see ``_record``) before it is answered.
Every Expect: 100-continue gets an interim 100 Continue before the body is read.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Deterministic body bytes: a prime-length random block repeated, so that a dropped, duplicated or
# reordered chunk of any power-of-two size changes the SHA-256.
_PATTERN_LEN = 1_000_003
PATTERN = random.Random(20261126).randbytes(_PATTERN_LEN)
_PATTERN_VIEW = memoryview(PATTERN * 3)  # room to slice up to 2 MB past any start offset


def pattern_chunks(n: int, chunk: int = 256 * 1024):
    """Yield the first n bytes of the deterministic stream in pieces of at most `chunk` bytes."""
    chunk = min(chunk, 1 << 20)
    off = 0
    while off < n:
        take = min(chunk, n - off)
        start = off % _PATTERN_LEN
        yield _PATTERN_VIEW[start : start + take]
        off += take


_sha_cache: dict[int, str] = {}
_sha_lock = threading.Lock()


def pattern_sha256(n: int) -> str:
    """Hex SHA-256 of the first n bytes of the deterministic stream (cached)."""
    with _sha_lock:
        if n in _sha_cache:
            return _sha_cache[n]
    h = hashlib.sha256()
    for piece in pattern_chunks(n, 1 << 20):
        h.update(piece)
    digest = h.hexdigest()
    with _sha_lock:
        _sha_cache[n] = digest
    return digest


def ws_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


class _Closed(Exception):
    pass


class _Reader:
    """Buffered reads from a socket; raises _Closed on EOF or error."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> None:
        try:
            data = self.sock.recv(256 * 1024)
        except OSError as e:
            raise _Closed() from e
        if not data:
            raise _Closed()
        self.buf += data

    def read_until(self, delim: bytes, limit: int = 1 << 20) -> bytes:
        start = 0
        while True:
            i = self.buf.find(delim, start)
            if i >= 0:
                out = bytes(self.buf[: i + len(delim)])
                del self.buf[: i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise _Closed()
            start = max(0, len(self.buf) - len(delim) + 1)
            self._fill()

    def read_some(self, maximum: int) -> bytes:
        if not self.buf:
            self._fill()
        out = bytes(self.buf[:maximum])
        del self.buf[:maximum]
        return out

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def _header(headers, name: str):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _header_tokens(headers, name: str) -> list[str]:
    out = []
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
    return out


class Upstream:
    def __init__(self, port: int = 0, host: str = "127.0.0.1", unix_path: str | None = None):
        self.host = host
        self.unix_path = unix_path  # listen on this Unix-domain socket path instead of TCP
        self._want_port = port
        self.port = 0
        self.requests: list[dict] = []
        self.connections = 0  # TCP connections accepted so far
        self.late_bytes_sent = threading.Event()  # /late-extra-response sent its unsolicited bytes
        self.reset_go = threading.Event()  # /reset-mid-body?wait=1 resets once this is set
        self.body_bytes_read = 0  # of the Content-Length body being read most recently
        self.ws_frames: list[tuple[int, bytes]] = []  # (opcode, payload) received on /ws
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._socks: set[socket.socket] = set()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "Upstream":
        if self.unix_path is not None:
            ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            ls.bind(self.unix_path)
        else:
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((self.host, self._want_port))
        ls.listen(512)
        ls.settimeout(0.1)
        self._listener = ls
        self.port = 0 if self.unix_path is not None else ls.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name=f"upstream-accept-{self.port}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + 3.0  # handler threads sleeping in /delay wake on _stop
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            if self.unix_path is not None:  # a Unix socket's file outlives its listener
                try:
                    os.unlink(self.unix_path)
                except FileNotFoundError:
                    pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- inspection --------------------------------------------------------------------------
    def wait_requests(self, count: int, timeout: float = 10.0) -> list[dict]:
        """Block until at least `count` requests were recorded; returns a copy of the list."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"upstream saw {len(self.requests)} requests, wanted {count}")
                self._cond.wait(left)
            return list(self.requests)

    def close_connections(self) -> None:
        """Close every accepted connection from our side (FIN), as a server's keep-alive timeout would."""
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def open_connections(self) -> int:
        """Connections accepted and not yet closed by either side."""
        with self._lock:
            return len(self._socks)

    def paths(self) -> list[str]:
        with self._lock:
            return [r["path"] for r in self.requests]

    # -- serving -----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(None)
            if self.unix_path is None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                conn_no = self.connections
                self._socks.add(sock)
            t = threading.Thread(target=self._serve, args=(sock, conn_no), daemon=True)
            # Started before it is listed: stop() may join any listed thread at any moment (a
            # thread listed first and joined before its start() raised in stop()).
            t.start()
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)

    def _serve(self, sock: socket.socket, conn_no: int) -> None:
        reader = _Reader(sock)
        try:
            while not self._stop.is_set():
                if not self._one_request(sock, reader, conn_no):
                    break
        except (_Closed, OSError):
            pass
        finally:
            with self._lock:
                self._socks.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    def _one_request(self, sock, reader: _Reader, conn_no: int) -> bool:
        """Serve one request; return False when the connection must end."""
        head = reader.read_until(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        request_line = lines[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3:
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        method, target, version = parts
        headers = []
        for raw in lines[1:]:
            name, _, value = raw.decode("latin-1").partition(":")
            headers.append([name, value.strip(" \t")])
        parsed = urllib.parse.urlsplit(target)
        path = parsed.path
        query = urllib.parse.parse_qs(parsed.query)
        q = lambda k, d=None: query.get(k, [d])[0]  # noqa: E731

        # Request body framing (RFC 9112 §6.3), streamed through SHA-256.
        chunked = "chunked" in _header_tokens(headers, "Transfer-Encoding")
        cl = _header(headers, "Content-Length")
        length = 0 if chunked or cl is None else int(cl)
        has_body = chunked or length > 0
        if has_body and "100-continue" in _header_tokens(headers, "Expect"):
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        h = hashlib.sha256()
        got = 0
        keep = bytearray()
        trailers = []
        if chunked:
            while True:
                size_line = reader.read_until(b"\r\n", limit=64 * 1024)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = reader.read_until(b"\r\n", limit=64 * 1024)
                        if t == b"\r\n":
                            break
                        n, _, v = t[:-2].decode("latin-1").partition(":")
                        trailers.append([n, v.strip()])
                    break
                left = size
                while left:
                    piece = reader.read_some(min(left, 256 * 1024))
                    h.update(piece)
                    got += len(piece)
                    if len(keep) < 65536:
                        keep += piece[: 65536 - len(keep)]
                    left -= len(piece)
                if reader.read_exact(2) != b"\r\n":
                    raise _Closed()
        elif q("early") is not None and length > 0:
            # An early response: the answer goes out before the body is read (nginx's `return`
            # does this). then=read: the body is read after it and the connection kept, as nginx
            # discards a body; then=close: the answer says close and nothing more is read.
            then_close = q("then", "read") == "close"
            answer = b"early\n"
            sock.sendall(f"HTTP/1.1 {int(q('early'))} X\r\nContent-Length: {len(answer)}\r\n"
                         f"{'Connection: close' + chr(13) + chr(10) if then_close else ''}\r\n".encode() + answer)
            if then_close:
                self._stop.wait(30)
                return False
            left = length
            while left:
                piece = reader.read_some(min(left, 256 * 1024))
                h.update(piece)
                got += len(piece)
                self.body_bytes_read = got
                left -= len(piece)
            with self._cond:
                self.requests.append({"conn": conn_no, "method": method, "target": target, "path": path,
                                      "version": version, "headers": headers, "trailers": [],
                                      "body_length": got, "body_sha256": h.hexdigest(), "body": None})
                self._cond.notify_all()
            return True
        else:
            left = length
            pause_after = int(q("pause_after", "-1"))
            while left:
                if got >= pause_after >= 0:
                    self._stop.wait(int(q("pause_ms", "0")) / 1000.0)
                    pause_after = -1
                piece = reader.read_some(min(left, 256 * 1024))
                h.update(piece)
                got += len(piece)
                self.body_bytes_read = got
                if len(keep) < 65536:
                    keep += piece[: 65536 - len(keep)]
                left -= len(piece)

        record = {
            "conn": conn_no,
            "method": method,
            "target": target,
            "path": path,
            "version": version,
            "headers": headers,
            "trailers": trailers,
            "body_length": got,
            "body_sha256": h.hexdigest(),
            "body": keep.decode("latin-1") if got <= 65536 else None,
        }
        with self._cond:
            self.requests.append(record)
            self._cond.notify_all()

        head_only = method == "HEAD"
        conn_tokens = _header_tokens(headers, "Connection")
        client_wants_close = "close" in conn_tokens or (version == "HTTP/1.0" and "keep-alive" not in conn_tokens)
        echo_body = json.dumps(record).encode()

        def respond(status: int, hdrs: list, body: bytes = b"", close: bool = False, reason: str = "X"):
            out = [f"HTTP/1.1 {status} {reason}"]
            out += [f"{k}: {v}" for k, v in hdrs]
            no_body = status in (204, 304) or 100 <= status < 200
            if not no_body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hdrs):
                out.append(f"Content-Length: {len(body)}")
            if close or client_wants_close:
                out.append("Connection: close")
            data = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
            if not head_only and not no_body:
                data += body
            sock.sendall(data)
            return not (close or client_wants_close)

        if path == "/silent":
            while not self._stop.is_set():  # never answer; wait for the peer to go away
                if not reader.read_some(65536):
                    break
            return False
        if path == "/close":
            return respond(200, [("Content-Type", "text/plain")], b"bye\n", close=True) and False
        if path.startswith("/status/"):
            status = int(path.split("/")[2])
            body = b"" if status in (204, 304) else f"status {status}\n".encode()
            extra = [("ETag", '"v1"')] if status == 304 else [("Content-Type", "text/plain")]
            return respond(status, extra, body)
        if path == "/bytes":
            n = int(q("n", "0"))
            sha = pattern_sha256(n)
            use_chunked = q("chunked", "0") == "1"
            hdrs = [("Content-Type", "application/octet-stream"), ("X-Body-Sha256", sha)]
            hdrs.append(("Transfer-Encoding", "chunked") if use_chunked else ("Content-Length", str(n)))
            if client_wants_close:
                hdrs.append(("Connection", "close"))
            sock.sendall(("HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n").encode())
            if not head_only:
                for piece in pattern_chunks(n):
                    if use_chunked:
                        sock.sendall(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
                    else:
                        sock.sendall(piece)
                if use_chunked:
                    sock.sendall(b"0\r\n\r\n")
            return not client_wants_close
        if path == "/reset-mid-body":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: 1000000\r\n\r\n" + PATTERN[:100000])
            if q("wait", "0") == "1":  # until the test's client has the head: the reset cannot overtake it
                self.reset_go.wait(30)
                self.reset_go.clear()
            else:
                time.sleep(0.3)  # usually enough for the gateway to forward the head first
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            raise _Closed()
        if path == "/delay":
            if self._stop.wait(int(q("ms", "1000")) / 1000.0):
                return False
            return respond(200, [("Content-Type", "application/json")], echo_body)
        if path == "/slow-body":
            chunks, ms, size = int(q("chunks", "5")), int(q("ms", "100")), int(q("size", "1024"))
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            gen = pattern_chunks(chunks * size, size)
            for i, piece in enumerate(gen):
                if i and self._stop.wait(ms / 1000.0):
                    return False
                sock.sendall(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
            return not client_wants_close
        if path == "/head-then-wait":
            # A long poll: the head (Content-Length: cl, or chunked without cl), no body, then
            # silence until the peer goes away or the upstream stops.
            cl = q("cl", "")
            framing = f"Content-Length: {int(cl)}" if cl else "Transfer-Encoding: chunked"
            sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{framing}\r\n\r\n".encode())
            while not self._stop.is_set():
                if not reader.read_some(65536):
                    break
            return False
        if path == "/close-delimited":
            # HTTP/1.1 response with neither Content-Length nor chunked: the body ends at close
            # (RFC 9112 §6.3, rule 8).
            n = int(q("n", "0"))
            sock.sendall(f"HTTP/1.1 200 OK\r\nX-Body-Sha256: {pattern_sha256(n)}\r\n\r\n".encode())
            if not head_only:
                for piece in pattern_chunks(n):
                    sock.sendall(piece)
            return False
        if path == "/late-extra-response":
            # A complete response, then (once the gateway has pooled the connection) an unsolicited one.
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            self._stop.wait(0.2)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nspoofed")
            self.late_bytes_sent.set()
            return True
        if path == "/bad-response":
            kind = q("kind", "garbage")
            raw = {
                "garbage": b"HELLO THERE\r\n\r\n",
                "cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                "bad-cl": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
                "huge-header": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (256 * 1024) + b"\r\nContent-Length: 0\r\n\r\n",
                "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n",
                "short-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-this",
                # The next two keep the connection open: a gateway that pools it is desynchronised.
                "extra-response": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                                  b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nspoofed",
                "body-anyway": b"HTTP/1.1 %s X\r\nContent-Length: 7\r\n\r\nspoofed" % q("status", "200").encode(),
            }[kind]
            try:
                sock.sendall(raw)
            except OSError:
                pass
            return kind in ("extra-response", "body-anyway")
        if path == "/respond":
            if self._stop.wait(int(q("delay_ms", "0")) / 1000.0):
                return False
            status = int(q("status", "200"))
            hdrs = []
            for hv in query.get("h", []):
                k, _, v = hv.partition(":")
                hdrs.append((k.strip(), v.strip()))
            return respond(status, hdrs, q("body", "").encode())
        if path == "/ws":
            return self._websocket(sock, reader, headers)
        return respond(200, [("Content-Type", "application/json")], echo_body)

    def _websocket(self, sock, reader: _Reader, headers) -> bool:
        key = _header(headers, "Sec-WebSocket-Key")
        if key is None or "websocket" not in _header_tokens(headers, "Upgrade"):
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {ws_accept(key)}\r\n\r\n").encode())
        while True:
            opcode, payload, _fin = read_ws_frame(reader.read_exact, expect_masked=True)
            with self._lock:
                self.ws_frames.append((opcode, payload))
            if opcode == 0x8:  # close: echo it, then end (RFC 6455 §5.5.1)
                sock.sendall(make_ws_frame(0x8, payload[:125], mask=False))
                return False
            if opcode == 0x9:  # ping -> pong
                sock.sendall(make_ws_frame(0xA, payload, mask=False))
                continue
            if opcode == 0xA:
                continue
            sock.sendall(make_ws_frame(opcode, payload, mask=False))


def make_ws_frame(opcode: int, payload: bytes, mask: bool, fin: bool = True) -> bytes:
    """One RFC 6455 §5.2 frame; clients must mask, servers must not."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = random.randbytes(4)
    return head + key + _xor_mask(payload, key)


def _xor_mask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def read_ws_frame(read_exact, expect_masked: bool):
    """Read one frame with `read_exact(n)`; returns (opcode, unmasked payload, fin)."""
    b0, b1 = read_exact(2)
    fin = bool(b0 & 0x80)
    opcode = b0 & 0x0F
    masked = bool(b1 & 0x80)
    if masked != expect_masked:
        raise ValueError(f"frame masking is {masked}, expected {expect_masked}")
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", read_exact(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", read_exact(8))
    key = read_exact(4) if masked else b""
    payload = read_exact(n) if n else b""
    if masked:
        payload = _xor_mask(payload, key)
    return opcode, payload, fin


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    up = Upstream(args.port, args.host).start()
    print(f"upstream listening on {args.host}:{up.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        up.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
