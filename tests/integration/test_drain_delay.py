"""server.drain_delay (issue 17 item 6): after SIGTERM the gateway goes on accepting and serving
while /readyz answers 503, so that a load balancer which does NOT retry (HAProxy `retries 0`, no
redispatch) takes it out on its health checks before it stops accepting: no request is lost."""

import signal
import threading
import time
import unittest

from harness import ConnectionClosed, Gateway, HttpClient, simple_get, start_upstream, wait_until
from redis_util import HAProxy, require_tools

INTER_MS, FALL = 200, 2  # HAProxy takes a server out after FALL failed checks INTER_MS apart
DRAIN_DELAY = "3s"  # well above INTER_MS x FALL, for a loaded CI machine


class Load:
    """GET requests through HAProxy until stopped: one thread on a keep-alive connection, one with a
    fresh connection per request. Every failure is recorded; nothing is retried."""

    def __init__(self, port: int):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.ok = 0
        self.threads = [threading.Thread(target=self._run, args=(keep,), daemon=True) for keep in (True, False)]
        for t in self.threads:
            t.start()

    def count(self) -> int:
        with self.lock:
            return self.ok

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=20)

    def _run(self, keep_alive: bool) -> None:
        client = None
        i = 0
        while not self.stop.is_set():
            i += 1
            problem = None
            try:
                if client is None:
                    client = HttpClient(self.port, timeout=10)
                headers = [] if keep_alive else [("Connection", "close")]
                resp = client.roundtrip("GET", f"/echo/{i}", headers=headers)
                if resp.status != 200:
                    problem = f"status {resp.status}"
                if not keep_alive or "close" in resp.tokens("Connection"):
                    client.close()
                    client = None
            except (OSError, ConnectionClosed) as e:
                problem = f"{type(e).__name__}: {e}"
                if client is not None:
                    client.close()
                client = None
            with self.lock:
                if problem:
                    self.errors.append(f"{'keep-alive' if keep_alive else 'fresh'} #{i}: {problem}")
                else:
                    self.ok += 1
            self.stop.wait(0.002)  # pacing, to leave the shared CPUs some air
        if client is not None:
            client.close()


class DrainDelayBehindHAProxyWithoutRetries(unittest.TestCase):
    def test_sigterm_under_load_loses_no_request(self):
        require_tools("haproxy")
        up = start_upstream(self)
        conf = {"server": {"workers": 1, "drain_timeout": "5s"}, "log": {"access": "off"}}
        a = Gateway(self, up.port, {"server": {**conf["server"], "drain_delay": DRAIN_DELAY},
                                    "log": conf["log"]})
        b = Gateway(self, up.port, conf)
        ha = HAProxy(self, [a.port, b.port], check_path="/readyz", inter_ms=INTER_MS, fall=FALL,
                     extra_backend="  retries 0")
        wait_until(lambda: all(simple_get(p, "/readyz").status == 200 for p in (a.port, b.port)), 10,
                   message="both gateways ready")
        wait_until(lambda: ha.admin("show stat").count(",UP,") >= 2, 10, interval=0.05,
                   message=lambda: f"HAProxy sees both gateways UP:\n{ha.admin('show stat')}")
        load = Load(ha.port)
        self.addCleanup(load.finish)
        wait_until(lambda: load.count() >= 50, 10, message="load flowing through HAProxy")
        t0 = time.monotonic()
        a.signal(signal.SIGTERM)
        # Within the delay A still serves, and says it is not ready.
        wait_until(lambda: simple_get(a.port, "/readyz").status == 503, 5, interval=0.02,
                   message="A's /readyz turns 503 on SIGTERM")
        self.assertEqual(simple_get(a.port, "/echo/direct").status, 200)
        self.assertIsNone(a.proc.poll(), "A exited within its drain delay")
        # A exits once the delay and the (short) drain are over; the load goes on through B.
        code = a.wait_exit(20)
        self.assertEqual(code, 0, a.logs()[1][-2000:])
        self.assertEqual(a.stop(), 0)  # already exited: records it for the cleanup
        took = time.monotonic() - t0
        after = load.count()
        wait_until(lambda: load.count() >= after + 50, 10, message="load still flowing after A exited")
        load.finish()
        self.assertEqual(load.errors, [], f"{len(load.errors)} lost of {load.count()}")
        self.assertGreaterEqual(took, 2.5, "A stopped before its drain delay was over")


if __name__ == "__main__":
    unittest.main()
