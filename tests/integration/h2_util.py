"""HTTP/2 client helpers for the integration tests, on Python's ``h2`` (Debian ``python3-h2``).

- ``import_h2()``: the ``h2`` package, from Debian's dist-packages when the interpreter running the
  tests (pyenv, a venv) does not have it; a missing package is ``missing_tool``.
- ``H2Client(port, tls_ca=None)``: one HTTP/2 connection (TLS with ALPN ``h2`` when ``tls_ca`` is
  the CA of the gateway's certificate, else h2c with prior knowledge). ``request(...)`` opens a
  stream, ``response(stream_id)`` waits for it, ``send_raw`` writes bytes as they are (attacks),
  ``wait_goaway()`` waits for the server's GOAWAY. Every wait has a deadline.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import time

from harness import DEADLINE_SCALE, IO_TIMEOUT_S, missing_tool

_DEBIAN_DIST = "/usr/lib/python3/dist-packages"  # where python3-h2 installs


def import_h2():
    try:
        import h2.config  # noqa: F401
    except ImportError:
        if os.path.isdir(_DEBIAN_DIST) and _DEBIAN_DIST not in sys.path:
            sys.path.append(_DEBIAN_DIST)
        try:
            import h2.config  # noqa: F401,F811
        except ImportError:
            missing_tool("python3-h2 not installed")
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events
    import h2.exceptions
    import h2.settings
    return h2


class StreamResult:
    def __init__(self):
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.ended = False
        self.reset: int | None = None  # RST_STREAM error code

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def json(self):
        import json
        return json.loads(self.body)

    def __repr__(self):
        return f"<h2 stream status={self.status} ended={self.ended} reset={self.reset} headers={self.headers}>"


class H2Client:
    def __init__(self, port: int, tls_ca: str | None = None, host: str = "127.0.0.1",
                 authority: str = "localhost", window: int | None = None,
                 connection_window: int | None = None):
        h2 = import_h2()
        self.h2 = h2
        self.authority = authority
        self.scheme = "https" if tls_ca else "http"
        raw = socket.create_connection((host, port), timeout=IO_TIMEOUT_S)
        if tls_ca:
            ctx = ssl.create_default_context(cafile=tls_ca)
            ctx.set_alpn_protocols(["h2", "http/1.1"])
            self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
            self.alpn = self.sock.selected_alpn_protocol()
        else:
            self.sock = raw
            self.alpn = None
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                             validate_outbound_headers=False,
                                             normalize_outbound_headers=False))
        self.conn.initiate_connection()
        if window is not None:  # the stream windows for the server's DATA
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        if connection_window is not None:  # added to the connection's 65535
            self.conn.increment_flow_control_window(connection_window)
        self.flush()
        self.streams: dict[int, StreamResult] = {}
        self.goaway: int | None = None  # error code of the server's GOAWAY
        self.goaway_last_stream: int | None = None
        self.closed = False
        self.auto_ack = True  # acknowledge received DATA (WINDOW_UPDATE) as it comes
        self.hold_streams: set[int] = set()  # streams whose DATA is never acknowledged (slow reader)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def headers(self, path: str = "/echo", method: str = "GET", extra=()) -> list[tuple[str, str]]:
        return [(":method", method), (":scheme", self.scheme), (":authority", self.authority),
                (":path", path)] + list(extra)

    def request(self, path: str = "/echo", method: str = "GET", extra=(), body: bytes | None = None,
                end: bool = True, headers: list | None = None) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = StreamResult()
        hdrs = headers if headers is not None else self.headers(path, method, extra)
        self.conn.send_headers(sid, hdrs, end_stream=end and body is None)
        if body is not None:
            self.send_body(sid, body, end=end)
        self.flush()
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True):
        """Sends `body` as the flow-control windows allow, reading events while they are closed."""
        view = memoryview(body)
        deadline = time.monotonic() + IO_TIMEOUT_S * DEADLINE_SCALE
        while view:
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room <= 0:
                if time.monotonic() > deadline:
                    raise AssertionError("the server never opened its window for the body")
                self.flush()
                self._read_once()
                if self.streams[sid].reset is not None or self.closed:
                    return
                continue
            self.conn.send_data(sid, bytes(view[:room]))
            view = view[room:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def _read_once(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.closed = True
            return False
        try:
            events = self.conn.receive_data(data)
        except self.h2.exceptions.ProtocolError:
            self.closed = True
            return False
        ev = self.h2.events
        for e in events:
            if isinstance(e, ev.ResponseReceived):
                r = self.streams.setdefault(e.stream_id, StreamResult())
                r.headers = [(k, v) for k, v in e.headers]
                r.status = int(dict(r.headers)[":status"])
            elif isinstance(e, ev.DataReceived):
                r = self.streams.setdefault(e.stream_id, StreamResult())
                r.body += e.data
                if self.auto_ack and e.flow_controlled_length and e.stream_id not in self.hold_streams:
                    self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, ev.StreamEnded):
                self.streams.setdefault(e.stream_id, StreamResult()).ended = True
            elif isinstance(e, ev.StreamReset):
                self.streams.setdefault(e.stream_id, StreamResult()).reset = e.error_code
            elif isinstance(e, ev.ConnectionTerminated):
                self.goaway = e.error_code
                self.goaway_last_stream = e.last_stream_id
        self.flush()
        return True

    def wait(self, predicate, what: str, timeout: float = IO_TIMEOUT_S):
        deadline = time.monotonic() + timeout * DEADLINE_SCALE
        while not predicate():
            if self.closed:
                raise AssertionError(f"connection closed while waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            self._read_once()

    def response(self, sid: int, timeout: float = IO_TIMEOUT_S) -> StreamResult:
        r = self.streams[sid]
        self.wait(lambda: r.ended or r.reset is not None, f"stream {sid}", timeout)
        return r

    def wait_goaway(self, timeout: float = IO_TIMEOUT_S) -> int:
        deadline = time.monotonic() + timeout * DEADLINE_SCALE
        while self.goaway is None:
            if self.closed:
                break
            if time.monotonic() > deadline:
                raise AssertionError("no GOAWAY from the server")
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            self._read_once()
        if self.goaway is None:
            raise AssertionError("the connection closed without a GOAWAY")
        return self.goaway

    def wait_closed(self, timeout: float = IO_TIMEOUT_S):
        deadline = time.monotonic() + timeout * DEADLINE_SCALE
        while not self.closed:
            if time.monotonic() > deadline:
                raise AssertionError("the server did not close the connection")
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            self._read_once()


def frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame by hand (RFC 9113 §4.1)."""
    return (len(payload).to_bytes(3, "big") + bytes([ftype, flags]) +
            (stream_id & 0x7FFFFFFF).to_bytes(4, "big") + payload)
