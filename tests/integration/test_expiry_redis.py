"""Expiry and eviction are audited with the Redis store too (issue 14; redis_scripts.h, "The
expiry schedule"): with `[log] audit` to a file and a short idle timeout,

- a signed-in session that expires produces exactly one `expired` (idle) audit line with its
  handle, user and client (and no token), its WebSocket tunnel is closed (1008), its key and index
  entry are gone, the user listing never shows it, and sessiongate_sessions_expired_total counts
  it;
- a session key deleted behind the gateway's back (what maxmemory eviction does) produces one
  `evicted` line with its handle (and sessiongate_sessions_evicted_total), and the listing does
  not show it;
- with two instances on one Redis, each ended session is written once in the union of their
  audit logs (one instance's sweep takes it).

Waits are deadline-based (harness.wait_until, scaled by SG_TEST_DEADLINE_SCALE)."""

import base64
import json
import os
import struct
import unittest

from harness import HttpClient, wait_until
from ops_util import FREE_ADMIN_LISTEN, metric_value
from redis_util import session_key
from session_util import cookie_header
from test_users import OnRedis, UsersTestCase
from upstream import make_ws_frame, read_ws_frame

PREFIX = "sgusers:"  # OnRedis's key prefix
SCALE = float(os.environ.get("SG_TEST_DEADLINE_SCALE", "1") or 1)


class ExpiryAuditOnRedis(OnRedis, UsersTestCase):
    def audited(self, *overrides_and_session, audit_name="audit.log", **session):
        path = os.path.join(self.tmp, audit_name)
        gw = self.gateway({"admin": {"listen": FREE_ADMIN_LISTEN, "token_file": self.token_file},
                           "log": {"audit": path}}, **session)
        return gw, path

    @staticmethod
    def lines(*paths) -> list[dict]:
        out = []
        for p in paths:
            if os.path.exists(p):
                with open(p) as f:
                    out += [json.loads(line) for line in f if line.strip()]
        return out

    def ends_of(self, handle: str, *paths) -> list[dict]:
        return [e for e in self.lines(*paths)
                if e["session"] == handle and e["event"] in ("expired", "evicted")]

    def open_ws(self, gw, token: str) -> HttpClient:
        c = HttpClient(gw.port, self)
        key = base64.b64encode(os.urandom(16)).decode()
        c.request("GET", "/ws", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                         ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13"),
                                         cookie_header(token)])
        r = c.read_response()
        self.assertEqual(r.status, 101, r)
        c.send(make_ws_frame(0x1, b"hello", mask=True))
        self.assertEqual(read_ws_frame(c._read_exact, expect_masked=False)[:2], (0x1, b"hello"))
        return c

    def signed_in(self, gw, user: str, agent: str) -> tuple[str, str]:
        token = self.device(gw, agent)
        self.sign_in(gw, token, user)
        handle = next(s["handle"] for s in self.list_user(gw, user) if s["user_agent"] == agent)
        return token, handle

    def assert_no_tokens(self, path: str, tokens):
        with open(path) as f:
            text = f.read()
        for t in tokens:
            self.assertNotIn(t, text, "a token in the audit log")

    def test_expired_session_is_audited_once_and_its_tunnel_closed(self):
        gw, path = self.audited(idle_timeout="2s", absolute_timeout="1h")
        token, handle = self.signed_in(gw, "kim", "E")
        ws = self.open_ws(gw, token)
        # The sweep ends it about when it expires: the tunnel closes with 1008 ...
        ws.settimeout(15 * SCALE)
        opcode, payload, _ = read_ws_frame(ws._read_exact, expect_masked=False)
        self.assertEqual((opcode, struct.unpack("!H", payload[:2])[0]), (0x8, 1008), payload)
        # ... and one line says why, with the handle, user and client, never the token.
        ends = wait_until(lambda: self.ends_of(handle, path), 10, message="no expired line")
        self.assertEqual([(e["event"], e["reason"], e["user"], e["client"]) for e in ends],
                         [("expired", "idle", "kim", "127.0.0.1")])
        # Nothing is left to report it again: out of the schedule, key and index gone.
        self.assertIsNone(self.redis.cmd("ZSCORE", PREFIX + "expiries", session_key("", token) + ":" + handle))
        self.assertEqual(self.redis.cmd("EXISTS", session_key(PREFIX, token)), 0)
        self.assertEqual(self.list_user(gw, "kim"), [])
        self.assertEqual(len(self.ends_of(handle, path)), 1)
        self.assert_no_tokens(path, [token])
        self.assertEqual(metric_value(gw.admin_port, "sessiongate_sessions_expired_total", timeout="idle"), 1)

    def test_deleted_key_is_audited_as_evicted(self):
        gw, path = self.audited(idle_timeout="2s", absolute_timeout="1h")
        token, handle = self.signed_in(gw, "lea", "V")
        self.assertEqual(self.redis.cmd("DEL", session_key(PREFIX, token)), 1)
        self.assertEqual(self.list_user(gw, "lea"), [])
        ends = wait_until(lambda: self.ends_of(handle, path), 10, message="no evicted line")
        # The record went with the key: the handle is all that is known.
        self.assertEqual([(e["event"], e["reason"], e["user"]) for e in ends], [("evicted", "", "")])
        self.assertEqual(self.redis.cmd("ZCARD", PREFIX + "expiries"), 0)
        self.assert_no_tokens(path, [token])
        self.assertEqual(metric_value(gw.admin_port, "sessiongate_sessions_evicted_total"), 1)

    def test_two_instances_write_each_end_once(self):
        a, path_a = self.audited(audit_name="a.log", idle_timeout="2s", absolute_timeout="1h")
        b, path_b = self.audited(audit_name="b.log", idle_timeout="2s", absolute_timeout="1h")
        sessions = [self.signed_in(gw, f"u{i}", f"D{i}") for i, gw in enumerate((a, b) * 4)]
        handles = sorted(h for _, h in sessions)
        wait_until(lambda: len({e["session"] for e in self.lines(path_a, path_b)
                                if e["event"] == "expired"}) == len(handles), 15,
                   message="every session's expiry audited")
        wait_until(lambda: self.redis.cmd("ZCARD", PREFIX + "expiries") == 0, 10,
                   message="the schedule emptied")
        expired = sorted(e["session"] for e in self.lines(path_a, path_b) if e["event"] == "expired")
        self.assertEqual(expired, handles, "each session's expiry exactly once across instances")
        for p in (path_a, path_b):
            self.assert_no_tokens(p, [t for t, _ in sessions])


if __name__ == "__main__":
    unittest.main()
