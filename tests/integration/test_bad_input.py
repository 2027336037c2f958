"""Malformed and hostile requests: the expected short error, then the connection is closed and
nothing more on it is read (a request following the bad one gets no answer)."""

import time
import unittest

from harness import Gateway, HttpClient, start_upstream

PROBE = b"GET /echo?probe HTTP/1.1\r\nHost: gw.test\r\n\r\n"


class BadInput(unittest.TestCase):
    def setUp(self):
        self.up = start_upstream(self)

    def gateway(self, overrides=None) -> Gateway:
        return Gateway(self, self.up.port, overrides)

    def expect_error(self, raw: bytes, statuses, overrides=None, upstream_may_see: bool = False):
        """Send `raw`, expect one of `statuses`, then a closed connection that ignores PROBE."""
        if isinstance(statuses, int):
            statuses = (statuses,)
        gw = self.gateway(overrides)
        c = HttpClient(gw.port, self)
        c.send(raw)
        resp = c.read_response()
        self.assertIn(resp.status, statuses, resp)
        c.assert_closed(self, probe=PROBE)
        if not upstream_may_see:
            self.assertNotIn("/echo", [p for p in self.up.paths()], "the bad request reached the upstream")
        self.assertNotIn("/echo?probe", [r["target"] for r in self.up.requests])
        # The gateway still serves other connections.
        c2 = HttpClient(gw.port, self)
        self.assertEqual(c2.roundtrip("GET", "/healthz").status, 200)
        return resp

    def test_http_0_9_request_line(self):
        self.expect_error(b"GET /echo\r\n\r\n", 400)

    def test_http_2_0_request_line(self):
        # Not an HTTP/1.x request line at all (an h2 client misconfigured): 400, whereas a version
        # the gateway does not speak is 505 (next test).
        self.expect_error(b"GET /echo HTTP/2.0\r\nHost: gw.test\r\n\r\n", 400)

    def test_unsupported_http_versions_get_505(self):
        # RFC 9110 §15.6.6
        for version in (b"1.2", b"3.0"):
            with self.subTest(version=version):
                self.expect_error(b"GET /echo HTTP/" + version + b"\r\nHost: gw.test\r\n\r\n", 505)

    def test_http_1_0_with_transfer_encoding(self):
        self.expect_error(b"POST /echo HTTP/1.0\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5\r\nhello\r\n0\r\n\r\n", 400)

    def test_missing_host_on_1_1(self):
        self.expect_error(b"GET /echo HTTP/1.1\r\nX-A: b\r\n\r\n", 400)

    def test_duplicate_host(self):
        self.expect_error(b"GET /echo HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", 400)

    def test_underscore_header_rejected_by_default(self):
        self.expect_error(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX_Session_Id: forged\r\n\r\n", 400)

    def test_underscore_header_dropped_when_configured(self):
        gw = self.gateway({"server": {"underscore_headers": "drop"}})
        c = HttpClient(gw.port, self)
        r = c.roundtrip("GET", "/echo", headers=[("X_Custom_Thing", "v"), ("X-Fine", "ok")])
        self.assertEqual(r.status, 200, r)
        names = [k.lower() for k, _ in r.json()["headers"]]
        self.assertNotIn("x_custom_thing", names)
        self.assertNotIn("x-custom-thing", names)
        self.assertIn("x-fine", names)
        # The connection stays usable.
        self.assertEqual(c.roundtrip("GET", "/echo").status, 200)

    def test_connect_method(self):
        self.expect_error(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 400)

    def test_absolute_form_with_authority_different_from_host(self):
        # RFC 9112 3.2.2: the target's authority wins and replaces Host (test_edge.py checks
        # what the application sees); an authority that is not a valid host is a 400.
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        c.send(b"GET http://other.test/echo HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertIn(["Host", "other.test"], r.json()["headers"])

    def test_absolute_form_with_an_invalid_authority(self):
        self.expect_error(b"GET http://a,b/echo HTTP/1.1\r\nHost: gw.test\r\n\r\n", 400)

    def test_invalid_host(self):
        self.expect_error(b"GET /echo HTTP/1.1\r\nHost: evil.example/path?x=\r\n\r\n", 400)

    def test_absolute_form_matching_host_is_forwarded_in_origin_form(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        c.send(b"GET http://gw.test/echo?abs=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["target"], "/echo?abs=1")

    def test_chunk_extension_over_4kib(self):
        ext = b";x=" + b"a" * 5000
        self.expect_error(b"POST /upload HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5" + ext + b"\r\nhello\r\n0\r\n\r\n", 400, upstream_may_see=True)
        # The upstream must never have received a complete request body with that extension.
        for rec in self.up.requests:
            self.assertNotEqual(rec["body"], "hello", "over-long chunk extension forwarded")

    def test_obs_fold(self):
        self.expect_error(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX-A: one\r\n two\r\n\r\n", 400)

    def test_bare_cr_header_smuggling_pattern(self):
        self.expect_error(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\n\rTransfer-Encoding: chunked\r\n\r\n"
                          b"0\r\n\r\n", 400)

    def test_content_length_and_transfer_encoding_together(self):
        smuggled = b"GET /echo?smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n"
        body = b"0\r\n\r\n" + smuggled
        self.expect_error(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n" % len(body) + body, 400)
        self.assertNotIn("/echo?smuggled", [r["target"] for r in self.up.requests])

    def test_duplicate_differing_content_length(self):
        self.expect_error(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 3\r\n"
                          b"Content-Length: 5\r\n\r\nhello", 400)

    def test_header_section_over_max_header_bytes(self):
        big = b"X-Big: " + b"a" * (20 * 1024) + b"\r\n"
        self.expect_error(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\n" + big + b"\r\n", 431,
                          overrides={"limits": {"max_header_bytes": "16KiB"}})

    def test_many_small_headers_over_max_header_bytes(self):
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(200))
        self.expect_error(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\n" + many + b"\r\n", 431,
                          overrides={"limits": {"max_header_bytes": "16KiB", "max_headers": 1000}})

    def test_more_headers_than_max_headers(self):
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(40))
        self.expect_error(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\n" + many + b"\r\n", 431,
                          overrides={"limits": {"max_headers": 20}})

    def test_body_over_max_body_bytes_content_length(self):
        self.expect_error(b"POST /upload HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 2000\r\n\r\n"
                          + b"x" * 2000, 413, overrides={"limits": {"max_body_bytes": "1KiB"}})

    def test_body_over_max_body_bytes_chunked(self):
        gw = self.gateway({"limits": {"max_body_bytes": "1KiB"}})
        c = HttpClient(gw.port, self)
        c.send(b"POST /upload HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"400\r\n" + b"x" * 1024 + b"\r\n" + b"400\r\n" + b"y" * 1024 + b"\r\n0\r\n\r\n")
        resp = c.read_response()
        self.assertEqual(resp.status, 413, resp)
        c.assert_closed(self, probe=PROBE)
        for rec in self.up.requests:
            self.assertLessEqual(rec["body_length"], 1024, "the upstream got a complete oversized body")

    def test_header_timeout(self):
        gw = self.gateway({"limits": {"header_timeout": "1s"}})
        c = HttpClient(gw.port, self)
        start = time.monotonic()
        c.send(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\n")  # never finished
        resp = c.read_response()
        elapsed = time.monotonic() - start
        # Never before the timeout; after it, whenever a loaded machine gets to it (the client's
        # read timeout bounds the wait: a gateway without the timeout fails there).
        self.assertEqual(resp.status, 408, resp)
        self.assertGreaterEqual(elapsed, 0.8)
        print(f"\n[header_timeout 1s] 408 after {elapsed:.2f}s")
        c.assert_closed(self)
        self.assertEqual(self.up.requests, [])

    def test_header_timeout_on_slowloris_trickle(self):
        gw = self.gateway({"limits": {"header_timeout": "1s"}})
        c = HttpClient(gw.port, self)
        start = time.monotonic()
        c.send(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\n")
        c.settimeout(0.2)
        got = b""
        # Keep sending a header line every 200 ms: header_timeout bounds the whole head, not gaps,
        # so the 408 comes about a second in; a gateway that timed only the gaps would let this
        # go on until the generous deadline below, and fail.
        while time.monotonic() - start < 20.0:
            try:
                c.send(b"X-Slow: a\r\n")
            except (BrokenPipeError, ConnectionResetError):
                try:
                    got = c.sock.recv(4096)
                except OSError:
                    pass
                break
            try:
                got = c.sock.recv(4096)
                break
            except TimeoutError:
                continue
        elapsed = time.monotonic() - start
        self.assertTrue(got.startswith(b"HTTP/1.1 408"), f"got {got[:100]!r} after {elapsed:.2f}s")
        self.assertGreaterEqual(elapsed, 0.8)
        print(f"\n[header_timeout 1s, trickling client] 408 after {elapsed:.2f}s")

    def test_h2c_upgrade_is_forwarded_without_the_upgrade(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        r = c.roundtrip("GET", "/echo", headers=[("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                                                 ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
        self.assertEqual(r.status, 200, r)
        names = {k.lower() for k, _ in r.json()["headers"]}
        self.assertNotIn("upgrade", names)
        self.assertNotIn("http2-settings", names)
        for v in [v for k, v in r.json()["headers"] if k.lower() == "connection"]:
            self.assertNotIn("upgrade", v.lower())
        # Still HTTP/1.1 afterwards (on the same connection unless the gateway announced close).
        if "close" in r.tokens("Connection"):
            c.assert_closed(self)
            c = HttpClient(gw.port, self)
        self.assertEqual(c.roundtrip("GET", "/echo?again").status, 200)

    def test_invalid_method_characters(self):
        self.expect_error(b"G(T /echo HTTP/1.1\r\nHost: gw.test\r\n\r\n", 400)

    def test_space_before_colon_in_header_name(self):
        self.expect_error(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX-A : b\r\n\r\n", 400)

    def test_negative_content_length(self):
        self.expect_error(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: -1\r\n\r\n", 400)

    def test_chunk_size_overflow(self):
        self.expect_error(b"POST /upload HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"FFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n", 400, upstream_may_see=True)

    def test_invalid_chunk_size(self):
        self.expect_error(b"POST /upload HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5x\r\nhello\r\n0\r\n\r\n", 400, upstream_may_see=True)

    def test_transfer_encoding_not_ending_in_chunked(self):
        # RFC 9112 §6.3: a request whose final transfer coding is not chunked -> 400.
        self.expect_error(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
                          b"0\r\n\r\n", 400)

    def test_unknown_transfer_encoding(self):
        # Not ending in chunked: the body length cannot be known (RFC 9112 §6.3): 400.
        self.expect_error(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: gzip\r\n\r\n"
                          b"0\r\n\r\n", 400)
        # A coding before chunked that the gateway cannot pass on safely: 501, like nginx.
        self.expect_error(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                          b"0\r\n\r\n", 501)

    def test_nul_in_header_value(self):
        self.expect_error(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX-A: a\x00b\r\n\r\n", 400)

    def test_origin_form_target_must_start_with_slash(self):
        self.expect_error(b"GET echo HTTP/1.1\r\nHost: gw.test\r\n\r\n", 400)

    def test_request_line_over_max_header_bytes(self):
        self.expect_error(b"GET /echo?" + b"a" * (20 * 1024) + b" HTTP/1.1\r\nHost: gw.test\r\n\r\n", 431,
                          overrides={"limits": {"max_header_bytes": "16KiB"}})

    def test_extra_space_in_request_line(self):
        # RFC 9112 §3 lets a recipient parse on whitespace boundaries; either reject, or forward a
        # re-serialised single-space request line.
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        c.send(b"GET  /echo HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        r = c.read_response()
        self.assertIn(r.status, (200, 400), r)
        if r.status == 200:
            self.assertEqual(r.json()["target"], "/echo")
            self.assertEqual(r.json()["method"], "GET")

    def test_invalid_content_length(self):
        self.expect_error(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1x\r\n\r\n", 400)

    def test_empty_host(self):
        # RFC 9112 §3.2: an empty Host is allowed only when the target has no authority; we forward
        # it or reject it, but never crash or forward a different Host.
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        c.send(b"GET /echo HTTP/1.1\r\nHost:\r\n\r\n")
        r = c.read_response()
        self.assertIn(r.status, (200, 400), r)
        if r.status == 200:
            self.assertEqual([v for k, v in r.json()["headers"] if k.lower() == "host"], [""])


if __name__ == "__main__":
    unittest.main()
