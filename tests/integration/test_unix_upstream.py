"""Unix-domain upstream servers (issue 17 item 5): `servers = ["unix:/path"]` is pooled like TCP,
health-probed, mixed with TCP servers in one round robin, and a missing socket file is a 502."""

import os
import shutil
import tempfile
import unittest

from harness import FREE_ADMIN_LISTEN, Gateway, HttpClient, simple_get, start_upstream, wait_until
from ops_util import metric_value, run_cli
from session_util import COOKIE, HANDLE_RE, TOKEN_RE, header_values
from upstream import Upstream


class UnixUpstreamTestCase(unittest.TestCase):
    def setUp(self):
        # A short directory under /tmp: sun_path holds at most 107 bytes.
        self.dir = tempfile.mkdtemp(prefix="sg-unix-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "app.sock")

    def unix_upstream(self, path: str | None = None) -> Upstream:
        up = Upstream(unix_path=path or self.path).start()
        self.addCleanup(up.stop)
        return up

    def gateway(self, servers: list[str], upstream: dict | None = None, **sections) -> Gateway:
        ov = {"upstream": {"servers": servers, **(upstream or {})}, **sections}
        return Gateway(self, 0, ov)

    def readyz(self, gw: Gateway):
        try:
            return simple_get(gw.port, "/readyz", timeout=2).status
        except OSError:
            return None


class UnixUpstream(UnixUpstreamTestCase):
    def test_requests_pass_with_session_headers_on_reused_connections(self):
        up = self.unix_upstream()
        gw = self.gateway([f"unix:{self.path}"])
        c = HttpClient(gw.port, self)
        first = c.roundtrip("GET", "/echo")
        self.assertEqual(first.status, 200, first)
        cookies = [v for v in first.headers_all("Set-Cookie") if v.startswith(COOKIE + "=")]
        self.assertEqual(len(cookies), 1, first.headers)
        token = cookies[0].split(";")[0].split("=", 1)[1]
        self.assertRegex(token, rf"^{TOKEN_RE.pattern}$")
        seen = [tuple(h) for h in first.json()["headers"]]
        handles = header_values(seen, "X-Session-Id")
        self.assertEqual(len(handles), 1, seen)
        self.assertRegex(handles[0], rf"^{HANDLE_RE.pattern}$")
        # The client's address, as over TCP: the upstream side has none to report.
        self.assertEqual(header_values(seen, "X-Forwarded-For"), ["127.0.0.1"])

        requests = 20
        for i in range(requests - 1):
            r = c.roundtrip("GET", f"/echo?i={i}", headers=[("Cookie", f"{COOKIE}={token}")])
            self.assertEqual(r.status, 200, r)
            again = header_values([tuple(h) for h in r.json()["headers"]], "X-Session-Id")
            self.assertEqual(again, handles, "the returning session lost its handle")
        self.assertEqual(len(up.requests), requests)
        # Keep-alive pooling: one client in sequence needs one upstream connection, not twenty.
        self.assertLess(up.connections, requests)
        self.assertLessEqual(up.connections, 2, f"{up.connections} connections for {requests} requests")
        access = [line for line in gw.access_log_lines() if line.get("path", "").startswith("/echo")]
        self.assertEqual(len(access), requests)
        self.assertTrue(all(line["client"] == "127.0.0.1" for line in access), access[:2])

    def test_a_missing_socket_file_is_a_502_and_logs_the_path(self):
        missing = os.path.join(self.dir, "nothing.sock")
        gw = self.gateway([f"unix:{missing}"], admin={"listen": FREE_ADMIN_LISTEN})
        r = simple_get(gw.port, "/echo")
        self.assertEqual(r.status, 502, r)
        # No socket file is nothing listening there: counted (and backed off) as a refusal.
        self.assertEqual(metric_value(gw.admin_port, "sessiongate_upstream_errors_total",
                                      kind="connect_refused"), 1)
        wait_until(lambda: missing in "".join(gw.logs()), 10.0,
                   message="the connect failure is logged with the socket path")
        # The file appears (the application started): the next request goes through.
        up = self.unix_upstream(missing)
        wait_until(lambda: simple_get(gw.port, "/echo").status == 200, 15.0, interval=0.1,
                   message="requests pass once the socket exists")
        self.assertGreaterEqual(len(up.requests), 1)

    def test_tcp_and_unix_servers_share_the_round_robin(self):
        unix_up = self.unix_upstream()
        tcp_up = start_upstream(self)
        gw = self.gateway([f"127.0.0.1:{tcp_up.port}", f"unix:{self.path}"])
        for i in range(10):
            r = simple_get(gw.port, f"/echo?i={i}")
            self.assertEqual(r.status, 200, r)
        self.assertGreaterEqual(len(unix_up.requests), 3, "the unix: server got (almost) nothing")
        self.assertGreaterEqual(len(tcp_up.requests), 3, "the TCP server got (almost) nothing")
        self.assertEqual(len(unix_up.requests) + len(tcp_up.requests), 10)

    def test_readiness_follows_the_unix_socket(self):
        up = self.unix_upstream()
        gw = self.gateway([f"unix:{self.path}"],
                          {"health_interval": "200ms", "health_path": "/app-health"})
        wait_until(lambda: self.readyz(gw) == 200, 15.0, interval=0.05,
                   message="/readyz 200 with the unix: upstream listening")
        probes = [r for r in up.requests if r["path"] == "/app-health"]
        self.assertTrue(probes, "the health probe never reached the unix: upstream")
        # A socket path is no host name: the probe asks as localhost.
        self.assertEqual(header_values([tuple(h) for h in probes[0]["headers"]], "Host"), ["localhost"])

        up.stop()  # closes the listener and removes the socket file
        self.assertFalse(os.path.exists(self.path))
        wait_until(lambda: self.readyz(gw) == 503, 15.0, interval=0.05,
                   message="/readyz 503 once the socket is gone")

        self.unix_upstream()
        wait_until(lambda: self.readyz(gw) == 200, 15.0, interval=0.05,
                   message="/readyz 200 again once the socket is back")


class UnixUpstreamConfig(UnixUpstreamTestCase):
    def write_config(self, upstream: str) -> str:
        path = os.path.join(self.dir, "gateway.toml")
        with open(path, "w") as f:
            f.write(f"[upstream]\n{upstream}\n")
        return path

    def test_print_config_shows_the_unix_server(self):
        source = self.write_config(f'servers = ["127.0.0.1:9000", "unix:{self.path}"]')
        r = run_cli("--print-config", "--config", source)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f'servers = ["127.0.0.1:9000", "unix:{self.path}"]', r.stdout)

    def test_tls_with_a_unix_server_fails_the_check_at_the_server(self):
        source = self.write_config(f'tls = true\nservers = ["unix:{self.path}"]')
        r = run_cli("--check", "--config", source)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"{source}:3:12: upstream.servers:", r.stdout + r.stderr)
        self.assertIn("Unix socket", r.stdout + r.stderr)

    def test_a_relative_or_too_long_path_fails_the_check(self):
        for server in ("unix:app.sock", "unix:/" + "a" * 107):
            with self.subTest(server=server):
                source = self.write_config(f'servers = ["{server}"]')
                r = run_cli("--check", "--config", source)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(f"{source}:2:12: upstream.servers: expected", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
