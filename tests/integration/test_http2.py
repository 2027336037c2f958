"""HTTP/2 on the client side (issue 18): every stream is an exchange with the same session rules as
HTTP/1.1. Frame-level cases with Python's h2 (h2_util.py); nghttp and curl as real clients; TLS
with ALPN h2 and h2c with prior knowledge (server.http2_cleartext)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import unittest

from harness import (DEADLINE_SCALE, FREE_ADMIN_LISTEN, Gateway, missing_tool, simple_get,
                     start_upstream, wait_until)
from h2_util import H2Client, frame, import_h2
from ops_util import metric_value, parse_metrics, scrape
from session_util import COOKIE, TOKEN_RE, respond_target
from tls_util import TlsGateway, make_pki

PROTOCOL_ERROR, ENHANCE_YOUR_CALM, NO_ERROR = 0x1, 0xB, 0x0


def upstream_headers(resp) -> list[tuple[str, str]]:
    return [(k, v) for k, v in resp.json()["headers"]]


def header_values(headers, name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


def our_token(resp) -> str:
    cookies = [c for c in resp.header_all("set-cookie") if c.startswith(COOKIE + "=")]
    if len(cookies) != 1:
        raise AssertionError(f"expected one Set-Cookie for {COOKIE}: {resp.headers}")
    token = cookies[0].split(";")[0].split("=", 1)[1]
    if not TOKEN_RE.fullmatch(token):
        raise AssertionError(f"not a token: {token!r}")
    return token


class Http2Case(unittest.TestCase):
    pki = None

    @classmethod
    def setUpClass(cls):
        import_h2()
        cls.pki = make_pki()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(os.path.dirname(cls.pki.ca_cert), ignore_errors=True)

    def setUp(self):
        self.up = start_upstream(self)

    def tls_gateway(self, overrides: dict | None = None) -> TlsGateway:
        ov = {"tls": {"certificate": self.pki.default.cert, "private_key": self.pki.default.key}}
        for k, v in (overrides or {}).items():
            ov.setdefault(k, {}).update(v)
        return TlsGateway(self, self.up.port, ov, ca=self.pki.ca_cert)

    def h2c_gateway(self, overrides: dict | None = None) -> Gateway:
        ov = {"server": {"http2_cleartext": True}}
        for k, v in (overrides or {}).items():
            ov.setdefault(k, {}).update(v)
        return Gateway(self, self.up.port, ov)

    def client(self, gw, **kw) -> H2Client:
        c = H2Client(gw.port, tls_ca=getattr(gw, "ca", None) if isinstance(gw, TlsGateway) else None, **kw)
        self.addCleanup(c.close)
        return c

    def get(self, c: H2Client, path: str = "/echo", extra=()):
        return c.response(c.request(path, extra=extra))


class Basics(Http2Case):
    def test_tls_alpn_h2_proxies_a_get_as_http11_with_a_session(self):
        gw = self.tls_gateway()
        c = self.client(gw)
        self.assertEqual(c.alpn, "h2")
        r = self.get(c, "/echo/a?q=1")
        self.assertEqual(r.status, 200, r)
        seen = r.json()
        self.assertEqual(seen["version"], "HTTP/1.1")
        self.assertEqual(seen["target"], "/echo/a?q=1")
        hs = upstream_headers(r)
        self.assertEqual(header_values(hs, "Host"), ["localhost"])
        self.assertEqual(header_values(hs, "X-Forwarded-Proto"), ["https"])
        self.assertEqual(len(header_values(hs, "X-Session-Id")), 1)
        our_token(r)
        self.assertEqual([k for k, _ in r.headers if k.startswith("x-session")], [])

    def test_post_with_content_length_and_without(self):
        gw = self.tls_gateway()
        c = self.client(gw)
        body = os.urandom(300_000)
        with_cl = c.response(c.request("/upload", "POST", extra=[("content-length", str(len(body)))],
                                       body=body))
        self.assertEqual(with_cl.status, 200, with_cl)
        self.assertEqual(with_cl.json()["body_length"], len(body))
        self.assertEqual(header_values(upstream_headers(with_cl), "Content-Length"), [str(len(body))])
        without = c.response(c.request("/upload", "POST", body=body))
        self.assertEqual(without.status, 200, without)
        seen = without.json()
        import hashlib
        self.assertEqual(seen["body_length"], len(body))
        self.assertEqual(seen["body_sha256"], hashlib.sha256(body).hexdigest())
        hs = upstream_headers(without)
        self.assertEqual(header_values(hs, "Transfer-Encoding"), ["chunked"])
        self.assertEqual(header_values(hs, "Content-Length"), [])

    def test_large_response_and_many_parallel_streams(self):
        gw = self.tls_gateway()
        c = self.client(gw)
        ids = [c.request(f"/bytes?n={200_000 + i}") for i in range(20)]
        for i, sid in enumerate(ids):
            r = c.response(sid)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(len(r.body), 200_000 + i)

    def test_h2c_prior_knowledge_only_when_enabled(self):
        gw = self.h2c_gateway()
        c = self.client(gw)
        r = self.get(c)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(header_values(upstream_headers(r), "X-Forwarded-Proto"), ["http"])
        off = Gateway(self, self.up.port)
        s = socket.create_connection(("127.0.0.1", off.port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        s.settimeout(5)
        data = s.recv(4096)
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:100])
        self.assertEqual(simple_get(off.port, "/echo").status, 200)

    def test_http11_on_an_h2c_listener_in_pieces_and_kept_alive(self):
        # The preface check holds a first byte that could start "PRI"; HTTP/1.1 then parses it
        # with the rest. The connection goes idle between requests (its parser and buffers go
        # back to the worker) and takes them again for the next request, itself in pieces.
        from harness import HttpClient
        gw = self.h2c_gateway()
        c = HttpClient(gw.port, self)
        c.send(b"P")
        c.send(b"OST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n\r\nhel")
        c.send(b"lo")
        r = c.read_response("POST")
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"hello", r.body)
        for i in range(3):
            c.send(b"GET /echo?n=%d HTTP/1.1\r\nHo" % i)
            c.send(b"st: gw.test\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertIn(b"/echo?n=%d" % i, r.body)
        # Two pipelined requests in one write, the second one cut in the middle.
        c.send(b"GET /echo?n=a HTTP/1.1\r\nHost: gw.test\r\n\r\nGET /echo?n=b HTTP/1.1\r\nHo")
        r = c.read_response()
        self.assertIn(b"/echo?n=a", r.body)
        c.send(b"st: gw.test\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"/echo?n=b", r.body)

    def test_http2_off_keeps_alpn_to_http11(self):
        import ssl
        gw = self.tls_gateway({"server": {"http2": False}})
        ctx = ssl.create_default_context(cafile=self.pki.ca_cert)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", gw.port), timeout=5),
                             server_hostname="localhost") as s:
            self.assertEqual(s.selected_alpn_protocol(), "http/1.1")

    def test_combined_access_log_says_http2(self):
        gw = self.tls_gateway({"log": {"format": "combined"}})
        c = self.client(gw)
        self.assertEqual(self.get(c, "/echo/logged").status, 200)
        wait_until(lambda: "/echo/logged HTTP/2.0\" 200" in gw.logs()[0],
                   message=lambda: f"an HTTP/2.0 access line: {gw.logs()[0][-500:]}")

    def test_metrics_count_http2(self):
        gw = self.tls_gateway({"admin": {"listen": FREE_ADMIN_LISTEN}})
        c = self.client(gw)
        for _ in range(3):
            self.assertEqual(self.get(c).status, 200)
        self.assertEqual(simple_get_tls_h1(gw, "/echo"), 200)

        def figures():
            m = parse_metrics(scrape(gw.admin_port))
            h2 = m.get(("sessiongate_requests_by_protocol_total", frozenset({("protocol", "http2")})), 0)
            h1 = m.get(("sessiongate_requests_by_protocol_total", frozenset({("protocol", "http1")})), 0)
            conns = m.get(("sessiongate_http2_connections_total", frozenset()), 0)
            return (h2, h1, conns) if h2 >= 3 and h1 >= 1 and conns >= 1 else None
        h2, h1, conns = wait_until(figures, message="HTTP/2 figures in /metrics")
        self.assertEqual((h2, conns), (3, 1))


def simple_get_tls_h1(gw: TlsGateway, path: str) -> int:
    from tls_util import https_get
    r, _ = https_get(gw.port, path, gw.context())
    return r.status


class Sessions(Http2Case):
    def test_reserved_headers_from_the_client_never_reach_the_application(self):
        gw = self.tls_gateway()
        c = self.client(gw)
        r = self.get(c, extra=[("x-session-id", "forged"), ("x-session-user", "admin"),
                               ("x-session-signature", "x")])
        self.assertEqual(r.status, 200, r)
        hs = upstream_headers(r)
        ids = header_values(hs, "X-Session-Id")
        self.assertEqual(len(ids), 1)
        self.assertNotEqual(ids[0], "forged")
        self.assertEqual(header_values(hs, "X-Session-User"), [])
        self.assertEqual(header_values(hs, "X-Session-Signature"), [])
        # "_" for "-" (read alike by CGI, PHP, WSGI): refused like on HTTP/1.1.
        r = self.get(c, extra=[("x_session_id", "forged")])
        self.assertEqual(r.status, 400, r)
        # Uppercase is malformed on HTTP/2 (RFC 9113 §8.2.1): the stream is reset.
        n = len(self.up.requests)
        r = self.get(c, extra=[("X-Session-Id", "forged")])
        self.assertEqual(r.reset, PROTOCOL_ERROR, r)
        self.assertEqual(len(self.up.requests), n)

    def test_session_cookie_in_any_crumb_is_found_and_removed(self):
        gw = self.tls_gateway()
        c = self.client(gw)
        first = self.get(c)
        token = our_token(first)
        handle = header_values(upstream_headers(first), "X-Session-Id")[0]
        for crumbs in ([f"{COOKIE}={token}", "a=1", "b=2"], ["a=1", f"{COOKIE}={token}", "b=2"],
                       ["a=1", "b=2", f"{COOKIE}={token}"]):
            r = self.get(c, extra=[("cookie", v) for v in crumbs])
            self.assertEqual(r.status, 200, r)
            hs = upstream_headers(r)
            self.assertEqual(header_values(hs, "X-Session-Id"), [handle], crumbs)
            self.assertEqual(header_values(hs, "Cookie"), ["a=1; b=2"], crumbs)
            self.assertNotIn(token, str(hs))
            self.assertEqual([x for x in r.header_all("set-cookie") if x.startswith(COOKIE)], [])

    def test_rotation_and_logout(self):
        gw = self.tls_gateway()
        c = self.client(gw)
        token = our_token(self.get(c))
        cookie = [("cookie", f"{COOKIE}={token}")]
        rotated = self.get(c, respond_target(("X-Session-Control", "rotate")), extra=cookie)
        self.assertEqual(rotated.status, 200, rotated)
        new = our_token(rotated)
        self.assertNotEqual(new, token)
        self.assertEqual([k for k, _ in rotated.headers if k.startswith("x-session")], [])
        a = self.get(c, extra=[("cookie", f"{COOKIE}={new}")])
        handle = header_values(upstream_headers(a), "X-Session-Id")[0]
        out = self.get(c, respond_target(("X-Session-Control", "destroy")),
                       extra=[("cookie", f"{COOKIE}={new}")])
        self.assertEqual(out.status, 200, out)
        self.assertTrue(any(x.startswith(f"{COOKIE}=;") and "Max-Age=0" in x
                            for x in out.header_all("set-cookie")), out.headers)
        after = self.get(c, extra=[("cookie", f"{COOKIE}={new}")])
        self.assertNotEqual(header_values(upstream_headers(after), "X-Session-Id"), [handle])

    def test_parallel_streams_during_a_login_rotation_keep_the_session(self):
        gw = self.tls_gateway()
        c = self.client(gw)
        token = our_token(self.get(c))
        cookie = [("cookie", f"{COOKIE}={token}")]
        handle = header_values(upstream_headers(self.get(c, extra=cookie)), "X-Session-Id")[0]
        ids = [c.request("/delay?ms=50", extra=cookie) for _ in range(30)]
        rot = c.request(respond_target(("X-Session-Control", "rotate")), extra=cookie)
        ids += [c.request("/echo", extra=cookie) for _ in range(30)]
        new = our_token(c.response(rot))
        for sid in ids:
            r = c.response(sid)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(header_values(upstream_headers(r), "X-Session-Id"), [handle])
        r = self.get(c, extra=[("cookie", f"{COOKIE}={new}")])
        self.assertEqual(header_values(upstream_headers(r), "X-Session-Id"), [handle])


class Validation(Http2Case):
    def test_malformed_requests_are_reset_and_never_forwarded(self):
        gw = self.h2c_gateway()
        c = self.client(gw)
        n = len(self.up.requests)
        base = c.headers("/echo")
        cases = {
            "missing :path": [h for h in base if h[0] != ":path"],
            "connection field": base + [("connection", "keep-alive")],
            "transfer-encoding": base + [("transfer-encoding", "chunked")],
            "te other than trailers": base + [("te", "gzip")],
            "pseudo after regular": base[:3] + [("accept", "*/*"), base[3]],
            "unknown pseudo": base + [(":protocol", "websocket")],
        }
        for what, headers in cases.items():
            r = c.response(c.request(headers=headers))
            self.assertEqual(r.reset, PROTOCOL_ERROR, f"{what}: {r}")
        self.assertEqual(len(self.up.requests), n)
        # :authority and host that disagree: never forwarded either.
        r = c.response(c.request(headers=base + [("host", "elsewhere.example")]))
        self.assertTrue(r.reset == PROTOCOL_ERROR or r.status == 400, r)
        self.assertEqual(len(self.up.requests), n)
        # The connection still serves.
        self.assertEqual(self.get(c).status, 200)

    def test_content_length_must_match_the_data(self):
        gw = self.h2c_gateway()
        c = self.client(gw)
        sid = c.request("/upload", "POST", extra=[("content-length", "10")], body=b"x" * 4)
        r = c.response(sid)
        self.assertEqual(r.reset, PROTOCOL_ERROR, r)
        self.assertEqual(self.get(c).status, 200)


class Attacks(Http2Case):
    def bystander(self, gw) -> H2Client:
        """A second client, connected and served before the attack starts."""
        other = self.client(gw)
        self.assertEqual(self.get(other).status, 200)
        return other

    def still_served(self, other: H2Client) -> bool:
        """The bystander's connection, open through the attack, still serves."""
        return self.get(other).status == 200 and other.goaway is None

    def test_rapid_reset_gets_goaway_while_another_client_is_served(self):
        gw = self.h2c_gateway({"http2": {"max_resets": 50}})
        other = self.bystander(gw)
        c = self.client(gw)
        h2 = c.h2
        for _ in range(200):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, c.headers("/delay?ms=200"))
            c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            try:
                c.flush()
            except OSError:
                break
        self.assertEqual(c.wait_goaway(), ENHANCE_YOUR_CALM)
        self.assertTrue(self.still_served(other))

    def test_continuation_flood_gets_goaway_while_another_client_is_served(self):
        gw = self.h2c_gateway()
        other = self.bystander(gw)
        c = self.client(gw)
        import hpack
        block = hpack.Encoder().encode(c.headers("/echo"))
        flood = frame(0x1, 0x0, 1, block)  # HEADERS without END_HEADERS
        piece = hpack.Encoder().encode([("x-a", "b")])
        flood += b"".join(frame(0x9, 0x0, 1, piece) for _ in range(2000))
        try:
            c.send_raw(flood)
        except OSError:
            pass
        self.assertEqual(c.wait_goaway(), ENHANCE_YOUR_CALM)
        self.assertTrue(self.still_served(other))


class Drain(Http2Case):
    def test_sigterm_sends_goaway_and_open_streams_finish(self):
        # nghttp keeps reading after a graceful GOAWAY (Python's h2 takes any GOAWAY as the end).
        if shutil.which("nghttp") is None:
            missing_tool("nghttp not installed (nghttp2-client)")
        gw = self.h2c_gateway({"server": {"drain_timeout": "10s"}})
        proc = subprocess.Popen(["nghttp", "-v", f"http://127.0.0.1:{gw.port}/delay?ms=1500"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        wait_until(lambda: any(p == "/delay" for p in self.up.paths()), message="the request upstream")
        gw.signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20 * DEADLINE_SCALE)
        self.assertEqual(proc.returncode, 0, out)
        goaway = re.search(r"recv GOAWAY frame.*\n.*last_stream_id=(\d+), error_code=NO_ERROR", out)
        self.assertIsNotNone(goaway, out)
        # The GOAWAY came while the stream was open (its id at most the last one the server
        # will serve), and the stream still got its answer.
        answered = re.search(r"recv \(stream_id=(\d+)\) :status: 200", out)
        self.assertIsNotNone(answered, out)
        self.assertLessEqual(int(answered.group(1)), int(goaway.group(1)), out)
        self.assertGreater(answered.start(), goaway.start(), out)
        self.assertEqual(gw.wait_exit(15 * DEADLINE_SCALE), 0)
        gw.stopped = True


class FlowAndReload(Http2Case):
    def test_a_slow_stream_does_not_stall_the_others_and_pauses_its_upstream(self):
        gw = self.h2c_gateway({"admin": {"listen": FREE_ADMIN_LISTEN},
                               "http2": {"response_buffer_bytes": "16KiB"}})
        c = self.client(gw, connection_window=50_000_000)
        slow = c.request("/bytes?n=5000000")
        c.hold_streams.add(slow)  # never read: its window (65535) closes
        fast = [c.request(f"/bytes?n={300_000 + i}") for i in range(5)]
        for i, sid in enumerate(fast):
            r = c.response(sid)
            self.assertEqual(len(r.body), 300_000 + i, r)
        self.assertFalse(c.streams[slow].ended)
        self.assertLessEqual(len(c.streams[slow].body), 65535)

        def paused():
            m = parse_metrics(scrape(gw.admin_port))
            return m.get(("sessiongate_http2_response_pauses_total", frozenset()), 0) >= 1
        wait_until(paused, message="a response pause for the slow stream")
        self.assertTrue(gw.alive())

    def test_a_zero_window_stall_ends_the_connection_after_the_idle_timeout(self):
        gw = self.h2c_gateway({"limits": {"client_idle_timeout": "1s"}})
        c = self.client(gw, window=0)
        sid = c.request("/bytes?n=100000")
        c.wait(lambda: c.streams[sid].status == 200, "the response head")
        c.wait_closed(timeout=10)
        self.assertEqual(c.goaway, NO_ERROR)
        self.assertEqual(c.streams[sid].body, b"")
        self.assertFalse(c.streams[sid].ended)
        other = self.client(gw)
        self.assertEqual(self.get(other).status, 200)

    def test_reload_applies_to_new_streams_on_an_open_connection(self):
        from ops_util import reload, write_config
        gw = self.h2c_gateway()
        c = self.client(gw)
        body = b"x" * 100
        post = lambda: c.response(c.request("/upload", "POST",  # noqa: E731
                                            extra=[("content-length", "100")], body=body))
        self.assertEqual(post().status, 200)
        write_config(gw, {"limits": {"max_body_bytes": "10B"}})
        reload(gw)
        self.assertEqual(post().status, 413)
        self.assertEqual(self.get(c).status, 200)


class Browser(Http2Case):
    def chromium(self):
        """Headless Chromium that trusts our test certificate (pinned by its key)."""
        import base64
        import hashlib
        import tempfile
        from cdp import Browser as Chromium
        chromium = os.environ.get("SG_CHROMIUM", "/usr/bin/chromium")
        if not os.access(chromium, os.X_OK):
            missing_tool(f"Chromium not found at {chromium}")
        pem = subprocess.run(["openssl", "x509", "-in", self.pki.default.cert, "-noout", "-pubkey"],
                             capture_output=True, text=True, check=True).stdout
        spki = base64.b64decode("".join(l for l in pem.splitlines() if "-----" not in l))
        pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
        log_dir = tempfile.mkdtemp(prefix="sg-browser-h2-")
        self.addCleanup(shutil.rmtree, log_dir, True)
        browser = Chromium(chromium, log_dir, extra_flags=(f"--ignore-certificate-errors-spki-list={pin}",))
        self.addCleanup(browser.close)
        return browser

    def test_chromium_uses_h2_over_tls_with_the_session(self):
        """Chromium over TLS speaks h2 to the gateway and gets the session cookie."""
        gw = self.tls_gateway()
        browser = self.chromium()
        page = browser.new_page()
        page.navigate(f"https://localhost:{gw.port}/echo/browser")
        protocol = page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
        self.assertEqual(protocol, "h2")
        ours = [c for c in browser.cookies() if c["name"] == COOKIE]
        self.assertEqual(len(ours), 1, ours)
        self.assertTrue(ours[0]["secure"] and ours[0]["httpOnly"], ours[0])
        wait_until(lambda: any(r["path"] == "/echo/browser" for r in self.up.requests),
                   message="the browser's request upstream")

    # A page with this many subresources, each answered after SUBRESOURCE_DELAY_MS by the
    # application, so that an HTTP/1.1 browser has several requests waiting at once.
    SUBRESOURCES = 24
    SUBRESOURCE_DELAY_MS = 200

    def page_load_connections(self, browser, http2: bool) -> tuple[int, set[str]]:
        """Loads one page through a fresh TLS gateway; (connections the gateway accepted during
        the load, the protocols of the page's subresources)."""
        from urllib.parse import quote
        gw = self.tls_gateway({"server": {"http2": http2}, "admin": {"listen": FREE_ADMIN_LISTEN}})
        accepted = lambda: metric_value(  # noqa: E731
            gw.admin_port, "sessiongate_client_connections_accepted_total")
        before = accepted()
        imgs = "".join(f'<img src="/delay?ms={self.SUBRESOURCE_DELAY_MS}&amp;i={i}">'
                       for i in range(self.SUBRESOURCES))
        html = f'<!doctype html><title>page</title><link rel="icon" href="data:,">{imgs}'
        page = browser.new_page()
        page.navigate(f"https://localhost:{gw.port}/respond?status=200&h=Content-Type:text/html"
                      f"&body={quote(html)}")
        entries = page.evaluate("JSON.stringify(performance.getEntriesByType('resource')"
                                ".filter(e => e.name.includes('/delay?'))"  # not the favicon
                                ".map(e => e.nextHopProtocol))")
        protocols = json.loads(entries)
        self.assertEqual(len(protocols), self.SUBRESOURCES, protocols)  # all loaded
        return int(accepted() - before), set(protocols)

    def test_page_load_uses_one_connection_over_h2_and_several_over_http1(self):
        """Issue 18's figure: how many connections a browser page load opens through us. The
        counts are printed; the test asserts what must hold. Measured: HTTP/2 one connection, or
        two in about a third of the runs (Chromium sometimes opens a second h2 connection while
        the first handshake runs: both negotiate h2); HTTP/1.1 six (Chromium's per-host limit)."""
        browser = self.chromium()
        h2_conns, h2_protocols = self.page_load_connections(browser, http2=True)
        h1_conns, h1_protocols = self.page_load_connections(browser, http2=False)
        print(f"page load, 1 document + {self.SUBRESOURCES} subresources over TLS: "
              f"HTTP/2 {h2_conns} connection(s) {sorted(h2_protocols)}, "
              f"HTTP/1.1 {h1_conns} connection(s) {sorted(h1_protocols)}", flush=True)
        self.assertEqual(h2_protocols, {"h2"})
        self.assertEqual(h1_protocols, {"http/1.1"})
        self.assertIn(h2_conns, (1, 2))
        self.assertGreaterEqual(h1_conns, 3)
        self.assertLess(h2_conns, h1_conns)


class RealClients(Http2Case):
    def run_tool(self, argv: list[str]) -> subprocess.CompletedProcess:
        if shutil.which(argv[0]) is None:
            missing_tool(f"{argv[0]} not installed (nghttp2-client, curl)")
        return subprocess.run(argv, capture_output=True, text=True, timeout=30 * DEADLINE_SCALE)

    def test_curl_http2_over_tls_and_h2c(self):
        gw = self.tls_gateway()
        r = self.run_tool(["curl", "-sS", "--http2", "--cacert", self.pki.ca_cert, "-o", "/dev/null",
                           "-w", "%{http_version} %{http_code}", f"https://localhost:{gw.port}/echo",
                           "--resolve", f"localhost:{gw.port}:127.0.0.1"])
        self.assertEqual(r.stdout, "2 200", r.stderr)
        plain = self.h2c_gateway()
        r = self.run_tool(["curl", "-sS", "--http2-prior-knowledge", "-d", "hello", "-o", "/dev/null",
                           "-w", "%{http_version} %{http_code}", f"http://127.0.0.1:{plain.port}/upload"])
        self.assertEqual(r.stdout, "2 200", r.stderr)
        self.assertEqual(self.up.requests[-1]["body"], "hello")

    def test_nghttp_parallel_requests(self):
        gw = self.h2c_gateway()
        urls = [f"http://127.0.0.1:{gw.port}/bytes?n={1000 * (i + 1)}" for i in range(10)]
        r = self.run_tool(["nghttp", "-n", "-s", *urls])
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertEqual(len([u for u in self.up.paths() if u == "/bytes"]), 10)


if __name__ == "__main__":
    unittest.main()
