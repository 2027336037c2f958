"""Plain HTTP/1.1 proxying: forwarded headers, hop-by-hop removal, keep-alive, pipelining,
bodiless responses, local health endpoints."""

import time
import unittest

from harness import FREE_ADMIN_LISTEN, Gateway, HttpClient, start_upstream, wait_until
from ops_util import metric_value


def values(record: dict, name: str) -> list[str]:
    return [v for k, v in record["headers"] if k.lower() == name.lower()]


def names(record: dict) -> set[str]:
    return {k.lower() for k, _ in record["headers"]}


class ProxyBasics(unittest.TestCase):
    def setUp(self):
        self.up = start_upstream(self)

    def gateway(self, overrides=None) -> Gateway:
        return Gateway(self, self.up.port, overrides)

    def test_get_reaches_upstream_with_forwarded_headers_from_the_real_peer(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        r = c.roundtrip("GET", "/echo?a=1&b=%20x", host="app.example:8443",
                        headers=[("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Host", "evil.example"),
                                 ("X-Forwarded-Proto", "https"), ("X-Custom", "kept")])
        self.assertEqual(r.status, 200, r)
        rec = r.json()
        self.assertEqual(rec["method"], "GET")
        self.assertEqual(rec["target"], "/echo?a=1&b=%20x")
        self.assertEqual(rec["version"], "HTTP/1.1")
        # The peer (127.0.0.1) is not trusted: client-sent X-Forwarded-* are replaced, not appended.
        self.assertEqual(values(rec, "X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(values(rec, "X-Forwarded-Proto"), ["http"])
        self.assertEqual(values(rec, "X-Forwarded-Host"), ["app.example:8443"])
        self.assertEqual(values(rec, "Host"), ["app.example:8443"])
        self.assertEqual(values(rec, "X-Custom"), ["kept"])
        self.assertEqual(self.up.wait_requests(1)[0]["target"], "/echo?a=1&b=%20x")

    def test_trusted_proxy_keeps_and_appends_x_forwarded_for(self):
        gw = self.gateway({"server": {"trusted_proxies": ["127.0.0.1/32"]}})
        c = HttpClient(gw.port, self)
        r = c.roundtrip("GET", "/echo", headers=[("X-Forwarded-For", "203.0.113.7")])
        self.assertEqual(r.status, 200, r)
        xff = ",".join(values(r.json(), "X-Forwarded-For"))
        self.assertEqual([p.strip() for p in xff.split(",")], ["203.0.113.7", "127.0.0.1"])

    def test_hop_by_hop_headers_are_removed(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        r = c.roundtrip("GET", "/echo", headers=[
            ("Connection", "keep-alive, X-Named-Hop"),
            ("X-Named-Hop", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "X-Trailer"),
            ("Upgrade", "foo/1"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("Proxy-Connection", "keep-alive"),
            ("X-End-To-End", "yes"),
        ])
        self.assertEqual(r.status, 200, r)
        rec = r.json()
        seen = names(rec)
        for h in ("x-named-hop", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization",
                  "proxy-connection"):
            self.assertNotIn(h, seen, f"{h} forwarded: {rec['headers']}")
        for v in values(rec, "Connection"):
            self.assertTrue(set(t.strip().lower() for t in v.split(",")) <= {"keep-alive", "close"},
                            f"Connection forwarded with {v!r}")
        self.assertEqual(values(rec, "X-End-To-End"), ["yes"])

    def test_client_keep_alive_and_upstream_connection_reuse(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        for i in range(20):
            r = c.roundtrip("GET", f"/echo?n={i}")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["target"], f"/echo?n={i}")
            self.assertNotIn("close", r.tokens("Connection"), f"request {i}: {r}")
            if i == 0:
                # The gateway may open connections of its own (e.g. a readiness probe): count from here.
                conns_after_first = self.up.connections
        self.assertEqual(self.up.connections, conns_after_first, "upstream keep-alive connection not reused")
        self.assertEqual(len({rec["conn"] for rec in self.up.requests}), 1,
                         "the 20 requests used several upstream connections")

    def test_upstream_connection_reused_across_client_connections(self):
        gw = self.gateway({"server": {"workers": 1}})  # one pool: every client lands on it
        for i in range(5):
            c = HttpClient(gw.port, self)
            self.assertEqual(c.roundtrip("GET", f"/echo?c={i}").status, 200)
            c.close()
        self.assertEqual(len({rec["conn"] for rec in self.up.requests}), 1,
                         "one worker's pooled upstream connection was not reused across client connections")

    def test_pipelined_requests_are_answered_in_order(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        reqs = b"".join(b"GET /echo?p=%d HTTP/1.1\r\nHost: gw.test\r\n\r\n" % i for i in range(4))
        reqs += b"POST /upload?p=4 HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n\r\nhello"
        c.send(reqs)
        for i in range(5):
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertTrue(r.json()["target"].endswith(f"?p={i}"), r.json()["target"])
        self.assertEqual(r.json()["body"], "hello")
        # The connection is still usable afterwards.
        self.assertEqual(c.roundtrip("GET", "/echo?after").status, 200)

    def test_fifty_pipelined_requests_in_one_write(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        c.send(b"".join(b"GET /echo?q=%d HTTP/1.1\r\nHost: gw.test\r\n\r\n" % i for i in range(50)))
        for i in range(50):
            self.assertEqual(c.read_response().json()["target"], f"/echo?q={i}")

    def test_client_sent_session_headers_never_reach_the_upstream(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        r = c.roundtrip("GET", "/echo", headers=[("X-Session-Id", "forged-handle"), ("x-session-user", "admin"),
                                                 ("X-SESSION-ROLE", "root"), ("Connection", "X-Session-Id")])
        self.assertEqual(r.status, 200, r)
        for k, v in r.json()["headers"]:
            self.assertNotIn(v, ("forged-handle", "admin", "root"), f"client-sent {k} forwarded")

    def test_pipelined_requests_with_slow_first_answer_stay_in_order(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        c.send(b"GET /delay?ms=300 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo?second HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(c.read_response().json()["path"], "/delay")
        self.assertEqual(c.read_response().json()["target"], "/echo?second")

    def test_head_204_304_have_no_body_and_keep_the_connection(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        r = c.roundtrip("HEAD", "/bytes?n=12345")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Length"), "12345")
        self.assertEqual(r.body, b"")
        r = c.roundtrip("GET", "/status/204")
        self.assertEqual(r.status, 204)
        self.assertIsNone(r.header("Transfer-Encoding"))
        r = c.roundtrip("GET", "/status/304", headers=[("If-None-Match", '"v1"')])
        self.assertEqual(r.status, 304)
        self.assertEqual(r.header("ETag"), '"v1"')
        # Had any of those carried a body, this response would be garbled.
        r = c.roundtrip("GET", "/echo?last")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["target"], "/echo?last")
        # Nothing stray follows.
        closed, extra = c.is_closed(0.2)
        self.assertEqual(extra, b"")

    def test_request_body_and_post_method_are_forwarded(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        r = c.roundtrip("PUT", "/echo", body=b"payload", headers=[("Content-Type", "text/plain")])
        self.assertEqual(r.status, 200, r)
        rec = r.json()
        self.assertEqual((rec["method"], rec["body"]), ("PUT", "payload"))
        self.assertEqual(values(rec, "Content-Type"), ["text/plain"])

    def test_upstream_connection_close_is_handled(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        for i in range(3):
            r = c.roundtrip("GET", "/close")
            self.assertEqual((r.status, r.body), (200, b"bye\n"))
        # The client connection survives the upstream's Connection: close.
        self.assertEqual(c.roundtrip("GET", "/echo").status, 200)
        # Each /close used its own upstream connection (a closed one is never reused).
        self.assertEqual(len({rec["conn"] for rec in self.up.requests}), 4)

    def test_client_connection_close_is_honoured(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        r = c.roundtrip("GET", "/echo", headers=[("Connection", "close")])
        self.assertEqual(r.status, 200)
        c.assert_closed(self)

    def test_http_1_0_client_gets_a_response_and_close(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        r = c.roundtrip("GET", "/echo", version="HTTP/1.0")
        self.assertEqual(r.status, 200, r)
        c.assert_closed(self)

    def test_health_and_readiness_are_answered_locally(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        self.assertEqual(c.roundtrip("GET", "/echo").status, 200)  # the upstream answered recently
        r = c.roundtrip("GET", "/healthz")
        self.assertEqual(r.status, 200)
        r = c.roundtrip("GET", "/readyz")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(c.roundtrip("GET", "/healthz").status, 200)
        self.assertEqual(self.up.paths(), ["/echo"], "health endpoints reached the upstream")

    def test_response_headers_and_status_are_relayed(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        r = c.roundtrip("GET", "/respond?status=418&h=X-One:1&h=X-Two:two%20words&body=teapot")
        self.assertEqual(r.status, 418)
        self.assertEqual(r.header("X-One"), "1")
        self.assertEqual(r.header("X-Two"), "two words")
        self.assertEqual(r.body, b"teapot")

    def test_head_of_a_chunked_response_has_no_body(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        r = c.roundtrip("HEAD", "/bytes?n=5000&chunked=1")
        self.assertEqual((r.status, r.body), (200, b""))
        self.assertEqual(c.roundtrip("GET", "/echo?after-head").json()["target"], "/echo?after-head")

    def test_close_delimited_upstream_response_is_relayed_intact(self):
        from upstream import pattern_sha256
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        c.request("GET", "/close-delimited?n=300000")
        r, n, sha = c.read_response_hashed()
        self.assertEqual(r.status, 200, r)
        self.assertEqual((n, sha), (300000, pattern_sha256(300000)))
        # Re-framed as chunked the client connection may stay open; close-delimited must close it.
        if r.body_framing == "close":
            c.assert_closed(self)
        else:
            self.assertEqual(c.roundtrip("GET", "/echo").status, 200)

    def test_concurrent_clients_each_get_their_own_responses(self):
        import threading
        gw = self.gateway()
        errors = []

        def client(k):
            try:
                c = HttpClient(gw.port)
                try:
                    for i in range(10):
                        body = f"client {k} request {i}".encode()
                        r = c.roundtrip("POST", f"/echo?k={k}&i={i}", body=body)
                        rec = r.json()
                        if r.status != 200 or rec["target"] != f"/echo?k={k}&i={i}" or rec["body"] != body.decode():
                            errors.append((k, i, r.status, rec.get("target")))
                finally:
                    c.close()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append((k, repr(e)))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(len(self.up.requests), 300)

    def test_two_workers_serve_requests(self):
        gw = self.gateway({"server": {"workers": 2}})
        for i in range(10):
            c = HttpClient(gw.port, self)
            self.assertEqual(c.roundtrip("GET", f"/echo?w={i}").status, 200)
            c.close()

    def test_client_abandoning_a_download_does_not_poison_the_pool(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        c.request("GET", f"/bytes?n={32 << 20}")
        head = c.read_head()
        self.assertEqual(head.status, 200)
        next(c.body_chunks(head))
        c.close()  # walk away with most of the body unsent
        for i in range(3):
            d = HttpClient(gw.port, self)
            r = d.roundtrip("GET", f"/echo?after-abort={i}")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["target"], f"/echo?after-abort={i}")
            d.close()

    def test_client_abandoning_an_upload_does_not_poison_the_pool(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        c.request("POST", "/upload", headers=[("Content-Length", str(10 << 20))])
        c.send(b"a" * (1 << 20))
        wait_until(lambda: self.up.body_bytes_read > 0, 5.0, message="upstream reading the upload")
        c.close()
        d = HttpClient(gw.port, self)
        r = d.roundtrip("POST", "/upload?second", body=b"b" * 1000)
        self.assertEqual(r.status, 200, r)
        rec = r.json()
        self.assertEqual((rec["target"], rec["body_length"]), ("/upload?second", 1000))

    def test_stale_pooled_connection_closed_by_upstream_is_not_used(self):
        gw = self.gateway({"admin": {"listen": FREE_ADMIN_LISTEN}})
        c = HttpClient(gw.port, self)
        self.assertEqual(c.roundtrip("GET", "/echo?first").status, 200)
        wait_until(lambda: metric_value(gw.admin_port, "sessiongate_upstream_connections_idle") == 1, 15.0,
                   message="the upstream connection idle in the pool")
        self.up.close_connections()  # the upstream's own keep-alive timeout fires
        wait_until(lambda: self.up.open_connections() == 0, 15.0)
        # The FIN reaches the gateway, which drops the pooled connection (a condition, not a pause).
        wait_until(lambda: metric_value(gw.admin_port, "sessiongate_upstream_connections_idle") == 0, 15.0,
                   message="the gateway dropping the pooled connection the upstream closed")
        r = c.roundtrip("GET", "/echo?second")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["target"], "/echo?second")

    def test_client_idle_timeout_closes_idle_keep_alive_connections(self):
        gw = self.gateway({"limits": {"client_idle_timeout": "1s"}})
        c = HttpClient(gw.port, self)
        self.assertEqual(c.roundtrip("GET", "/echo").status, 200)
        start = time.monotonic()
        closed, extra = c.is_closed(4.0)
        self.assertTrue(closed, "idle connection not closed after client_idle_timeout")
        self.assertEqual(extra, b"")
        self.assertGreaterEqual(time.monotonic() - start, 0.8)

    def test_upstream_idle_timeout_closes_pooled_connections(self):
        gw = self.gateway({"upstream": {"idle_timeout": "1s"}})
        c = HttpClient(gw.port, self)
        self.assertEqual(c.roundtrip("GET", "/echo").status, 200)
        self.assertGreaterEqual(self.up.open_connections(), 1)
        wait_until(lambda: self.up.open_connections() == 0, 4.0,
                   message="the gateway closing its idle pooled upstream connection")
        self.assertEqual(c.roundtrip("GET", "/echo?again").status, 200)

    def test_http_1_0_client_never_gets_chunked(self):
        from upstream import pattern_sha256
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        c.request("GET", "/bytes?n=100000&chunked=1", version="HTTP/1.0", headers=[("Connection", "keep-alive")])
        r, n, sha = c.read_response_hashed()
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("chunked", r.tokens("Transfer-Encoding"), "chunked sent to an HTTP/1.0 client")
        self.assertEqual((n, sha), (100000, pattern_sha256(100000)))
        if r.body_framing == "close":
            c.assert_closed(self)

    def test_requests_after_connection_close_are_not_processed(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        c.send(b"GET /echo?first HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n"
               b"GET /echo?second HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.json()["target"], "/echo?first")
        self.assertIn("close", r.tokens("Connection"))
        c.assert_closed(self)
        self.assertEqual([x["target"] for x in self.up.requests], ["/echo?first"])

    def test_header_order_and_repeated_headers_are_preserved(self):
        gw = self.gateway()
        c = HttpClient(gw.port, self)
        sent = [("X-Dup", "one"), ("Accept", "text/html"), ("X-Dup", "two"), ("X-Empty", ""),
                ("X-Spaces", "a  b"), ("X-Dup", "three")] + [(f"X-N{i}", str(i)) for i in range(60)]
        r = c.roundtrip("GET", "/echo", headers=sent)
        self.assertEqual(r.status, 200, r)
        interesting = {"x-dup", "accept", "x-empty", "x-spaces"} | {f"x-n{i}" for i in range(60)}
        got = [(k, v) for k, v in r.json()["headers"] if k.lower() in interesting]
        self.assertEqual([(k.lower(), v) for k, v in got], [(k.lower(), v) for k, v in sent])

    def test_max_connections_defers_accepting_until_one_closes(self):
        # gateway.toml: "at the limit a worker stops accepting until a connection closes".
        gw = self.gateway({"server": {"max_connections": 3, "workers": 1}})  # one worker: all 3 are its share
        held = [HttpClient(gw.port, self) for _ in range(3)]
        for i, c in enumerate(held):
            self.assertEqual(c.roundtrip("GET", f"/echo?held={i}").status, 200)
        extra = HttpClient(gw.port, self)  # completes in the kernel's backlog
        extra.request("GET", "/echo?extra")
        extra.settimeout(0.5)
        with self.assertRaises(TimeoutError, msg="a 4th connection was served over max_connections=3"):
            extra.read_response()
        extra.settimeout(10)
        held[0].close()
        r = extra.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["target"], "/echo?extra")


if __name__ == "__main__":
    unittest.main()
