"""Access log: one JSON line per request with method, path, status, bytes, duration; never the
session token."""

import json
import os
import re
import unittest

from harness import Gateway, HttpClient, start_upstream, wait_until


def field(entry: dict, prefix: str):
    """The value of the first key equal to or starting with `prefix` (e.g. duration_ms)."""
    for k, v in entry.items():
        if k == prefix or k.startswith(prefix):
            return v
    return None


class AccessLog(unittest.TestCase):
    def setUp(self):
        self.up = start_upstream(self)

    def make_requests(self, gw):
        c = HttpClient(gw.port, self)
        r1 = c.roundtrip("GET", "/echo?x=1")
        r2 = c.roundtrip("POST", "/upload", body=b"z" * 1000)
        r3 = c.roundtrip("GET", "/status/404")
        return [r1, r2, r3]

    @staticmethod
    def has_all_paths(entries):
        paths = {str(e.get("path", "")).split("?")[0] for e in entries if "method" in e}
        return entries if {"/echo", "/upload", "/status/404"} <= paths else None

    def check_entries(self, entries, responses):
        by_path = {}
        for e in entries:
            p = str(e.get("path", ""))
            by_path.setdefault(p.split("?")[0], e)
        for path, method, resp in (("/echo", "GET", responses[0]), ("/upload", "POST", responses[1]),
                                   ("/status/404", "GET", responses[2])):
            self.assertIn(path, by_path, f"no access log line for {path}: {entries}")
            e = by_path[path]
            self.assertEqual(e.get("method"), method, e)
            self.assertEqual(int(e.get("status")), resp.status, e)
            self.assertIsNotNone(field(e, "bytes"), f"no bytes field: {e}")
            self.assertIsNotNone(field(e, "duration"), f"no duration field: {e}")
            self.assertGreaterEqual(float(field(e, "duration")), 0)
        self.assertGreaterEqual(int(field(by_path["/echo"], "bytes")), 1)

    def test_json_access_log_on_stdout(self):
        gw = Gateway(self, self.up.port)
        responses = self.make_requests(gw)
        entries = wait_until(lambda: self.has_all_paths(gw.access_log_lines()), 15.0,
                             message=lambda: f"access log lines on stdout (is the log flushed?): "
                                             f"{gw.logs()[0][-2000:]!r}")
        self.check_entries(entries, responses)

    def test_access_log_to_a_file(self):
        up_port = self.up.port
        gw = Gateway(self, up_port, start=False)
        path = os.path.join(gw.dir, "access.log")
        gw.overrides = {"log": {"access": path}}
        gw.start()
        responses = self.make_requests(gw)

        def lines():
            try:
                with open(path) as f:
                    out = [json.loads(line) for line in f if line.strip().startswith("{")]
                return self.has_all_paths(out)
            except FileNotFoundError:
                return None
        entries = wait_until(lines, 15.0, message=f"the access log lines in {path}")
        self.check_entries(entries, responses)

    def test_access_log_off(self):
        gw = Gateway(self, self.up.port, {"log": {"access": "off"}})
        responses = self.make_requests(gw)
        self.assertEqual([r.status for r in responses], [200, 200, 404])
        # After the exit (0: no crash, no LeakSanitizer report), stdout holds no access line at
        # all: not one JSON object, whatever its keys.
        self.assertEqual(gw.stop(), 0, gw.logs()[1][-2000:])
        self.assertEqual(gw.access_log_lines(), [])

    def test_session_token_never_logged(self):
        gw = Gateway(self, self.up.port, {"log": {"level": "debug"}})
        c = HttpClient(gw.port, self)
        r = c.roundtrip("GET", "/echo")
        tokens = [m.group(1) for sc in r.headers_all("Set-Cookie")
                  for m in [re.match(r"\s*session_id=([^;]+)", sc)] if m]
        self.assertEqual(len(tokens), 1, f"one session cookie expected: {r.headers}")
        for t in tokens:
            again = c.roundtrip("GET", "/echo?again", headers=[("Cookie", f"session_id={t}")])
            self.assertEqual(again.status, 200, again)
            self.assertEqual(again.headers_all("Set-Cookie"), [], "the token was not taken as a session")
        wait_until(lambda: len([e for e in gw.access_log_lines() if "method" in e]) >= 2, 15.0,
                   message="two access log lines")
        self.assertEqual(gw.stop(), 0, gw.logs()[1][-2000:])  # a crash or leak report at exit fails
        out, err = gw.logs()
        for t in tokens:
            self.assertNotIn(t, out)
            self.assertNotIn(t, err)

    def test_rejected_head_logs_its_own_figures(self):
        # A keep-alive connection: a forwarded POST with a body, then a head the parser refuses.
        # The refused request's line carries nothing of the exchange before it: no body bytes,
        # no upstream time, no session.
        gw = Gateway(self, self.up.port)
        c = HttpClient(gw.port, self)
        first = c.roundtrip("POST", "/upload", body=b"z" * 1000)
        self.assertEqual(first.status, 200, first)
        c.send(b"GET /bad HTTP/1.1\r\nHost: x\r\nNo Colon Here\r\n\r\n")
        refused = c.read_response()
        self.assertEqual(refused.status, 400, refused)

        def both():
            # (Other lines, such as the harness's readiness probe, may come first.)
            lines = [e for e in gw.access_log_lines() if "method" in e]
            upload = [e for e in lines if e.get("path") == "/upload"]
            bad = [e for e in lines if e.get("path") == "/bad"]
            return (upload[0], bad[0]) if upload and bad else None
        upload, bad = wait_until(both, 15.0, message=lambda: f"the /upload and /bad lines: "
                                                             f"{gw.access_log_lines()}")
        self.assertEqual(int(bad["status"]), 400, bad)
        self.assertEqual(int(upload["bytes_received"]), 1000, upload)
        self.assertNotEqual(upload["session"], "", upload)
        self.assertEqual(int(bad["bytes_received"]), 0, bad)
        self.assertNotIn("upstream_ms", bad)
        self.assertEqual(bad["session"], "", bad)
        self.assertNotEqual(bad["request_id"], upload["request_id"], bad)


if __name__ == "__main__":
    unittest.main()
