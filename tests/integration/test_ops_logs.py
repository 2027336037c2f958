"""Access log operations: combined format line shape, file target reopened on SIGUSR1 (logrotate),
X-Request-Id generated and passed upstream (equal to the log's request_id), a client's id replaced
unless the peer is a trusted proxy."""

import json
import os
import re
import signal
import unittest

from harness import Gateway, HttpClient, simple_get, start_upstream, wait_until
from session_util import COOKIE

HEX32 = re.compile(r"^[0-9a-f]{32}$")
COMBINED = re.compile(
    r'^(?P<client>\d+\.\d+\.\d+\.\d+) - (?P<session>[0-9a-f]{32}|-) '
    r'\[(?P<time>\d{2}/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] '
    r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/1\.[01]" (?P<status>\d{3}) (?P<bytes>\d+|-) '
    r'"(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$')


def upstream_ids(up, path: str) -> list[str]:
    for r in up.requests:
        if r["path"] == path:
            return [v for k, v in r["headers"] if k.lower() == "x-request-id"]
    raise AssertionError(f"the upstream never saw {path}: {up.paths()}")


def json_lines(path: str) -> list[dict]:
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


class CombinedFormat(unittest.TestCase):
    def test_combined_line_shape(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port, {"log": {"format": "combined"}})
        c = HttpClient(gw.port, self)
        r1 = c.roundtrip("GET", "/echo/combined?q=1",
                         headers=[("Referer", "http://app.test/from/page?code=s3cret#frag"),
                                  ("User-Agent", "test-agent/1.0 (x)")])
        self.assertEqual(r1.status, 200)
        handle = [v for k, v in r1.json()["headers"] if k.lower() == "x-session-id"][0]
        token = re.match(rf"{COOKIE}=([^;]+)", r1.header("Set-Cookie")).group(1)
        r2 = c.roundtrip("GET", "/status/404", headers=[("Cookie", f"{COOKIE}={token}")])
        self.assertEqual(r2.status, 404)
        r3 = c.roundtrip("POST", "/static/app.js", body=b"abc")
        self.assertEqual(r3.status, 200)

        def lines():
            out = [l for l in gw.logs()[0].splitlines() if l.strip()]
            return out if sum(1 for l in out if "/echo/combined" in l or "/status/404" in l
                              or "/static/app.js" in l) == 3 else None
        out = wait_until(lines, 5.0, message=lambda: f"3 combined lines on stdout: {gw.logs()[0][-1500:]!r}")
        parsed = {}
        for line in out:
            m = COMBINED.match(line)
            self.assertIsNotNone(m, f"not a combined log line: {line!r}")
            parsed[m.group("path")] = m.groupdict()
        e = parsed.get("/echo/combined")
        self.assertIsNotNone(e, f"no line for /echo/combined (the path, without the query): {out}")
        self.assertEqual((e["client"], e["session"], e["method"], e["status"]), ("127.0.0.1", handle, "GET", "200"))
        self.assertEqual(int(e["bytes"]), len(r1.body))
        self.assertNotIn("q=1", "\n".join(out), "the query string is logged in combined lines")
        self.assertEqual((e["referer"], e["agent"]), ("http://app.test/from/page", "test-agent/1.0 (x)"),
                         "Referer (without its query) and User-Agent, as in nginx's combined format")
        self.assertNotIn("s3cret", "\n".join(out), "the Referer's query string is logged")
        self.assertIn('"GET /echo/combined HTTP/1.1"', out[[i for i, l in enumerate(out) if "/echo/combined" in l][0]])
        e = parsed["/status/404"]
        self.assertEqual((e["session"], e["status"], e["referer"]), (handle, "404", "-"))
        e = parsed["/static/app.js"]
        self.assertEqual((e["session"], e["method"], e["status"]), ("-", "POST", "200"),
                         "an excluded path has no session")
        self.assertNotIn(token, gw.logs()[0] + gw.logs()[1])

    def test_combined_line_gives_the_request_version(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port, {"log": {"format": "combined"}})
        c = HttpClient(gw.port, self)
        c.sock.sendall(b"GET /echo/http10 HTTP/1.0\r\nHost: a\r\n\r\n")
        self.assertEqual(c.read_response().status, 200)
        line = wait_until(lambda: next((l for l in gw.logs()[0].splitlines() if "/echo/http10" in l), None),
                          5.0, message="the combined line for the HTTP/1.0 request")
        self.assertIn('"GET /echo/http10 HTTP/1.0" 200', line)


class FileTargetReopen(unittest.TestCase):
    def test_sigusr1_reopens_the_access_log_file(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port, start=False)
        path = os.path.join(gw.dir, "access.log")
        rotated = path + ".1"
        gw.overrides = {"log": {"access": path, "format": "json"}}
        gw.start()

        def logged(file, p):
            return [e for e in json_lines(file) if e.get("path") == p]
        self.assertEqual(simple_get(gw.port, "/echo/before-rotate").status, 200)
        wait_until(lambda: logged(path, "/echo/before-rotate"), 5.0, message="the first line in the file")
        os.rename(path, rotated)
        # Until SIGUSR1 the gateway keeps writing to the renamed file (same descriptor).
        self.assertEqual(simple_get(gw.port, "/echo/after-rename").status, 200)
        wait_until(lambda: logged(rotated, "/echo/after-rename"), 5.0,
                   message="a line written to the renamed file before SIGUSR1")
        self.assertFalse(os.path.exists(path))
        gw.signal(signal.SIGUSR1)
        wait_until(lambda: os.path.exists(path), 5.0, message="the access log file re-created on SIGUSR1")
        for i in range(5):
            self.assertEqual(simple_get(gw.port, f"/echo/after-reopen-{i}").status, 200)
        wait_until(lambda: all(logged(path, f"/echo/after-reopen-{i}") for i in range(5)), 5.0,
                   message=lambda: f"new lines in the new file; new: {json_lines(path)}")
        old = json_lines(rotated)
        self.assertEqual([e for e in old if str(e.get("path", "")).startswith("/echo/after-reopen")], [],
                         "lines after SIGUSR1 went to the rotated file")
        self.assertEqual(len(logged(path, "/echo/before-rotate")), 0)
        self.assertTrue(gw.alive())
        # A second rotation works too (the retired descriptor is handled).
        os.rename(path, path + ".2")
        gw.signal(signal.SIGUSR1)
        wait_until(lambda: os.path.exists(path), 5.0, message="the file re-created on a second SIGUSR1")
        self.assertEqual(simple_get(gw.port, "/echo/second-reopen").status, 200)
        wait_until(lambda: logged(path, "/echo/second-reopen"), 5.0, message="a line after the second reopen")
        self.assertEqual(gw.stop(), 0)


class RequestId(unittest.TestCase):
    def log_entry(self, gw, path: str) -> dict:
        def find():
            return [e for e in gw.access_log_lines() if e.get("path") == path]
        entries = wait_until(find, 5.0, message=f"an access log line for {path}")
        self.assertEqual(len(entries), 1, entries)
        return entries[0]

    def test_generated_id_reaches_upstream_and_the_log(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port)
        c = HttpClient(gw.port, self)
        seen = []
        for i in range(3):
            p = f"/echo/rid-{i}"
            self.assertEqual(c.roundtrip("GET", p).status, 200)
            ids = upstream_ids(up, p)
            self.assertEqual(len(ids), 1, f"upstream saw X-Request-Id {ids}")
            self.assertRegex(ids[0], HEX32)
            self.assertEqual(self.log_entry(gw, p).get("request_id"), ids[0])
            seen.append(ids[0])
        self.assertEqual(len(set(seen)), 3, f"request ids repeat: {seen}")
        entry = self.log_entry(gw, "/echo/rid-0")
        for key in ("time", "request_id", "client", "method", "path", "status", "bytes_sent",
                    "bytes_received", "duration_ms", "upstream_ms", "session", "session_event"):
            self.assertIn(key, entry, f"JSON access log line lacks {key}: {entry}")

    def test_client_id_replaced_for_an_untrusted_peer(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port)
        sent = "client-trace-0001"
        r = simple_get(gw.port, "/echo/untrusted", headers=[("X-Request-Id", sent)])
        self.assertEqual(r.status, 200)
        ids = upstream_ids(up, "/echo/untrusted")
        self.assertEqual(len(ids), 1, f"upstream saw X-Request-Id {ids}")
        self.assertNotEqual(ids[0], sent, "an untrusted client's X-Request-Id reached the upstream")
        self.assertRegex(ids[0], HEX32)
        self.assertEqual(self.log_entry(gw, "/echo/untrusted").get("request_id"), ids[0])
        self.assertNotIn(sent, gw.logs()[0])

    def test_client_id_kept_for_a_trusted_proxy(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port, {"server": {"trusted_proxies": ["127.0.0.1/32"]}})
        sent = "client-trace-0002"
        r = simple_get(gw.port, "/echo/trusted", headers=[("X-Request-Id", sent)])
        self.assertEqual(r.status, 200)
        self.assertEqual(upstream_ids(up, "/echo/trusted"), [sent])
        self.assertEqual(self.log_entry(gw, "/echo/trusted").get("request_id"), sent)
        # Without one, a trusted peer's request still gets a generated id.
        self.assertEqual(simple_get(gw.port, "/echo/trusted-none").status, 200)
        ids = upstream_ids(up, "/echo/trusted-none")
        self.assertEqual(len(ids), 1)
        self.assertRegex(ids[0], HEX32)


if __name__ == "__main__":
    unittest.main()
