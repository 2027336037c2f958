"""Backpressure: a slow reader (or a slow upstream) must not make the gateway buffer the body.

Prints the RSS figures; fails only when growth exceeds a generous bound (RSS_GROWTH_LIMIT_KIB)."""

import hashlib
import os
import socket
import threading
import time
import unittest

from harness import ConnectionClosed, Gateway, HttpClient, start_upstream, wait_until
from upstream import pattern_chunks, pattern_sha256

MiB = 1 << 20
# Generous for a correct gateway (it holds a few 64 KiB buffers per connection); an ASan build's
# allocator quarantine may need more: SG_RSS_GROWTH_LIMIT_KIB overrides it.
RSS_GROWTH_LIMIT_KIB = int(os.environ.get("SG_RSS_GROWTH_LIMIT_KIB", 8 * 1024))


class Backpressure(unittest.TestCase):
    def setUp(self):
        self.up = start_upstream(self)
        self.gw = Gateway(self, self.up.port)

    def warm_up(self):
        # Allocate the steady-state buffers once, so the baseline includes them.
        c = HttpClient(self.gw.port, self)
        c.request("GET", f"/bytes?n={8 * MiB}")
        _, n, _ = c.read_response_hashed()
        self.assertEqual(n, 8 * MiB)
        c.roundtrip("POST", "/upload", body=b"x" * (4 * MiB))
        c.close()

    def test_slow_client_reading_a_large_response(self):
        n = 256 * MiB
        self.warm_up()
        base = self.gw.rss_kib()
        c = HttpClient(self.gw.port, self, timeout=30)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        c.request("GET", f"/bytes?n={n}")
        head = c.read_head()
        self.assertEqual(head.status, 200, head)
        h = hashlib.sha256()
        got = 0
        body = c.body_chunks(head, chunk=64 * 1024)
        # Read a few MB slowly, then stop reading for 2 s (the scenario, not a synchronisation).
        while got < 4 * MiB:
            piece = next(body)
            h.update(piece)
            got += len(piece)
            time.sleep(0.002)
        time.sleep(2.0)
        peak = self.gw.rss_kib()
        growth = peak - base
        print(f"\n[backpressure] response: RSS base {base} KiB, after 2 s stall {peak} KiB, "
              f"growth {growth} KiB (limit {RSS_GROWTH_LIMIT_KIB} KiB)")
        for piece in body:
            h.update(piece)
            got += len(piece)
        self.assertEqual(got, n)
        self.assertEqual(h.hexdigest(), pattern_sha256(n))
        self.assertLess(growth, RSS_GROWTH_LIMIT_KIB, "gateway buffered the response body")

    def test_slow_upstream_reading_a_large_request_body(self):
        n = 96 * MiB  # under the default max_body_bytes (100 MiB)
        self.warm_up()
        self.up.body_bytes_read = 0
        base = self.gw.rss_kib()
        c = HttpClient(self.gw.port, self, timeout=30)
        c.request("POST", "/upload?pause_after=4194304&pause_ms=2500", headers=[("Content-Length", str(n))])
        errors = []

        def send_all():
            try:
                for piece in pattern_chunks(n):
                    c.send(bytes(piece))
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=send_all, daemon=True)
        t.start()
        self.addCleanup(t.join, 30)
        # Wait until the upstream has read its first 4 MiB and stalls, then give the gateway time
        # to (wrongly) buffer whatever the client pushes.
        wait_until(lambda: self.up.body_bytes_read >= 4 * MiB, 10,
                   message=lambda: f"upstream reading the body (read {self.up.body_bytes_read}, "
                                   f"requests {[r['target'] for r in self.up.requests]}, errors {errors})")
        time.sleep(1.5)
        peak = self.gw.rss_kib()
        growth = peak - base
        print(f"\n[backpressure] request: RSS base {base} KiB, during upstream stall {peak} KiB, "
              f"growth {growth} KiB (limit {RSS_GROWTH_LIMIT_KIB} KiB)")
        resp = c.read_response()
        t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["body_length"], n)
        self.assertEqual(resp.json()["body_sha256"], pattern_sha256(n))
        self.assertLess(growth, RSS_GROWTH_LIMIT_KIB, "gateway buffered the request body")



class TimersDuringBackpressure(unittest.TestCase):
    """While the gateway has stopped reading one side because the other is slow, that side is not
    idle or slow: its timeout must not fire."""

    def setUp(self):
        self.up = start_upstream(self)

    def test_a_paused_client_does_not_trip_the_upstream_response_timeout(self):
        # response_timeout bounds the upstream's silence; when the gateway itself stopped reading
        # (backpressure from a slow client) the upstream is not "too slow".
        n = 64 * MiB
        gw = Gateway(self, self.up.port, {"upstream": {"response_timeout": "1s"}})
        c = HttpClient(gw.port, self, timeout=30)
        c.request("GET", f"/bytes?n={n}")
        head = c.read_head()
        self.assertEqual(head.status, 200, head)
        h = hashlib.sha256()
        got = 0
        body = c.body_chunks(head, chunk=64 * 1024)
        while got < 2 * MiB:
            piece = next(body)
            h.update(piece)
            got += len(piece)
        time.sleep(2.5)  # the scenario: a client that stops reading for longer than response_timeout
        try:
            for piece in body:
                h.update(piece)
                got += len(piece)
        except ConnectionClosed:
            self.fail(f"the gateway aborted the response after {got} of {n} bytes: upstream.response_timeout "
                      f"(1s) fired while the gateway itself had paused reading the upstream (backpressure)")
        self.assertEqual(got, n)
        self.assertEqual(h.hexdigest(), pattern_sha256(n))

    def test_a_paused_upstream_does_not_trip_the_client_idle_timeout(self):
        # The gateway stopped reading the client's body (backpressure from a slow upstream): the
        # client is not idle, it is waiting for us.
        n = 16 * MiB
        gw = Gateway(self, self.up.port, {"limits": {"client_idle_timeout": "1s"},
                                          "upstream": {"response_timeout": "10s"}})
        c = HttpClient(gw.port, self, timeout=30)
        c.request("POST", "/upload?pause_after=1048576&pause_ms=2500", headers=[("Content-Length", str(n))])
        errors = []

        def send_all():
            try:
                for piece in pattern_chunks(n):
                    c.send(bytes(piece))
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=send_all, daemon=True)
        t.start()
        self.addCleanup(t.join, 30)
        try:
            resp = c.read_response()
        except ConnectionClosed:
            self.fail("the gateway closed the client mid-upload: limits.client_idle_timeout (1s) fired while "
                      "the gateway itself had paused reading the client (backpressure from the upstream)")
        t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["body_sha256"], pattern_sha256(n))


if __name__ == "__main__":
    unittest.main()
