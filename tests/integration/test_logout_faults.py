"""A logout that really logs out when Redis does not confirm the DEL (issue 13 item 4), against a
real redis-server on loopback.

The fault: `ACL SETUSER default -del -unlink` on the test's own Redis makes every DEL (and UNLINK)
fail with a NOPERM error reply while reads and the other writes work, the way a failover's
READONLY refuses only writes: so the old token's session is still readable in Redis, and only the
gateway's refusal stands between it and the next request.

- logout answers 303 at once, Redis still holds the session key, and the old cookie is refused by
  this gateway (every worker: fresh connections) with a new session instead; the unconfirmed
  destroy is counted and pending; the warning names a digest prefix, never the token; the same
  for the application's `X-Session-Control: destroy`, and for a failover's READONLY (the instance
  made a replica of a master that is gone, then promoted back with REPLICAOF NO ONE);
- DEL allowed again: the background retry confirms within a deadline (key gone, pending 0);
- with store.redis.max_pending_destroys reached, a logout Redis does not confirm answers 503 with
  Retry-After and is counted;
- SIGTERM with a destroy still pending: one last attempt, the count logged, exit 0.

Every process runs on a free loopback port and is stopped at cleanup even when a test fails."""

import unittest

from harness import FREE_ADMIN_LISTEN, Gateway, free_port, wait_until
from ops_util import metric_value
from redis_util import RedisServer, require_tools, session_key
from session_util import EXPIRED_COOKIE_RE, SessionTestCase, header_values, prefixed, respond_target

PREFIX = "sglo:"
# Generous: the subject is an error reply, not a slow Redis; CI runs under ASan on a loaded machine.
TIMEOUT = "2s"
RETRY_DEADLINE_S = 20.0


class LogoutFaults(SessionTestCase):
    def setUp(self):
        require_tools("redis-server")
        super().setUp()
        self.redis = RedisServer(self)

    def logout_gateway(self, workers: int = 2, **redis_keys) -> Gateway:
        r = {"address": self.redis.address, "key_prefix": PREFIX, "timeout": TIMEOUT}
        r.update(redis_keys)
        gw = Gateway(self, self.up.port, {
            "server": {"workers": workers},
            "session": {"store": "redis", "logout_path": "/logout", "logout_redirect": "/bye"},
            "store.redis": r,
            "admin": {"listen": FREE_ADMIN_LISTEN},
        })
        wait_until(lambda: gw.logs()[1].count("redis store: connected to") >= workers, 10.0,
                   message=lambda: f"{workers} workers connected to Redis: {gw.logs()[1][-2000:]}")
        return gw

    # -- helpers ---------------------------------------------------------------------------------
    def deny_del(self):
        self.assertEqual(self.redis.cmd("ACL", "SETUSER", "default", "-del", "-unlink"), b"OK")

    def allow_del(self):
        self.assertEqual(self.redis.cmd("ACL", "SETUSER", "default", "+del", "+unlink"), b"OK")

    def key_exists(self, token) -> bool:
        return self.redis.cmd("EXISTS", session_key(PREFIX, token)) == 1

    def signed_in(self, gw, user="alice"):
        r = self.get(gw, respond_target(("X-Session-Set-User", user)))
        self.assertEqual(r.status, 200, r)
        token = self.issued_token(r)
        handle = self.handle_of(self.last_upstream_headers())
        r = self.get(gw, "/echo", token=token)
        self.assertEqual(self.handle_of(self.seen(r)), handle)
        self.assertEqual(header_values(self.seen(r), "X-Session-User"), [user])
        return token, handle

    def logout(self, gw, token):
        # A same-origin navigation: the logout CSRF guard (issue 13 item 10) lets it through.
        return self.get(gw, "/logout", token=token, headers=[("Sec-Fetch-Site", "same-origin")])

    def metric(self, gw, name) -> float:
        return metric_value(gw.admin_port, name)

    def assert_refused(self, gw, token, handle, where):
        """The old cookie gets a new, empty session: never the logged-out one."""
        r = self.get(gw, "/echo", token=token)
        self.assertEqual(r.status, 200, f"{where}: {r}")
        seen = self.seen(r)
        self.assertNotEqual(self.handle_of(seen), handle, f"{where}: the logged-out session was accepted")
        self.assertEqual([k for k, _ in prefixed(seen) if k.lower() != "x-session-id"], [], where)
        self.issued_token(r, not_in=[token])

    # -- tests -----------------------------------------------------------------------------------
    def test_unconfirmed_logout_refuses_the_token_and_retries_until_redis_confirms(self):
        gw = self.logout_gateway()
        token, handle = self.signed_in(gw)
        self.deny_del()

        r = self.logout(gw, token)
        self.assertEqual(r.status, 303, r)
        self.assertEqual(r.header("Location"), "/bye")
        self.assertRegex(self.our_set_cookies(r)[0], f"^{EXPIRED_COOKIE_RE.pattern}$")
        self.assertTrue(self.key_exists(token), "the fault did not hold: Redis deleted the session")

        # Fresh connections: both workers answer some of them; the refused set is process-wide.
        for i in range(6):
            self.assert_refused(gw, token, handle, f"request {i} after the logout")
        self.assertEqual(self.metric(gw, "sessiongate_session_destroy_unconfirmed_total"), 1)
        self.assertEqual(self.metric(gw, "sessiongate_session_destroys_pending"), 1)
        self.assertTrue(self.key_exists(token), "still there while DEL is refused")
        stderr = gw.logs()[1]
        digest = session_key("", token)
        self.assertIn(f"destroy of session key {digest[:12]}...", stderr)
        self.assertNotIn(token, stderr)
        self.assertNotIn(digest, stderr)  # a prefix only

        self.allow_del()
        wait_until(lambda: not self.key_exists(token), RETRY_DEADLINE_S,
                   message="the background retry deleted the session in Redis")
        wait_until(lambda: self.metric(gw, "sessiongate_session_destroys_pending") == 0, RETRY_DEADLINE_S,
                   message="pending back to 0")
        self.assertEqual(self.metric(gw, "sessiongate_session_destroy_retries_confirmed_total"), 1)
        self.assertEqual(self.metric(gw, "sessiongate_session_destroy_queue_full_total"), 0)
        self.assert_refused(gw, token, handle, "after the retry confirmed")
        self.assertNotIn(token, gw.logs()[1])

    def test_destroy_directive_redis_does_not_confirm_ends_the_session_here(self):
        gw = self.logout_gateway()
        token, handle = self.signed_in(gw)
        self.deny_del()
        r = self.get(gw, respond_target(("X-Session-Control", "destroy")), token=token)
        self.assertEqual(r.status, 200, r)
        self.assertRegex(self.our_set_cookies(r)[0], f"^{EXPIRED_COOKIE_RE.pattern}$")
        self.assertTrue(self.key_exists(token))
        for i in range(4):
            self.assert_refused(gw, token, handle, f"request {i} after the destroy directive")
        self.assertEqual(self.metric(gw, "sessiongate_session_destroy_unconfirmed_total"), 1)
        self.allow_del()
        wait_until(lambda: not self.key_exists(token), RETRY_DEADLINE_S,
                   message="the background retry deleted the session in Redis")

    def test_failover_readonly_logout_is_refused_here_until_the_new_master_confirms(self):
        # The instance turns into a replica of a master that is gone: reads still served (stale
        # data), every write answered READONLY, as on the old master after a failover.
        gw = self.logout_gateway()
        token, handle = self.signed_in(gw)
        self.assertEqual(self.redis.cmd("REPLICAOF", "127.0.0.1", str(free_port())), b"OK")
        r = self.logout(gw, token)
        self.assertEqual(r.status, 303, r)
        self.assertTrue(self.key_exists(token), "the replica deleted the session")
        # Refused without asking Redis; a new session cannot be written to a replica, so the
        # answer is 503 (fail_closed) or, between reconnects, a new session: never the old one.
        for i in range(4):
            r = self.get(gw, "/echo", token=token)
            if r.status == 200:
                self.assertNotEqual(self.handle_of(self.seen(r)), handle, f"request {i}")
            else:
                self.assertEqual(r.status, 503, r)
        self.assertEqual(self.metric(gw, "sessiongate_session_destroys_pending"), 1)
        self.assertEqual(self.redis.cmd("REPLICAOF", "NO", "ONE"), b"OK")
        wait_until(lambda: not self.key_exists(token), RETRY_DEADLINE_S,
                   message="the background retry deleted the session on the promoted instance")
        wait_until(lambda: self.metric(gw, "sessiongate_session_destroys_pending") == 0, RETRY_DEADLINE_S,
                   message="pending back to 0")
        self.assert_refused(gw, token, handle, "after the retry confirmed")

    def test_full_queue_answers_503_with_retry_after(self):
        gw = self.logout_gateway(max_pending_destroys=1)
        first, h1 = self.signed_in(gw, "alice")
        second, h2 = self.signed_in(gw, "bob")
        self.deny_del()

        r = self.logout(gw, first)
        self.assertEqual(r.status, 303, r)
        r = self.logout(gw, second)
        self.assertEqual(r.status, 503, f"a logout Redis did not confirm, with the queue full: {r}")
        self.assertEqual(r.header("Retry-After"), "1")
        self.assertEqual(self.our_set_cookies(r), [], "told to drop a cookie that still works")
        self.assertEqual(self.metric(gw, "sessiongate_session_destroy_queue_full_total"), 1)
        self.assertEqual(self.metric(gw, "sessiongate_session_destroy_unconfirmed_total"), 2)
        self.assertEqual(self.metric(gw, "sessiongate_session_destroys_pending"), 1)
        self.assert_refused(gw, first, h1, "the queued logout")

        # Redis confirms again: the client's retry of the logout succeeds.
        self.allow_del()
        r = self.logout(gw, second)
        self.assertEqual(r.status, 303, r)
        self.assertFalse(self.key_exists(second))
        self.assert_refused(gw, second, h2, "after the retried logout")

    def test_drain_tries_once_more_and_reports_what_remains(self):
        gw = self.logout_gateway(workers=1)
        token, _ = self.signed_in(gw)
        self.deny_del()
        self.assertEqual(self.logout(gw, token).status, 303)
        wait_until(lambda: self.metric(gw, "sessiongate_session_destroys_pending") == 1, 5.0)
        self.assertEqual(gw.stop(timeout=30.0), 0, gw.logs()[1][-2000:])  # SIGTERM, drain
        stderr = gw.logs()[1]
        self.assertIn("shutdown: 1 session destroy(s) still not confirmed", stderr)
        self.assertNotIn(token, stderr)
        self.assertTrue(self.key_exists(token))  # Redis still refused: nothing pretended otherwise


if __name__ == "__main__":
    unittest.main()
