"""Spliced bodies (upstream.splice, issue 17 item 4): a Content-Length body between a plain
upstream and a plain HTTP/1.1 client moves through a kernel pipe, responses (upstream -> client)
and requests (client -> upstream). The bytes must be the same, the backpressure the same (a slow
reader does not grow the gateway), the failures the same (a peer going away or stalling
mid-body), and bodiless messages untouched. Every case runs with the switch on and off;
`sessiongate_spliced_bytes_total{direction=...}` tells which path served it."""

import hashlib
import os
import socket
import threading
import time
import unittest

from harness import DEADLINE_SCALE, ConnectionClosed, HttpClient, start_upstream, wait_until
from ops_util import admin_gateway, metric_value
from upstream import pattern_chunks, pattern_sha256

MiB = 1 << 20
RSS_GROWTH_LIMIT_KIB = int(os.environ.get("SG_RSS_GROWTH_LIMIT_KIB", 8 * 1024))


class SplicedBodies(unittest.TestCase):
    splice = True

    def setUp(self):
        self.up = start_upstream(self)
        self.gw, self.admin = admin_gateway(self, self.up.port, {"upstream": {"splice": self.splice}})

    def spliced(self) -> float:
        return metric_value(self.admin, "sessiongate_spliced_bytes_total", direction="response")

    def download(self, c: HttpClient, n: int):
        c.request("GET", f"/bytes?n={n}")
        resp, length, sha = c.read_response_hashed()
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("Content-Length"), str(n))
        self.assertEqual(length, n)
        self.assertEqual(sha, pattern_sha256(n))

    def test_1mib_and_50mib_get_byte_for_byte_on_one_connection(self):
        c = HttpClient(self.gw.port, self, timeout=60)
        for n in (1 * MiB, 50 * MiB, 1 * MiB):
            self.download(c, n)
        self.assertEqual(c.roundtrip("GET", "/echo").status, 200)  # the connection is still in step
        spliced = self.spliced()
        if self.splice:
            # Most of each body went around the gateway's buffers (the first read is copied).
            self.assertGreater(spliced, 0.9 * 52 * MiB)
        else:
            self.assertEqual(spliced, 0)
        # The access log counts the spliced bytes like copied ones.
        lines = [r for r in self.gw.access_log_lines() if r.get("path", r.get("target", "")).startswith("/bytes")]
        self.assertEqual(sorted(int(r["bytes_sent"]) for r in lines), [MiB, MiB, 50 * MiB])

    def test_pipelined_requests_and_an_http10_client(self):
        c = HttpClient(self.gw.port, self, timeout=30)
        c.send(f"GET /bytes?n={2 * MiB} HTTP/1.1\r\nHost: a\r\n\r\n"
               f"GET /bytes?n={3 * MiB} HTTP/1.1\r\nHost: a\r\n\r\n")
        for n in (2 * MiB, 3 * MiB):  # the second waits in the gateway until the first is out
            resp, length, sha = c.read_response_hashed()
            self.assertEqual((resp.status, length, sha), (200, n, pattern_sha256(n)))
        old = HttpClient(self.gw.port, self, timeout=30)
        old.send(f"GET /bytes?n={2 * MiB} HTTP/1.0\r\n\r\n")
        resp, length, sha = old.read_response_hashed()
        self.assertEqual((resp.status, length, sha), (200, 2 * MiB, pattern_sha256(2 * MiB)))
        self.assertEqual(self.spliced() > 6 * MiB, self.splice)

    def test_small_chunked_and_bodiless_responses_are_copied(self):
        c = HttpClient(self.gw.port, self)
        self.download(c, 20 * 1024)  # under the threshold
        c.request("GET", f"/bytes?n={2 * MiB}&chunked=1")
        resp, length, sha = c.read_response_hashed()
        self.assertEqual((resp.status, length, sha), (200, 2 * MiB, pattern_sha256(2 * MiB)))
        c.request("HEAD", f"/bytes?n={2 * MiB}")
        head = c.read_response("HEAD")
        self.assertEqual((head.status, head.header("Content-Length"), head.body), (200, str(2 * MiB), b""))
        for status in (204, 304):
            r = c.roundtrip("GET", f"/status/{status}")
            self.assertEqual((r.status, r.body), (status, b""))
        self.assertEqual(self.spliced(), 0)
        self.download(c, 1 * MiB)  # and the connection still serves a spliced body after them
        self.assertEqual(self.spliced() > 0, self.splice)

    def test_post_1mib_then_get_1mib(self):
        c = HttpClient(self.gw.port, self)
        body = os.urandom(MiB)
        r = c.roundtrip("POST", "/upload", body=body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body_sha256"], hashlib.sha256(body).hexdigest())
        self.download(c, 1 * MiB)

    def test_slow_client_is_bounded(self):
        n = 50 * MiB
        self.download(HttpClient(self.gw.port, self), 8 * MiB)  # steady-state buffers allocated
        base = self.gw.rss_kib()
        c = HttpClient(self.gw.port, self, timeout=30)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.request("GET", f"/bytes?n={n}")
        head = c.read_head()
        self.assertEqual(head.status, 200, head)
        h = hashlib.sha256()
        got = 0
        body = c.body_chunks(head, chunk=16 * 1024)
        # 16 KiB/s for 3 s (the scenario, not a synchronisation): the gateway waits on a full socket.
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            piece = next(body)
            h.update(piece)
            got += len(piece)
            time.sleep(1.0)
        growth = self.gw.rss_kib() - base
        print(f"\n[splice={self.splice}] slow client: RSS growth {growth} KiB after 3 s at 16 KiB/s")
        self.assertLess(growth, RSS_GROWTH_LIMIT_KIB, "gateway buffered the response body")
        for piece in body:  # then at full speed: every byte, in order
            h.update(piece)
            got += len(piece)
        self.assertEqual(got, n)
        self.assertEqual(h.hexdigest(), pattern_sha256(n))

    def test_client_that_stops_reading_is_closed_by_its_idle_timeout(self):
        self.gw.stop()
        self.gw, self.admin = admin_gateway(self, self.up.port, {"upstream": {"splice": self.splice},
                                                                 "limits": {"client_idle_timeout": "1s"}})
        n = 50 * MiB
        c = HttpClient(self.gw.port, self, timeout=30)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.request("GET", f"/bytes?n={n}")
        head = c.read_head()
        self.assertEqual(head.status, 200, head)
        time.sleep(3.0)  # not reading at all (the scenario): the gateway must give up on us
        received = len(c.buf)
        closed, extra = c.is_closed(10.0)
        received += len(extra)
        self.assertTrue(closed, "a client that never reads kept its connection")
        self.assertLess(received, n)
        self.assertEqual(HttpClient(self.gw.port, self).roundtrip("GET", "/echo").status, 200)

    def test_client_closing_mid_body(self):
        def close_mid_body():
            c = HttpClient(self.gw.port, self)
            c.request("GET", f"/bytes?n={50 * MiB}")
            head = c.read_head()
            self.assertEqual(head.status, 200, head)
            c.read_some(256 * 1024)
            c.close()

        close_mid_body()
        self.download(HttpClient(self.gw.port, self), 1 * MiB)
        after_one = self.gw.fd_count()
        for _ in range(10):
            close_mid_body()
        # The gateway drops those exchanges and leaves no descriptor behind (upstream connection,
        # pipe, the client socket's dup for write readiness), and keeps serving.
        self.download(HttpClient(self.gw.port, self), 1 * MiB)
        wait_until(lambda: self.gw.fd_count() <= after_one + 2, 10,
                   message=lambda: f"descriptors back to {after_one} (now {self.gw.fd_count()})")

    def test_upstream_closing_mid_body_truncates_the_response(self):
        c = HttpClient(self.gw.port, self)
        c.request("GET", "/reset-mid-body?wait=1")
        head = c.read_head()
        self.assertEqual(head.status, 200, head)
        self.up.reset_go.set()
        received = 0
        with self.assertRaises(ConnectionClosed, msg="a complete response was relayed"):
            for piece in c.body_chunks(head):
                received += len(piece)
        self.assertLess(received, 1_000_000)
        self.download(HttpClient(self.gw.port, self), 1 * MiB)

    def test_upstream_stalling_mid_body_hits_the_response_timeout(self):
        self.gw.stop()
        # The timeout also bounds the wait for the head: long enough for a loaded machine (a 1 s
        # one answered 504 before the head once with three ctest jobs), scaled like the
        # harness's deadlines for the sanitizer builds.
        timeout_s = round(3 * DEADLINE_SCALE)
        self.gw, self.admin = admin_gateway(self, self.up.port, {"upstream": {
            "splice": self.splice, "response_timeout": f"{timeout_s}s"}})
        c = HttpClient(self.gw.port, self, timeout=30 + 2 * timeout_s)
        start = time.monotonic()
        c.request("GET", "/reset-mid-body?wait=1")  # 100,000 of 1,000,000 bytes, then silence
        head = c.read_head()
        self.assertEqual(head.status, 200, head)
        with self.assertRaises(ConnectionClosed, msg="a stalled body was relayed as complete"):
            for _ in c.body_chunks(head):
                pass
        self.assertLess(time.monotonic() - start, 20 + 2 * timeout_s)
        self.up.reset_go.set()


class CopiedBodies(SplicedBodies):
    splice = False


class Sender:
    """Sends `pieces` from a thread while the test reads; `done()` joins it and returns its errors."""

    def __init__(self, test: unittest.TestCase, c: HttpClient, pieces, pause: float = 0.0):
        self.errors = []
        self.thread = threading.Thread(target=self._run, args=(c, pieces, pause), daemon=True)
        self.thread.start()
        test.addCleanup(self.thread.join, 30)

    def _run(self, c, pieces, pause):
        try:
            for piece in pieces:
                c.send(bytes(piece))
                if pause:
                    time.sleep(pause)  # the scenario: a body that arrives over time
        except OSError as e:
            self.errors.append(e)

    def done(self) -> list:
        self.thread.join(30)
        return self.errors


class SplicedRequestBodies(unittest.TestCase):
    """Request bodies (POST) client -> pipe -> upstream, and what follows an early response."""
    splice = True

    def setUp(self):
        self.up = start_upstream(self)
        self.gateway()

    def gateway(self, **sections):
        if getattr(self, "gw", None) is not None:
            self.gw.stop()
        conf = {"upstream": {"splice": self.splice}}
        for name, values in sections.items():
            conf.setdefault(name, {}).update(values)
        self.gw, self.admin = admin_gateway(self, self.up.port, conf)

    def spliced(self) -> float:
        return metric_value(self.admin, "sessiongate_spliced_bytes_total", direction="request")

    def assert_spliced(self, at_least: int):
        if self.splice:
            self.assertGreater(self.spliced(), at_least)
        else:
            self.assertEqual(self.spliced(), 0)

    def test_1mib_and_8mib_posts_byte_for_byte_on_one_connection(self):
        c = HttpClient(self.gw.port, self, timeout=60)
        for n in (1 * MiB, 8 * MiB):
            body = os.urandom(n)
            r = c.roundtrip("POST", "/upload", body=body)
            self.assertEqual(r.status, 200, r)
            self.assertEqual((r.json()["body_length"], r.json()["body_sha256"]), (n, hashlib.sha256(body).hexdigest()))
        self.assertEqual(c.roundtrip("GET", "/echo").status, 200)  # the connection is still in step
        self.assertEqual(len({rec["conn"] for rec in self.up.requests}), 1, "the upstream connection was not reused")
        # Most of each body went around the gateway's buffers (the first read is copied).
        self.assert_spliced(int(0.8 * 9 * MiB))
        lines = [r for r in self.gw.access_log_lines() if r.get("path", r.get("target", "")).startswith("/upload")]
        self.assertEqual(sorted(int(r["bytes_received"]) for r in lines), [MiB, 8 * MiB])

    def test_body_arriving_in_small_pieces_over_time(self):
        n = 1 * MiB
        c = HttpClient(self.gw.port, self, timeout=30)
        c.request("POST", "/upload", headers=[("Content-Length", str(n))])
        sender = Sender(self, c, pattern_chunks(n, 16 * 1024), pause=0.01)
        r = c.read_response()
        self.assertEqual(sender.done(), [])
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["body_length"], r.json()["body_sha256"]), (n, pattern_sha256(n)))
        self.assert_spliced(n // 2)

    def test_pipelined_request_after_a_spliced_body(self):
        n = 2 * MiB
        c = HttpClient(self.gw.port, self, timeout=30)
        body = b"".join(bytes(p) for p in pattern_chunks(n))
        c.send(f"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {n}\r\n\r\n".encode() + body +
               b"GET /echo?next HTTP/1.1\r\nHost: a\r\n\r\n")
        first = c.read_response()
        self.assertEqual((first.status, first.json()["body_sha256"]), (200, pattern_sha256(n)))
        second = c.read_response()
        self.assertEqual((second.status, second.json()["target"]), (200, "/echo?next"))
        self.assertEqual(first.json()["conn"], second.json()["conn"])
        self.assert_spliced(n // 2)

    def test_expect_100_continue(self):
        n = 1 * MiB
        c = HttpClient(self.gw.port, self, timeout=30)
        c.request("POST", "/upload", headers=[("Content-Length", str(n)), ("Expect", "100-continue")])
        interim = c.read_head()
        self.assertEqual(interim.status, 100, interim)
        for piece in pattern_chunks(n):
            c.send(bytes(piece))
        r = c.read_response()
        self.assertEqual((r.status, r.json()["body_sha256"]), (200, pattern_sha256(n)))
        self.assert_spliced(n // 2)

    def test_body_over_the_limit_is_refused_before_anything_goes_upstream(self):
        self.gateway(limits={"max_body_bytes": "1MiB"})
        c = HttpClient(self.gw.port, self, timeout=30)
        c.send(f"POST /upload?over HTTP/1.1\r\nHost: a\r\nContent-Length: {2 * MiB}\r\n\r\n".encode() +
               bytes(64 * 1024))
        r = c.read_response()
        self.assertEqual(r.status, 413, r)
        # A request after it reaches the upstream; the refused one never did.
        self.assertEqual(HttpClient(self.gw.port, self).roundtrip("GET", "/echo?after").status, 200)
        self.assertEqual([rec["target"] for rec in self.up.requests], ["/echo?after"])
        self.assertEqual(self.spliced(), 0)

    def test_client_stopping_mid_body_is_closed_by_its_idle_timeout(self):
        self.gateway(limits={"client_idle_timeout": "1s"})
        n = 8 * MiB
        c = HttpClient(self.gw.port, self, timeout=30)
        c.request("POST", "/upload?stalled", headers=[("Content-Length", str(n))])
        for piece in pattern_chunks(2 * MiB):
            c.send(bytes(piece))
        # Then nothing: the gateway closes us, and the upstream sees a short body and a close.
        closed, extra = c.is_closed(15.0)
        self.assertTrue(closed, "a client that stopped mid-body kept its connection")
        self.assertEqual(extra, b"")
        wait_until(lambda: self.up.open_connections() == 0, 10,
                   message=lambda: f"the upstream connection closed (open {self.up.open_connections()})")
        self.assertLess(self.up.body_bytes_read, n)
        self.assertNotIn("/upload?stalled", [rec["target"] for rec in self.up.requests])
        self.assert_spliced(1 * MiB)
        self.assertEqual(HttpClient(self.gw.port, self).roundtrip("GET", "/echo").status, 200)

    def test_slow_upstream_is_bounded(self):
        n = 48 * MiB
        warm = HttpClient(self.gw.port, self, timeout=30)
        self.assertEqual(warm.roundtrip("POST", "/upload", body=bytes(8 * MiB)).status, 200)  # steady state
        self.up.body_bytes_read = 0
        base = self.gw.rss_kib()
        c = HttpClient(self.gw.port, self, timeout=30)
        c.request("POST", "/upload?pause_after=4194304&pause_ms=2500", headers=[("Content-Length", str(n))])
        sender = Sender(self, c, pattern_chunks(n))
        wait_until(lambda: self.up.body_bytes_read >= 4 * MiB, 10,
                   message=lambda: f"upstream reading the body (read {self.up.body_bytes_read}, errors {sender.errors})")
        time.sleep(1.5)  # the scenario: the upstream stalls while the client pushes
        growth = self.gw.rss_kib() - base
        print(f"\n[splice={self.splice}] slow upstream: RSS growth {growth} KiB during a 2.5 s stall")
        r = c.read_response()
        self.assertEqual(sender.done(), [])
        self.assertEqual((r.status, r.json()["body_length"], r.json()["body_sha256"]), (200, n, pattern_sha256(n)))
        self.assertLess(growth, RSS_GROWTH_LIMIT_KIB, "gateway buffered the request body")
        self.assert_spliced(n // 2)

    def test_early_response_the_rest_goes_on_to_an_upstream_that_reads_it(self):
        # The application answers before reading the body, then reads it (nginx's `return`): the
        # client's connection and the upstream's stay open, the body reaches the upstream whole.
        n = 1 * MiB
        c = HttpClient(self.gw.port, self, timeout=30)
        c.request("POST", "/upload?early=200", headers=[("Content-Length", str(n))])
        sender = Sender(self, c, pattern_chunks(n, 64 * 1024), pause=0.002)
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"early\n"))
        self.assertNotIn("close", r.tokens("Connection"))
        self.assertEqual(sender.done(), [])
        rec = self.up.wait_requests(1)[0]
        self.assertEqual((rec["body_length"], rec["body_sha256"]), (n, pattern_sha256(n)))
        echo = c.roundtrip("GET", "/echo?next")  # the same client connection
        self.assertEqual(echo.status, 200, echo)
        self.assertEqual(echo.json()["conn"], rec["conn"], "the upstream connection was not reused")

    def test_early_response_with_close_the_rest_is_dropped_and_the_client_kept(self):
        n = 1 * MiB
        c = HttpClient(self.gw.port, self, timeout=30)
        c.request("POST", "/upload?early=413&then=close", headers=[("Content-Length", str(n))])
        sender = Sender(self, c, pattern_chunks(n, 64 * 1024), pause=0.002)
        r = c.read_response()
        self.assertEqual((r.status, r.body), (413, b"early\n"))
        self.assertNotIn("close", r.tokens("Connection"))
        self.assertEqual(sender.done(), [])
        echo = c.roundtrip("GET", "/echo?next")  # the rest was read and dropped: in step
        self.assertEqual((echo.status, echo.json()["target"]), (200, "/echo?next"))
        lines = [x for x in self.gw.access_log_lines() if x["path"].startswith("/upload")]
        self.assertEqual([(x["status"], int(x["bytes_received"])) for x in lines], [(413, n)])

    def test_early_response_with_a_rest_over_the_bound_closes(self):
        n = 8 * MiB  # more than the 1 MiB the gateway reads after a response to keep a connection
        c = HttpClient(self.gw.port, self, timeout=30)
        c.request("POST", "/upload?early=413&then=close", headers=[("Content-Length", str(n))])
        Sender(self, c, pattern_chunks(n, 64 * 1024))  # a reset may cut it: no check
        r = c.read_response()
        self.assertEqual((r.status, r.body), (413, b"early\n"))
        self.assertIn("close", r.tokens("Connection"))
        closed, _ = c.is_closed(15.0)
        self.assertTrue(closed, "the connection stayed open with an unread body")
        self.assertEqual(HttpClient(self.gw.port, self).roundtrip("GET", "/echo").status, 200)


    def test_a_tls_client_stays_on_the_copy_path(self):
        from tls_util import HttpsClient, TlsGateway, make_pki, tls_overrides
        pki = make_pki(self)
        self.gw.stop()
        conf = {"upstream": {"splice": self.splice}, "admin": {"listen": "127.0.0.1:<free>"}}
        conf.update(tls_overrides(pki.default))
        self.gw = TlsGateway(self, self.up.port, conf, ca=pki.ca_cert)
        self.admin = self.gw.admin_port
        c = HttpsClient(self.gw.port, self.gw.context(), test=self, timeout=30)
        n = 2 * MiB
        body = os.urandom(n)
        r = c.roundtrip("POST", "/upload", body=body)
        self.assertEqual((r.status, r.json()["body_sha256"]), (200, hashlib.sha256(body).hexdigest()))
        c.request("GET", f"/bytes?n={n}")
        resp, length, sha = c.read_response_hashed()
        self.assertEqual((resp.status, length, sha), (200, n, pattern_sha256(n)))
        self.assertEqual(self.spliced(), 0)
        self.assertEqual(metric_value(self.admin, "sessiongate_spliced_bytes_total", direction="response"), 0)


class CopiedRequestBodies(SplicedRequestBodies):
    splice = False


if __name__ == "__main__":
    unittest.main()
