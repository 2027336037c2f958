"""A flood of new visitors logs nobody out (issue 13 item 5): with store.memory.max_sessions = 100,
a signed-in user survives 1,000 cookie-less requests, and the metrics show that only sessions that
never came back were evicted."""

import unittest

from harness import HttpClient
from ops_util import admin_gateway, metric, parse_metrics, scrape
from session_util import SessionTestCase, header_values, respond_target

MAX_SESSIONS = 100
FLOOD = 10 * MAX_SESSIONS


class EvictionFlood(SessionTestCase):
    def test_signed_in_user_survives_ten_times_max_sessions_new_visitors(self):
        gw, admin = admin_gateway(self, self.up.port, {"store.memory": {"max_sessions": MAX_SESSIONS}})
        token, handle = self.new_session(gw)
        self.get(gw, respond_target(("X-Session-Set-User", "alice")), token=token)
        # A second visitor who came back once without attributes: protected as well.
        returning, returning_handle = self.new_session(gw)
        self.assertEqual(self.handle_of(self.seen(self.get(gw, "/echo", token=returning))),
                         returning_handle)

        client = HttpClient(gw.port, self)  # one keep-alive connection: the flood is fast
        for i in range(FLOOD):
            r = client.roundtrip("GET", f"/echo?visitor={i}")
            self.assertEqual(r.status, 200)
            self.assertEqual(len(self.our_set_cookies(r)), 1, "each new visitor gets a session")
        client.close()

        r = self.get(gw, "/echo", token=token)
        seen = self.seen(r)
        self.assertEqual(self.handle_of(seen), handle, "the signed-in user was logged out")
        self.assertEqual(header_values(seen, "X-Session-User"), ["alice"])
        self.assertEqual(self.handle_of(self.seen(self.get(gw, "/echo", token=returning))),
                         returning_handle, "the returning visitor was logged out")

        samples = parse_metrics(scrape(admin))
        self.assertEqual(metric(samples, "sessiongate_sessions_evicted_protected_total"), 0)
        # 1,002 sessions created into room for 100: at least 900 evictions, all of probation.
        self.assertGreaterEqual(metric(samples, "sessiongate_sessions_evicted_total"), FLOOD - MAX_SESSIONS)
        self.assertLessEqual(metric(samples, "sessiongate_sessions_active"), MAX_SESSIONS)
        self.assertEqual(gw.stop(), 0, gw.logs()[1][-2000:])

    def test_evicting_signed_in_users_is_counted_and_warned_once_per_burst(self):
        gw, admin = admin_gateway(self, self.up.port, {"store.memory": {"max_sessions": 3}})
        users = []
        for i in range(6):  # each sign-in beyond the third pushes out an earlier signed-in user
            token, handle = self.new_session(gw)
            self.get(gw, respond_target(("X-Session-Set-User", f"user{i}")), token=token)
            users.append((token, handle))
        samples = parse_metrics(scrape(admin))
        self.assertEqual(metric(samples, "sessiongate_sessions_evicted_protected_total"), 3)
        self.assertEqual(metric(samples, "sessiongate_sessions_evicted_total"), 3)
        warnings = [line for line in gw.logs()[1].splitlines()
                    if " warn " in line and "raise store.memory.max_sessions" in line]
        self.assertEqual(len(warnings), 1, gw.logs()[1][-2000:])
        for token, _ in users:  # the warning names no token
            self.assertNotIn(token, gw.logs()[1])
        r = self.get(gw, "/echo", token=users[-1][0])
        self.assertEqual(self.handle_of(self.seen(r)), users[-1][1])
        self.assertEqual(gw.stop(), 0, gw.logs()[1][-2000:])


if __name__ == "__main__":
    unittest.main()
