"""Upstream failures: refused -> 502, too slow -> 504, reset mid-body -> the client connection is
aborted (never a complete-looking response)."""

import socket
import threading
import time
import unittest

from harness import ConnectionClosed, Gateway, HttpClient, free_port, start_upstream, wait_until


class UpstreamFailures(unittest.TestCase):
    def test_refused_upstream_gives_502(self):
        # A refusal is answered at once, not after connect_timeout (30 s here: far beyond any
        # stall of a loaded machine, and beyond the client's read timeout).
        gw = Gateway(self, free_port(), {"upstream": {"connect_timeout": "30s"}})
        c = HttpClient(gw.port, self)
        r = c.roundtrip("GET", "/echo")
        self.assertEqual(r.status, 502, r)
        # A local error response does not poison the client connection (or closes it cleanly).
        if "close" not in r.tokens("Connection"):
            self.assertEqual(c.roundtrip("GET", "/healthz").status, 200)

    def test_refused_upstream_with_request_body_gives_502(self):
        gw = Gateway(self, free_port())
        c = HttpClient(gw.port, self)
        r = c.roundtrip("POST", "/upload", body=b"x" * 10000)
        self.assertEqual(r.status, 502, r)

    def test_silent_upstream_gives_504_after_response_timeout(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port, {"upstream": {"response_timeout": "1s"}})
        c = HttpClient(gw.port, self)
        start = time.monotonic()
        r = c.roundtrip("GET", "/silent")
        elapsed = time.monotonic() - start
        self.assertEqual(r.status, 504, r)
        # Never before response_timeout; after it within a generous bound (the default timeout
        # is far longer, so a gateway ignoring the key fails).
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 10.0)
        # The next request works (on this connection unless the gateway closed it).
        if "close" in r.tokens("Connection"):
            c = HttpClient(gw.port, self)
        self.assertEqual(c.roundtrip("GET", "/echo").status, 200)

    def test_reset_mid_body_aborts_the_client_connection(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port)
        c = HttpClient(gw.port, self)
        c.request("GET", "/reset-mid-body?wait=1")
        head = c.read_head()  # the upstream resets only once we have the head: never a 502 here
        self.assertEqual(head.status, 200, head)
        up.reset_go.set()
        received = 0
        with self.assertRaises(ConnectionClosed, msg="a complete response was relayed"):
            for piece in c.body_chunks(head):
                received += len(piece)
        self.assertLess(received, 1_000_000)
        closed, extra = c.is_closed(2.0)
        self.assertTrue(closed)
        # The gateway survives and keeps serving.
        c2 = HttpClient(gw.port, self)
        self.assertEqual(c2.roundtrip("GET", "/echo").status, 200)

    def test_stalled_response_body_aborts_after_response_timeout(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port, {"upstream": {"response_timeout": "1s"}})
        c = HttpClient(gw.port, self)
        start = time.monotonic()
        c.request("GET", "/slow-body?chunks=3&ms=30000&size=100")  # stalls 30 s per chunk
        head = c.read_head()
        self.assertEqual(head.status, 200, head)
        with self.assertRaises(ConnectionClosed, msg="a stalled body was relayed as complete"):
            for _ in c.body_chunks(head):
                pass
        self.assertLess(time.monotonic() - start, 20.0, "the gateway waited for the stalled upstream")

    def test_malformed_upstream_response_heads_give_502(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port)
        for kind in ("garbage", "cl-te", "bad-cl", "huge-header"):
            with self.subTest(kind=kind):
                c = HttpClient(gw.port, self)
                c.request("GET", f"/bad-response?kind={kind}")
                try:
                    r = c.read_response()
                except ConnectionClosed as e:
                    self.fail(f"{kind}: connection closed without a response ({e.partial[:80]!r})")
                self.assertEqual(r.status, 502, r)
                c.close()
        self.assertEqual(HttpClient(gw.port, self).roundtrip("GET", "/echo").status, 200)

    def test_broken_upstream_body_aborts_the_client_connection(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port)
        for kind in ("bad-chunk", "short-cl"):
            with self.subTest(kind=kind):
                c = HttpClient(gw.port, self)
                c.request("GET", f"/bad-response?kind={kind}")
                head = c.read_head()
                if head.status == 502:
                    continue
                self.assertEqual(head.status, 200, head)
                with self.assertRaises(ConnectionClosed, msg=f"{kind}: relayed as a complete response"):
                    for _ in c.body_chunks(head):
                        pass
                c.close()

    def test_unsolicited_upstream_bytes_never_reach_another_request(self):
        # Response queue poisoning: bytes after a complete response must not be taken as the answer
        # to the next request sent on that upstream connection.
        up = start_upstream(self)
        gw = Gateway(self, up.port)
        a = HttpClient(gw.port, self)
        r = a.roundtrip("GET", "/bad-response?kind=extra-response")
        self.assertEqual((r.status, r.body), (200, b"hello"))
        for i in range(3):
            b = HttpClient(gw.port, self)
            r = b.roundtrip("GET", f"/echo?victim={i}")
            self.assertNotEqual(r.body, b"spoofed", "another client got the upstream's unsolicited response")
            self.assertIn(r.status, (200, 502), r)
            if r.status == 200:
                self.assertEqual(r.json()["target"], f"/echo?victim={i}")
            b.close()

    def test_unsolicited_bytes_on_an_idle_pooled_connection_are_not_a_response(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port)
        a = HttpClient(gw.port, self)
        r = a.roundtrip("GET", "/late-extra-response")
        self.assertEqual((r.status, r.body), (200, b"hello"))
        self.assertTrue(up.late_bytes_sent.wait(15))
        # The gateway drops the idle pooled connection that spoke unasked (a condition, not a pause
        # for loopback delivery).
        wait_until(lambda: up.open_connections() == 0, 15.0,
                   message="the gateway closing the pooled connection that sent unsolicited bytes")
        b = HttpClient(gw.port, self)
        r = b.roundtrip("GET", "/echo?victim")
        self.assertNotEqual(r.body, b"spoofed", "an unsolicited upstream response answered another request")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["target"], "/echo?victim")

    def test_body_on_bodiless_upstream_responses_does_not_desync(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port)
        for method, status in (("HEAD", "200"), ("GET", "204"), ("GET", "304")):
            with self.subTest(method=method, status=status):
                c = HttpClient(gw.port, self)
                r = c.roundtrip(method, f"/bad-response?kind=body-anyway&status={status}")
                self.assertEqual(r.status, int(status), r)
                self.assertEqual(r.body, b"")
                if "close" in r.tokens("Connection"):
                    c = HttpClient(gw.port, self)
                r = c.roundtrip("GET", "/echo?next")
                self.assertNotIn(b"spoofed", r.raw_head + r.body)
                self.assertIn(r.status, (200, 502), r)
                if r.status == 200:
                    self.assertEqual(r.json()["target"], "/echo?next")
                # A second client on the (possibly pooled) upstream connection is not desynchronised.
                d = HttpClient(gw.port, self)
                r = d.roundtrip("GET", "/echo?other")
                self.assertNotIn(b"spoofed", r.raw_head + r.body)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["target"], "/echo?other")

    def test_upstream_closing_before_answering_gives_502(self):
        # A listener that reads the request and closes the connection without answering.
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(16)
        ls.settimeout(0.1)
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                try:
                    s, _ = ls.accept()
                except (socket.timeout, OSError):
                    continue
                s.settimeout(1.0)
                try:
                    s.recv(65536)
                except OSError:
                    pass
                s.close()

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        self.addCleanup(lambda: (stop.set(), t.join(2), ls.close()))
        gw = Gateway(self, ls.getsockname()[1])
        c = HttpClient(gw.port, self)
        r = c.roundtrip("GET", "/echo")
        self.assertEqual(r.status, 502, r)


if __name__ == "__main__":
    unittest.main()
