"""Live responses follow the session (issue 14): a response that is still running when its session
is destroyed (a destroy directive from another request, an admin DELETE) is cut off, on HTTP/1.1
(the connection closes before the last chunk or before Content-Length is reached: never a
well-formed end) and on HTTP/2 (RST_STREAM CANCEL on that stream only, the connection goes on);
another session's stream keeps flowing. Covered: a streaming response (server-sent events style),
a long poll that sends only its head (found by the follower's sweep, not by body bytes), an h2c
stream, and responses that end within the 1 s grace, which are never watched. Memory store with
two workers (the end crosses threads), and Redis with two instances (it crosses processes).

Cut-offs are asserted within a generous deadline (tests never fail on a timing); the time from
the destroying response to the cut is printed (run with -v)."""

import json
import os
import sys
import time
import unittest

from h2_util import H2Client
from harness import DEADLINE_SCALE, HttpClient, wait_until
from ops_util import metric_value
from redis_util import RedisServer
from session_util import cookie_header, respond_target
from test_live_sessions import REDIS_PREFIX, LiveTestCase

CUT_DEADLINE_S = 6.0 * DEADLINE_SCALE  # grace (1 s) + sweep (1 s) + check, with a wide margin
ENDED = "sessiongate_responses_ended_session_ended_total"
CHECKS = "sessiongate_watched_session_checks_total"
STREAM = "/slow-body?chunks=400&ms=50&size=64"  # 20 s of chunks, unless cut


def report(text: str) -> None:
    print(f"\n    [measured] {text}", file=sys.stderr, flush=True)


def chunked_complete(raw: bytes) -> bool:
    """True when `raw` (a chunked body) reaches its last chunk."""
    pos = 0
    while True:
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            return False
        size = int(raw[pos:eol].split(b";")[0], 16)
        if size == 0:
            return True
        pos = eol + 2 + size + 2
        if pos > len(raw):
            return False


class LiveResponsesCase(LiveTestCase):
    def open_stream(self, gw, token: str, target: str = STREAM) -> HttpClient:
        c = HttpClient(gw.port, self)
        self.addCleanup(c.close)
        c.request("GET", target, headers=[cookie_header(token)])
        r = c.read_head()
        self.assertEqual(r.status, 200, r)
        c.head = r
        return c

    def read_until_closed(self, c: HttpClient, timeout: float) -> tuple[bool, bytes]:
        """Reads until EOF or reset within `timeout`: (closed, the bytes read)."""
        deadline = time.monotonic() + timeout
        got = bytes(c.buf)
        c.buf.clear()
        while time.monotonic() < deadline:
            c.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = c.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return True, got
            except TimeoutError:
                break
            if not data:
                return True, got
            got += data
        return False, got

    def assert_flowing(self, c: HttpClient, more: int = 256):
        """`more` body bytes arrive (the stream of another session goes on)."""
        got = b""
        c.settimeout(5 * DEADLINE_SCALE)
        while len(got) < more:
            data = c.read_some()
            self.assertNotEqual(data, b"", "the other session's stream was closed")
            got += data

    def wait_watched(self, gw):
        """Waits until the periodic check looks a session up: a response is watched (past the
        grace and a sweep). A destroy before that is found by the check, not the bus."""
        wait_until(lambda: metric_value(gw.admin_port, CHECKS) > 0, timeout=5 * DEADLINE_SCALE,
                   message="a running response is watched")

    def destroy_by_directive(self, gw, token: str) -> float:
        r = self.get(gw, respond_target(("X-Session-Control", "destroy")), token=token)
        self.assertEqual(r.status, 200, r)
        return time.monotonic()



class LiveResponses(LiveResponsesCase):
    def test_a_streaming_response_is_cut_when_its_session_is_destroyed(self):
        gw = self.live_gateway()
        alice, bob = self.signed_in(gw, "alice"), self.signed_in(gw, "bob")
        a, b = self.open_stream(gw, alice), self.open_stream(gw, bob)
        self.assertEqual(a.head.header("Transfer-Encoding"), "chunked")
        self.assert_flowing(a)
        self.wait_watched(gw)
        destroyed = self.destroy_by_directive(gw, alice)
        closed, raw = self.read_until_closed(a, CUT_DEADLINE_S)
        cut = time.monotonic() - destroyed
        self.assertTrue(closed, "the stream of the destroyed session still runs")
        self.assertFalse(chunked_complete(raw), "a cut response must not end with the last chunk")
        report(f"HTTP/1.1 stream cut {cut * 1000:.0f} ms after the destroying response")
        self.assert_flowing(b)
        wait_until(lambda: metric_value(gw.admin_port, ENDED) == 1, timeout=5 * DEADLINE_SCALE,
                   message="the cut response is counted")

    def test_a_long_poll_that_sent_only_its_head_is_cut_after_an_admin_delete(self):
        audit = os.path.join(self.tmp_dir(), "audit.log")
        gw = self.live_gateway({"log": {"audit": audit}})
        alice, bob = self.signed_in(gw, "alice"), self.signed_in(gw, "bob")
        poll = self.open_stream(gw, alice, "/head-then-wait?cl=100")
        other = self.open_stream(gw, bob, "/head-then-wait?cl=100")
        self.assertEqual(poll.head.header("Content-Length"), "100")
        self.wait_watched(gw)  # nothing flows: only the follower's sweep can watch these
        r = self.admin(gw, "DELETE", "/sessions?user=alice")
        self.assertEqual(r.status, 200, r)
        deleted = time.monotonic()
        closed, raw = self.read_until_closed(poll, CUT_DEADLINE_S)
        self.assertTrue(closed, "the long poll of the deleted session is still open")
        self.assertLess(len(raw), 100, "fewer bytes than its Content-Length: a truncated response")
        report(f"HTTP/1.1 long poll cut {(time.monotonic() - deleted) * 1000:.0f} ms after the admin DELETE")
        closed, _ = self.read_until_closed(other, 0.5)
        self.assertFalse(closed, "the other session's long poll was closed")

        def lines():
            with open(audit) as f:
                return [json.loads(line) for line in f if line.strip()]

        wait_until(lambda: any(e["event"] == "response-ended" for e in lines()), timeout=5,
                   message="no response-ended audit line")
        ended = [e for e in lines() if e["event"] == "response-ended"]
        self.assertEqual(len(ended), 1, ended)
        self.assertEqual(ended[0]["reason"], "session-ended")
        self.assertEqual(ended[0]["user"], "alice")
        with open(audit) as f:
            self.assertNotIn(alice, f.read(), "a token in the audit log")

    def test_an_h2_stream_is_reset_with_cancel_and_its_connection_goes_on(self):
        gw = self.live_gateway({"server": {"workers": 2, "http2_cleartext": True}})
        alice, bob = self.signed_in(gw, "alice"), self.signed_in(gw, "bob")
        a = H2Client(gw.port)
        self.addCleanup(a.close)
        b = H2Client(gw.port)
        self.addCleanup(b.close)
        sa = a.request(STREAM, extra=[("cookie", f"session_id={alice}")])
        sb = b.request(STREAM, extra=[("cookie", f"session_id={bob}")])
        a.wait(lambda: len(a.streams[sa].body) > 0, "alice's first data")
        b.wait(lambda: len(b.streams[sb].body) > 0, "bob's first data")
        self.wait_watched(gw)
        destroyed = self.destroy_by_directive(gw, alice)
        a.wait(lambda: a.streams[sa].reset is not None or a.streams[sa].ended, "alice's stream cut",
               timeout=CUT_DEADLINE_S)
        report(f"HTTP/2 stream reset {(time.monotonic() - destroyed) * 1000:.0f} ms after the destroy")
        self.assertFalse(a.streams[sa].ended, "a cut stream must not end well-formed")
        self.assertEqual(a.streams[sa].reset, 0x8, "RST_STREAM CANCEL")
        # The connection goes on: a new stream on it is answered (the old cookie is dead: a new session).
        r = a.response(a.request("/echo", extra=[("cookie", f"session_id={alice}")]))
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(a.goaway)
        before = len(b.streams[sb].body)
        b.wait(lambda: len(b.streams[sb].body) > before + 256, "bob's stream goes on")
        self.assertIsNone(b.streams[sb].reset)
        wait_until(lambda: metric_value(gw.admin_port, ENDED) == 1, timeout=5 * DEADLINE_SCALE,
                   message="the reset stream is counted")

    def test_responses_within_the_grace_are_never_watched(self):
        gw = self.live_gateway()
        alice = self.signed_in(gw, "alice")
        until = time.monotonic() + 2.5  # two sweeps and checks at least
        while time.monotonic() < until:
            self.assertEqual(self.get(gw, "/delay?ms=300", token=alice).status, 200)
            self.assertEqual(self.get(gw, "/echo", token=alice).status, 200)
        c = HttpClient(gw.port, self)
        self.addCleanup(c.close)
        c.request("GET", "/slow-body?chunks=5&ms=100&size=64", headers=[cookie_header(alice)])
        self.assertEqual(c.read_response().status, 200)  # a stream that ends within the grace
        time.sleep(1.2)  # one more sweep: nothing is left to watch (not an assertion)
        self.assertEqual(metric_value(gw.admin_port, CHECKS), 0, "a short response was watched")
        self.assertEqual(metric_value(gw.admin_port, ENDED), 0)
        # The same figure does move for a response that outlives the grace.
        self.assertEqual(self.get(gw, "/delay?ms=2500", token=alice).status, 200)
        wait_until(lambda: metric_value(gw.admin_port, CHECKS) > 0, timeout=5 * DEADLINE_SCALE,
                   message="a long response is watched")
        self.assertEqual(metric_value(gw.admin_port, ENDED), 0)


class RedisLiveResponses(LiveResponsesCase):
    def setUp(self):
        super().setUp()
        self.redis = RedisServer(self)

    def instance(self):
        sections = {"store.redis": {"address": self.redis.address, "key_prefix": REDIS_PREFIX, "timeout": "2s"}}
        gw = self.live_gateway(sections, store="redis")
        # Ready once both workers' store connections are up and the events subscriber is
        # subscribed (as test_live_sessions.py waits).
        wait_until(lambda: gw.logs()[1].count("redis store: connected to") >= 2, 15.0,
                   message="both workers connected to Redis")
        self.instances = getattr(self, "instances", 0) + 1
        wait_until(lambda: int(self.redis.cmd("PUBSUB", "NUMSUB", REDIS_PREFIX + "events")[1])
                   >= self.instances, 15.0, message="the instance's events subscriber")
        return gw

    def test_a_destroy_on_one_instance_cuts_the_stream_on_the_other(self):
        a, b = self.instance(), self.instance()
        alice, bob = self.signed_in(a, "alice"), self.signed_in(a, "bob")
        s, other = self.open_stream(b, alice), self.open_stream(b, bob)
        self.assert_flowing(s)
        self.wait_watched(b)
        destroyed = self.destroy_by_directive(a, alice)
        closed, raw = self.read_until_closed(s, CUT_DEADLINE_S)
        self.assertTrue(closed, "the stream of the destroyed session still runs")
        self.assertFalse(chunked_complete(raw))
        report(f"Redis: stream cut {(time.monotonic() - destroyed) * 1000:.0f} ms after the destroy "
               "on the other instance")
        self.assert_flowing(other)
        wait_until(lambda: metric_value(b.admin_port, ENDED) == 1, timeout=5 * DEADLINE_SCALE,
                   message="the cut response is counted on the instance that served it")


if __name__ == "__main__":
    unittest.main()
