"""SIGHUP reload without dropping anything: 20 reloads (10 valid, 10 broken) under steady keep-alive
and new-connection traffic with one session; listeners added and removed by reload."""

import re
import socket
import threading
import time
import unittest

from harness import ConnectionClosed, Gateway, HttpClient, free_port, simple_get, start_upstream, wait_until
from ops_util import admin_gateway, config_text, metric, parse_metrics, reload, scrape, write_config, write_raw
from session_util import COOKIE, HANDLE_RE, TOKEN_RE

RELOADS = 20


def session_of(resp):
    """(token from our Set-Cookie or None, handle the upstream saw) of an /echo response."""
    token = None
    for v in resp.headers_all("Set-Cookie"):
        m = re.match(rf"\s*{COOKIE}=([^;]*)", v)
        if m:
            token = m.group(1)
    handles = [v for k, v in resp.json()["headers"] if k.lower() == "x-session-id"]
    return token, handles


class Traffic:
    """Two client threads with one session cookie: one keep-alive connection, and one fresh
    connection per request. Every failure (status, reset, new token, other handle) is recorded."""

    def __init__(self, port: int, token: str, handle: str):
        self.port, self.token, self.handle = port, token, handle
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.done = {"keepalive": 0, "fresh": 0}
        self.reconnects = 0
        self.threads = [threading.Thread(target=self._keepalive, daemon=True),
                        threading.Thread(target=self._fresh, daemon=True)]

    def total(self) -> int:
        with self.lock:
            return self.done["keepalive"] + self.done["fresh"]

    def count(self, kind: str) -> int:
        with self.lock:
            return self.done[kind]

    def _check(self, kind: str, i: int, resp) -> None:
        problem = None
        if resp.status != 200:
            problem = f"status {resp.status}"
        else:
            token, handles = session_of(resp)
            if token is not None and token != self.token:
                problem = "the gateway issued a new token (session lost)"
            elif handles != [self.handle]:
                problem = f"upstream saw X-Session-Id {handles}, expected [{self.handle}]"
        with self.lock:
            if problem:
                self.errors.append(f"{kind} request {i}: {problem}: {resp!r}"[:600])
            self.done[kind] += 1

    def _fail(self, kind: str, i: int, e: Exception) -> None:
        with self.lock:
            self.errors.append(f"{kind} request {i}: {type(e).__name__}: {e}")

    def _keepalive(self) -> None:
        c = None
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                if c is None:
                    c = HttpClient(self.port, timeout=10)
                c.request("GET", f"/echo?ka={i}", headers=[("Cookie", f"{COOKIE}={self.token}")])
                resp = c.read_response()
                self._check("keepalive", i, resp)
                if "close" in resp.tokens("Connection"):
                    # The gateway may end a keep-alive connection after a response it marks so;
                    # that is not a failure, but it must be rare here.
                    c.close()
                    c = None
                    with self.lock:
                        self.reconnects += 1
            except (OSError, ConnectionClosed, AssertionError, ValueError) as e:
                self._fail("keepalive", i, e)
                if c is not None:
                    c.close()
                c = None
        if c is not None:
            c.close()

    def _fresh(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                resp = simple_get(self.port, f"/echo?fresh={i}", timeout=10,
                                  headers=[("Cookie", f"{COOKIE}={self.token}")])
                self._check("fresh", i, resp)
            except (OSError, ConnectionClosed, AssertionError, ValueError) as e:
                self._fail("fresh", i, e)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=20)


class ReloadUnderLoad(unittest.TestCase):
    def test_twenty_reloads_under_traffic_drop_nothing(self):
        up = start_upstream(self)
        gw, admin = admin_gateway(self, up.port, {"server": {"workers": 2}, "log": {"access": "off"}})
        first = simple_get(gw.port, "/echo?first")
        self.assertEqual(first.status, 200, first)
        token, handles = session_of(first)
        self.assertIsNotNone(token, f"no session cookie issued: {first.headers}")
        self.assertRegex(token, rf"^{TOKEN_RE.pattern}$")
        self.assertEqual(len(handles), 1)
        handle = handles[0]
        self.assertRegex(handle, rf"^{HANDLE_RE.pattern}$")

        good_text = config_text(gw)
        valid_changes = [
            {"upstream": {"response_timeout": "7s"}, "session": {"exclude": ["/static/*", "/assets/*"]}},
            {"upstream": {"response_timeout": "5s"}, "session": {"exclude": ["/static/*"]}},
        ]
        broken_files = [
            good_text + "\n[upstream\nservers = [\n",                               # syntax error
            good_text.replace("[upstream]\n", "[upstream]\nrespnse_timeout = \"9s\"\n"),  # unknown key
        ]
        self.assertIn("respnse_timeout", broken_files[1])

        traffic = Traffic(gw.port, token, handle).start()
        self.addCleanup(traffic.finish)
        last_valid = None
        try:
            wait_until(lambda: traffic.count("keepalive") >= 5 and traffic.count("fresh") >= 5, 10.0,
                       message="traffic to start")
            for i in range(RELOADS):
                # Reloads interleave with traffic: each one waits for both clients to progress.
                ka, fr = traffic.count("keepalive"), traffic.count("fresh")
                wait_until(lambda: traffic.count("keepalive") >= ka + 3 and traffic.count("fresh") >= fr + 3,
                           10.0, message=f"traffic to progress before reload {i}")
                if i % 2 == 0:
                    last_valid = valid_changes[(i // 2) % 2]
                    write_config(gw, last_valid)
                    reload(gw, "applied")
                else:
                    write_raw(gw, broken_files[(i // 2) % 2])
                    reload(gw, "failed")
            ka, fr = traffic.count("keepalive"), traffic.count("fresh")
            wait_until(lambda: traffic.count("keepalive") >= ka + 5 and traffic.count("fresh") >= fr + 5,
                       10.0, message="traffic to progress after the last reload")
        finally:
            traffic.finish()
        write_config(gw, last_valid)  # leave a loadable file behind

        print(f"\n[reload] {RELOADS} reloads; {traffic.done} requests; "
              f"{traffic.reconnects} keep-alive reconnects after Connection: close")
        self.assertEqual(traffic.errors, [], f"{len(traffic.errors)} failed request(s) during reloads")
        self.assertEqual(traffic.reconnects, 0, "the gateway closed the keep-alive connection during reloads")
        self.assertGreater(traffic.count("keepalive"), RELOADS * 3)
        self.assertGreater(traffic.count("fresh"), RELOADS * 3)

        # The session survived: same handle, no new token, on a fresh connection after all reloads.
        r = simple_get(gw.port, "/echo?after", headers=[("Cookie", f"{COOKIE}={token}")])
        t2, h2 = session_of(r)
        self.assertIn(t2, (None, token))
        self.assertEqual(h2, [handle])

        samples = parse_metrics(scrape(admin))
        self.assertEqual(metric(samples, "sessiongate_config_reloads_total", result="ok"), RELOADS // 2)
        self.assertEqual(metric(samples, "sessiongate_config_reloads_total", result="failed"), RELOADS // 2)
        self.assertEqual(metric(samples, "sessiongate_sessions_created_total"), 1)

        # The last valid change is the running configuration.
        cfg = simple_get(admin, "/config").body.decode()
        self.assertRegex(cfg, r'response_timeout\s*=\s*"5s"')
        self.assertNotIn("/assets/*", cfg)
        _, err = gw.logs()
        self.assertIn("respnse_timeout", err, "the unknown key of a broken reload was not logged")


def connect_refused(port: int) -> bool:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    s.close()
    return False


class ListenersByReload(unittest.TestCase):
    def serves(self, port: int) -> bool:
        try:
            return simple_get(port, "/echo?probe", timeout=2).status == 200
        except (OSError, ConnectionClosed):
            return False

    def test_added_listener_serves_and_removed_one_refuses(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port, {"server": {"workers": 2}})
        a = f"127.0.0.1:{gw.port}"
        kept = HttpClient(gw.port, self)
        self.assertEqual(kept.roundtrip("GET", "/echo?before").status, 200)

        second = free_port()
        b = f"127.0.0.1:{second}"
        write_config(gw, {"server": {"listen": [a, b]}})
        reload(gw, "applied")
        wait_until(lambda: self.serves(second), 5.0, message=f"the added listener {b} to serve")
        # Every worker serves it: several fresh connections all succeed.
        for i in range(10):
            self.assertEqual(simple_get(second, f"/echo?b={i}").status, 200)
        self.assertEqual(kept.roundtrip("GET", "/echo?during").status, 200)

        write_config(gw, {"server": {"listen": [a]}})
        reload(gw, "applied")
        wait_until(lambda: connect_refused(second), 5.0, message=f"connections to the removed {b} refused")
        for i in range(10):
            self.assertTrue(connect_refused(second), f"{b} accepted a connection after its removal")
        self.assertTrue(self.serves(gw.port), f"the kept listener {a} stopped serving")
        r = kept.roundtrip("GET", "/echo?after")
        self.assertEqual(r.status, 200, "the already-open keep-alive connection on the kept listener broke")
        self.assertEqual(r.json()["target"], "/echo?after")
        kept.close()


if __name__ == "__main__":
    unittest.main()
