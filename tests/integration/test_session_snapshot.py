"""Memory-store snapshot (issue 3): sessions survive a restart; the file is 0600, holds token hashes
and never tokens; a damaged file is reported and start-up goes on."""

import hashlib
import os
import shutil
import signal
import stat
import tempfile
import time
import unittest

from harness import Gateway, wait_until
from session_util import SessionTestCase, respond_target


class Snapshot(SessionTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="sg-snap-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "sessions.snap")

    def start(self, **store) -> Gateway:
        return Gateway(self, self.up.port, {"store.memory": {"snapshot_path": self.path, **store}})

    def read_snapshot(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def stop(self, gw: Gateway):
        self.assertEqual(gw.stop(), 0, gw.logs()[1][-2000:])

    def test_sessions_survive_restart(self):
        gw = self.start()
        ta, ha = self.new_session(gw)
        self.get(gw, respond_target(("X-Session-Set-User", "alice"), ("X-Session-Set-Tenant", "t1")), token=ta)
        tb, hb = self.new_session(gw)  # rotated before the restart: only the new token survives
        r = self.get(gw, respond_target(("X-Session-Control", "rotate")), token=tb)
        tb2 = self.issued_token(r, not_in=[tb])
        tc, hc = self.new_session(gw)  # destroyed before the restart: stays dead
        self.get(gw, respond_target(("X-Session-Control", "destroy")), token=tc)
        self.stop(gw)

        st = os.stat(self.path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, oct(st.st_mode))
        self.assertEqual(sorted(os.listdir(self.dir)), ["sessions.snap"], "temporary files left behind")
        data = self.read_snapshot()
        self.assertTrue(data.startswith(b"SGSNAP\r\n"), data[:16])
        for t in (ta, tb, tb2, tc):
            self.assertNotIn(t.encode(), data, "a token is in the snapshot")
        self.assertIn(hashlib.sha256(ta.encode()).digest(), data, "the snapshot is not keyed by sha256(token)")

        gw2 = self.start()
        r = self.get(gw2, "/echo", token=ta)
        seen = self.seen(r)
        self.assertEqual(self.handle_of(seen), ha)
        self.assertEqual([v for k, v in seen if k == "X-Session-User"], ["alice"])
        self.assertEqual([v for k, v in seen if k == "X-Session-Tenant"], ["t1"])
        self.assert_no_set_cookie(r)
        r = self.get(gw2, "/echo", token=tb2)
        self.assertEqual(self.handle_of(self.seen(r)), hb)
        self.assert_no_set_cookie(r)
        for dead, handle in ((tb, hb), (tc, hc)):
            r = self.get(gw2, "/echo", token=dead)
            self.issued_token(r, not_in=[dead])
            self.assertNotEqual(self.handle_of(self.seen(r)), handle)
        self.assertRegex(gw2.logs()[1], r"2 session\(s\) loaded")

    def test_periodic_snapshot_survives_sigkill(self):
        gw = self.start(snapshot_interval="1s")
        ta, ha = self.new_session(gw)
        self.get(gw, respond_target(("X-Session-Set-User", "bob")), token=ta)
        want = hashlib.sha256(ta.encode()).digest()

        def written():
            try:
                with open(self.path, "rb") as f:
                    return want in f.read()
            except FileNotFoundError:
                return False
        wait_until(written, 5.0, interval=0.05, message="a periodic snapshot with the session")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        gw.proc.send_signal(signal.SIGKILL)  # no drain, no final snapshot
        gw.proc.wait(timeout=10)
        gw.stopped = True
        gw2 = self.start()
        seen = self.seen(self.get(gw2, "/echo", token=ta))
        self.assertEqual(self.handle_of(seen), ha)
        self.assertEqual([v for k, v in seen if k == "X-Session-User"], ["bob"])

    def test_corrupt_snapshot_is_reported_and_startup_continues(self):
        with open(self.path, "wb") as f:
            f.write(b"this is not a snapshot\x00\xff" * 100)
        os.chmod(self.path, 0o644)
        gw = self.start()
        token, handle = self.new_session(gw)
        r = self.get(gw, "/echo", token=token)
        self.assertEqual(self.handle_of(self.seen(r)), handle)
        self.assertRegex(gw.logs()[1], r"(?i)error.*snapshot|snapshot.*(corrupt|bad|invalid|damaged)")
        self.stop(gw)
        # The drain replaced the garbage with a good 0600 snapshot holding the new session.
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        gw2 = self.start()
        self.assertEqual(self.handle_of(self.seen(self.get(gw2, "/echo", token=token))), handle)
        self.assertNotRegex(gw2.logs()[1], r"(?i)error")

    def test_truncated_snapshot_keeps_the_sessions_before_the_damage(self):
        gw = self.start()
        sessions = [self.new_session(gw) for _ in range(3)]
        self.stop(gw)
        data = self.read_snapshot()
        with open(self.path, "wb") as f:
            f.write(data[:-5])  # cuts into the end record only
        gw2 = self.start()
        for token, handle in sessions:
            self.assertEqual(self.handle_of(self.seen(self.get(gw2, "/echo", token=token))), handle)
        self.assertRegex(gw2.logs()[1], r"(?i)error.*snapshot")

    def test_expired_sessions_not_restored(self):
        gw = Gateway(self, self.up.port, {"store.memory": {"snapshot_path": self.path},
                                          "session": {"idle_timeout": "1s"}})
        token, handle = self.new_session(gw)
        self.stop(gw)
        time.sleep(1.3)  # the idle timeout must elapse while the gateway is down
        gw2 = Gateway(self, self.up.port, {"store.memory": {"snapshot_path": self.path},
                                           "session": {"idle_timeout": "1s"}})
        r = self.get(gw2, "/echo", token=token)
        self.issued_token(r, not_in=[token])
        self.assertNotEqual(self.handle_of(self.seen(r)), handle)


if __name__ == "__main__":
    unittest.main()
