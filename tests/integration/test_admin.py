"""The admin listener: /metrics in Prometheus text (checked by promtool, values asserted after known
traffic), /healthz, /readyz, /config, 404 elsewhere; /metrics on the main listener is the
application's. Readiness follows the upstream (active probe) and turns 503 while draining."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import ConnectionClosed, HttpClient, free_port, missing_tool, simple_get, start_upstream, wait_until
from ops_util import admin_gateway, metric, parse_metrics, reload, run_cli, scrape, write_config
from session_util import COOKIE


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        missing_tool("promtool not installed (Debian package prometheus)")
    return path


def token_of(resp) -> str:
    for v in resp.headers_all("Set-Cookie"):
        m = re.match(rf"\s*{COOKIE}=([^;]+)", v)
        if m:
            return m.group(1)
    raise AssertionError(f"no session cookie in {resp.headers}")


class Metrics(unittest.TestCase):
    def test_promtool_and_values_after_known_traffic(self):
        tool = promtool()
        up = start_upstream(self)
        gw, admin = admin_gateway(self, up.port, {"server": {"workers": 2}})
        # The harness's own /healthz probes (GET 2xx, answered locally) count too, possibly late
        # under load: they are taken from the access log, written just before the metrics.
        def probes():
            return sum(1 for e in gw.access_log_lines() if e.get("path") == "/healthz" and e.get("status") == 200)

        ok_sent, not_found_sent, post_sent = 7, 3, 2
        c = HttpClient(gw.port, self)
        first = c.roundtrip("GET", "/echo?first")
        self.assertEqual(first.status, 200, first)
        cookie = [("Cookie", f"{COOKIE}={token_of(first)}")]
        ok_bodies = len(first.body)
        for i in range(1, ok_sent):
            r = c.roundtrip("GET", f"/echo?i={i}", headers=cookie)
            self.assertEqual(r.status, 200, r)
            ok_bodies += len(r.body)
        for i in range(not_found_sent):
            self.assertEqual(c.roundtrip("GET", "/status/404", headers=cookie).status, 404)
        for i in range(post_sent):
            r = c.roundtrip("POST", "/upload", headers=cookie, body=b"x" * 1000)
            self.assertEqual(r.status, 200, r)

        # A refused upstream: point the gateway at a port nobody listens on.
        dead = free_port()
        write_config(gw, {"upstream": {"servers": [f"127.0.0.1:{dead}"]}})
        reload(gw, "applied")
        bad = simple_get(gw.port, "/echo?refused", headers=cookie)
        self.assertEqual(bad.status, 502, bad)
        c.close()

        def expected(extra):  # (name, labels, want)
            return [
                ("sessiongate_requests_total", {"method": "GET", "code": "2xx"}, ok_sent + extra),
                ("sessiongate_requests_total", {"method": "GET", "code": "4xx"}, not_found_sent),
                ("sessiongate_requests_total", {"method": "GET", "code": "5xx"}, 1),
                ("sessiongate_requests_total", {"method": "POST", "code": "2xx"}, post_sent),
                ("sessiongate_requests_total", {"method": "POST", "code": "4xx"}, 0),
                ("sessiongate_upstream_errors_total", {"kind": "connect_refused"}, 1),
                ("sessiongate_sessions_created_total", {}, 1),
                ("sessiongate_config_reloads_total", {"result": "ok"}, 1),
                ("sessiongate_config_reloads_total", {"result": "failed"}, 0),
                ("sessiongate_request_duration_seconds_count", {},
                 ok_sent + not_found_sent + post_sent + 1 + extra),
                ("sessiongate_received_bytes_total", {}, 1000 * post_sent),
            ]
        state = {"wrong": "not scraped yet"}

        def settled():  # a sample missing altogether fails at once (metric() raises)
            state["probes"] = probes()
            samples = parse_metrics(scrape(admin))
            state["wrong"] = [(n, l, metric(samples, n, **l), want) for n, l, want in expected(state["probes"])
                              if metric(samples, n, **l) != want]
            return samples if not state["wrong"] else None
        samples = wait_until(settled, 15.0, interval=0.05,
                             message=lambda: f"metrics (name, labels, got, want) as expected: {state['wrong']}")
        self.assertGreaterEqual(state["probes"], 1, "the harness's /healthz probe is not in the access log")
        self.assertEqual(metric(samples, "sessiongate_sessions_active"), 1)
        self.assertGreaterEqual(metric(samples, "sessiongate_sent_bytes_total"), ok_bodies)
        for kind in ("connect_timeout", "connect_other", "response_timeout", "closed_early", "bad_response"):
            self.assertEqual(metric(samples, "sessiongate_upstream_errors_total", kind=kind), 0, kind)
        self.assertEqual(metric(samples, "sessiongate_draining"), 0)
        self.assertGreaterEqual(metric(samples, "sessiongate_client_connections_accepted_total"), 2)

        text = scrape(admin)
        r = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, f"promtool check metrics: {r.stdout}{r.stderr}")
        for family in ("sessiongate_requests_total", "sessiongate_request_duration_seconds",
                       "sessiongate_upstream_connect_duration_seconds",
                       "sessiongate_upstream_response_duration_seconds", "sessiongate_upstream_errors_total",
                       "sessiongate_client_connections", "sessiongate_upstream_connections_idle",
                       "sessiongate_sessions_expired_total", "sessiongate_sessions_rotated_total",
                       "sessiongate_sessions_destroyed_total", "sessiongate_sessions_evicted_total",
                       "sessiongate_rejected_client_headers_total", "sessiongate_store_errors_total",
                       "sessiongate_store_records_rejected_total",
                       "sessiongate_access_denied_total", "sessiongate_csrf_refused_total",
                       "sessiongate_config_reloads_total"):
            self.assertRegex(text, rf"(?m)^# TYPE {family} ", f"metric family {family} missing")
        # Histogram buckets are cumulative and end in +Inf == _count.
        buckets = [(float("inf") if dict(k[1])["le"] == "+Inf" else float(dict(k[1])["le"]), v)
                   for k, v in parse_metrics(text).items() if k[0] == "sessiongate_request_duration_seconds_bucket"]
        buckets.sort()
        self.assertGreaterEqual(len(buckets), 2, "no histogram buckets for sessiongate_request_duration_seconds")
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts), "histogram buckets are not cumulative")
        self.assertEqual(buckets[-1][0], float("inf"))
        self.assertEqual(buckets[-1][1], metric(parse_metrics(text), "sessiongate_request_duration_seconds_count"))


class AdminEndpoints(unittest.TestCase):
    def test_healthz_config_404_and_main_listener_forwards_metrics(self):
        up = start_upstream(self)
        gw, admin = admin_gateway(self, up.port)
        h = simple_get(admin, "/healthz")
        self.assertEqual(h.status, 200, h)
        wait_until(lambda: simple_get(admin, "/readyz").status == 200, 15.0,
                   message="admin /readyz 200 with a live upstream")

        cfg = simple_get(admin, "/config")
        self.assertEqual(cfg.status, 200, cfg)
        text = cfg.body.decode()
        self.assertIn(f'"127.0.0.1:{gw.port}"', text)
        self.assertRegex(text, rf'(?m)^listen = \["127\.0\.0\.1:{gw.port}"\]')
        self.assertIn(f'"127.0.0.1:{admin}"', text)
        # The effective configuration is itself a valid file.
        d = tempfile.mkdtemp(prefix="sg-admin-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "effective.toml")
        with open(path, "w") as f:
            f.write(text)
        r = run_cli("--check", "--config", path)
        self.assertEqual(r.returncode, 0, f"/config output does not pass --check: {r.stdout}{r.stderr}")

        for target in ("/nope", "/metrics/extra", "/"):
            r = simple_get(admin, target)
            self.assertEqual(r.status, 404, f"admin {target}: {r}")

        # On the main listener /metrics and /config are ordinary paths of the application.
        n = len(up.requests)
        for target in ("/metrics", "/config"):
            r = simple_get(gw.port, target)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["path"], target, f"main {target} was not answered by the upstream")
            self.assertNotIn(b"sessiongate_requests_total", r.body)
        self.assertEqual(up.paths()[n:], ["/metrics", "/config"])


class Readiness(unittest.TestCase):
    def readyz(self, port: int):
        try:
            r = simple_get(port, "/readyz", timeout=2)
            return r.status, r.body.decode("utf-8", "replace")
        except (OSError, ConnectionClosed) as e:
            return None, f"{type(e).__name__}: {e}"

    def test_readiness_follows_the_upstream(self):
        up = start_upstream(self)
        port = up.port
        gw, admin = admin_gateway(self, port, {"upstream": {"health_interval": "200ms"}})
        wait_until(lambda: self.readyz(admin)[0] == 200, 15.0, message="admin /readyz 200")
        self.assertEqual(self.readyz(gw.port)[0], 200)
        self.assertEqual(metric(parse_metrics(scrape(admin)), "sessiongate_ready"), 1)

        up.stop()
        t0 = time.monotonic()
        wait_until(lambda: self.readyz(admin)[0] == 503, 15.0, interval=0.05,
                   message=lambda: f"admin /readyz 503 after the upstream stopped (last: {self.readyz(admin)})")
        went_down = time.monotonic() - t0
        status, body = self.readyz(admin)
        self.assertEqual(status, 503)
        self.assertIn("upstream", body.lower())
        self.assertEqual(body.count("\n"), 1, f"reason is not one line: {body!r}")
        main_status, main_body = self.readyz(gw.port)
        self.assertEqual(main_status, 503)
        self.assertIn("upstream", main_body.lower())
        self.assertEqual(metric(parse_metrics(scrape(admin)), "sessiongate_ready"), 0)
        self.assertEqual(simple_get(admin, "/healthz").status, 200, "/healthz must stay 200")

        from upstream import Upstream
        again = Upstream(port).start()
        self.addCleanup(again.stop)
        t1 = time.monotonic()
        wait_until(lambda: self.readyz(admin)[0] == 200, 15.0, interval=0.05,
                   message=lambda: f"admin /readyz 200 after the upstream restarted (last: {self.readyz(admin)})")
        came_back = time.monotonic() - t1
        self.assertEqual(self.readyz(gw.port)[0], 200)
        print(f"\n[readyz] 503 {went_down:.2f}s after the upstream stopped, 200 {came_back:.2f}s after it restarted")

    def test_health_path_probe_wants_2xx_or_3xx(self):
        up = start_upstream(self)
        gw, admin = admin_gateway(self, up.port, {"upstream": {"health_interval": "200ms",
                                                                "health_path": "/status/204"}})
        wait_until(lambda: self.readyz(admin)[0] == 200, 15.0, message="admin /readyz 200")
        wait_until(lambda: "/status/204" in up.paths(), 15.0, message="the probe GETting health_path")
        # A failing health path (500) makes the gateway unready although the port accepts.
        write_config(gw, {"upstream": {"health_path": "/status/500"}})
        reload(gw, "applied")
        wait_until(lambda: self.readyz(admin)[0] == 503, 15.0, interval=0.05,
                   message="admin /readyz 503 while health_path answers 500")
        self.assertIn("upstream", self.readyz(admin)[1].lower())

    def test_admin_readyz_answers_503_draining_during_drain(self):
        up = start_upstream(self)
        gw, admin = admin_gateway(self, up.port, {"server": {"drain_timeout": "20s"},
                                                  "upstream": {"health_interval": "200ms"}})
        wait_until(lambda: self.readyz(admin)[0] == 200, 15.0, message="admin /readyz 200")
        slow = HttpClient(gw.port, self)
        slow.request("GET", "/delay?ms=3000")  # still in flight when /readyz is asked
        up.wait_requests(1)
        gw.signal(signal.SIGTERM)
        wait_until(lambda: "draining" in gw.logs()[1], 15.0, message="the drain to begin")
        status, body = self.readyz(admin)
        self.assertTrue(gw.alive(), "the gateway exited before its in-flight request completed")
        self.assertEqual(status, 503, f"admin /readyz during drain answered {status}: {body!r}")
        self.assertIn("draining", body)
        r = slow.read_response()  # the in-flight request still finishes
        self.assertEqual(r.status, 200, r)
        slow.close()
        self.assertEqual(gw.stop(), 0)


if __name__ == "__main__":
    unittest.main()
