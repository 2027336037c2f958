"""Records read back from the memory store's snapshot are untrusted (issue 13 item 6): a crafted
snapshot with a header injection in an attribute value, a creation time in the future and one at
INT64_MIN starts the gateway, is logged and counted, and none of those records ever reaches the
upstream. A genuine record in the same file is restored."""

import os
import shutil
import tempfile
import time
import unittest

from harness import wait_until
from ops_util import admin_gateway, metric_value
from session_util import SessionTestCase, header_values, random_token
from snapshot_util import session_record, snapshot

INT64_MIN = -(1 << 63)


class CraftedSnapshot(SessionTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="sg-snap-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "sessions.snap")

    def test_bad_records_are_skipped_counted_and_never_injected(self):
        now = int(time.time() * 1000)
        good, injected, future, ancient = (random_token() for _ in range(4))
        handles = {name: bytes([i + 1]) * 16 for i, name in enumerate(("good", "inj", "fut", "min"))}
        with open(self.path, "wb") as f:
            f.write(snapshot([
                session_record(good, handles["good"], now - 1000, now - 1000, [("user", "alice")]),
                session_record(injected, handles["inj"], now - 1000, now - 1000,
                               [("user", "x\r\nX-Injected: 1")]),
                session_record(future, handles["fut"], now + 86_400_000, now + 86_400_000,
                               [("user", "forever")]),
                session_record(ancient, handles["min"], INT64_MIN, now - 1000, [("user", "old")]),
            ]))
        os.chmod(self.path, 0o600)
        gw, admin = admin_gateway(self, self.up.port, {"store.memory": {"snapshot_path": self.path}})

        wait_until(lambda: "3 record(s) rejected" in gw.logs()[1], timeout=10,
                   message="the rejected records are not reported in the log")
        self.assertEqual(metric_value(admin, "sessiongate_store_records_rejected_total"), 3)

        r = self.get(gw, "/echo", token=good)  # the genuine record is restored
        seen = self.seen(r)
        self.assertEqual(self.handle_of(seen), handles["good"].hex())
        self.assertEqual(header_values(seen, "X-Session-User"), ["alice"])
        self.assert_no_set_cookie(r)

        for token, name in ((injected, "inj"), (future, "fut"), (ancient, "min")):
            r = self.get(gw, "/echo", token=token)
            seen = self.seen(r)
            self.assertNotEqual(self.handle_of(seen), handles[name].hex(), f"the {name} record was used")
            self.assertEqual(header_values(seen, "X-Session-User"), [], seen)
            self.issued_token(r, not_in=[token])  # an unknown token: a fresh session instead

        for req in self.up.requests:
            names = [h[0].lower() for h in req["headers"]]
            self.assertNotIn("x-injected", names, req["headers"])
            values = " ".join(h[1] for h in req["headers"])
            self.assertNotIn("forever", values)
            self.assertNotIn("old", [h[1] for h in req["headers"]])
        self.assertEqual(gw.stop(), 0, gw.logs()[1][-2000:])


if __name__ == "__main__":
    unittest.main()
