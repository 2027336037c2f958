"""systemd readiness (sd_notify) without systemd: a Python AF_UNIX datagram socket plays the service
manager. The gateway, started with NOTIFY_SOCKET, must send READY=1 only once its port accepts,
RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP reload (valid or not), STOPPING=1
when SIGTERM starts the drain, and WATCHDOG=1 at half of WATCHDOG_USEC.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import unittest
from unittest import mock

from harness import FREE_ADMIN_LISTEN, ConnectionClosed, Gateway, free_port, simple_get, start_upstream, wait_until
from ops_util import write_config, write_raw

DEADLINE_S = 10.0


def healthz_status(port: int) -> int | str:
    """GET /healthz on `port`: the status, or the connection error's name."""
    try:
        return simple_get(port, "/healthz", timeout=2.0).status
    except (OSError, ConnectionClosed) as e:
        return type(e).__name__


class NotifyListener:
    """The service manager's end: a datagram socket that records every message. When a message
    with READY=1 arrives, the receiving thread at once asks /healthz on every port `ready_ports()`
    returns, so what the test sees is what a unit ordered After= us would see."""

    def __init__(self, test: unittest.TestCase, abstract: bool = False):
        self.dir = tempfile.mkdtemp(prefix="sg-it-notify-")
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"sg-it-notify-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(self.dir, "notify.sock")
            self.sock.bind(self.address)
        self.sock.settimeout(0.1)
        self.messages: list[dict] = []  # {"fields": {key: value}, "raw": str, "at": monotonic ns}
        self.lock = threading.Lock()
        self.ready_ports = lambda: []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        test.addCleanup(self.close)

    def close(self):
        self.stop_event.set()
        self.thread.join(timeout=5)
        self.sock.close()

    def _run(self):
        while not self.stop_event.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            at = time.monotonic_ns()
            raw = data.decode("utf-8", "replace")
            fields = dict(line.split("=", 1) for line in raw.split("\n") if "=" in line)
            entry = {"fields": fields, "raw": raw, "at": at}
            if fields.get("READY") == "1":
                entry["healthz_at_ready"] = {p: healthz_status(p) for p in self.ready_ports()}
            with self.lock:
                self.messages.append(entry)

    def all(self) -> list[dict]:
        with self.lock:
            return list(self.messages)

    def wait_for(self, key: str, count: int = 1, timeout: float = DEADLINE_S) -> list[dict]:
        """Wait until `count` messages carry `key`; returns them."""
        def having():
            found = [m for m in self.all() if key in m["fields"]]
            return found if len(found) >= count else None
        return wait_until(having, timeout, message=lambda: f"{count} message(s) with {key}: {self.all()}")


class SystemdNotify(unittest.TestCase):
    def setUp(self):
        self.up = start_upstream(self)

    def start_gateway(self, listener: NotifyListener, overrides: dict | None = None, env: dict | None = None):
        gw = Gateway(self, self.up.port, overrides, start=False)
        listener.ready_ports = lambda: [gw.port]
        variables = {"NOTIFY_SOCKET": listener.address, **(env or {})}
        with mock.patch.dict(os.environ, variables):  # inherited by the Popen in start() only
            gw.start()
        return gw

    def test_ready_only_once_listening_then_reload_then_stopping(self):
        listener = NotifyListener(self)
        gw = self.start_gateway(listener, {"server": {"workers": 2}, "admin": {"listen": FREE_ADMIN_LISTEN}})
        admin_port = gw.admin_port
        ready = listener.wait_for("READY")[0]
        first = listener.all()[0]
        self.assertIs(first, ready, f"READY=1 is the first message: {listener.all()}")
        self.assertEqual(ready["healthz_at_ready"], {gw.port: 200},
                         "the port answered /healthz as soon as READY=1 arrived")
        self.assertIn(f"serving on 127.0.0.1:{gw.port}", ready["fields"].get("STATUS", ""))
        self.assertIn("2 worker(s)", ready["fields"]["STATUS"])
        self.assertEqual(healthz_status(admin_port), 200)

        # A valid reload that adds a listener: READY=1 comes once the new port accepts too.
        extra = free_port()
        listener.ready_ports = lambda: [gw.port, extra]
        write_config(gw, {"server": {"listen": [f"127.0.0.1:{gw.port}", f"127.0.0.1:{extra}"]}})
        before = time.monotonic_ns() // 1000
        gw.signal(signal.SIGHUP)
        reloading = listener.wait_for("RELOADING")[0]
        ready2 = listener.wait_for("READY", 2)[1]
        self.assertEqual(reloading["fields"]["RELOADING"], "1")
        monotonic = int(reloading["fields"]["MONOTONIC_USEC"])
        self.assertTrue(before <= monotonic <= reloading["at"] // 1000,
                        f"MONOTONIC_USEC {monotonic} is CLOCK_MONOTONIC at the reload "
                        f"(between {before} and {reloading['at'] // 1000})")
        self.assertLess(reloading["at"], ready2["at"])
        self.assertEqual(ready2["healthz_at_ready"], {gw.port: 200, extra: 200})
        self.assertIn("reloaded", ready2["fields"].get("STATUS", ""))

        # An invalid file: RELOADING=1, then READY=1 again (the old configuration stays) with a
        # STATUS that says the reload failed.
        write_raw(gw, "[server]\nlisten = [\"127.0.0.1:1\"]\nno_such_key = 1\n")
        gw.signal(signal.SIGHUP)
        listener.wait_for("RELOADING", 2)
        ready3 = listener.wait_for("READY", 3)[2]
        self.assertIn("reload failed", ready3["fields"].get("STATUS", ""))
        self.assertEqual(ready3["healthz_at_ready"], {gw.port: 200, extra: 200})

        # SIGTERM: STOPPING=1 as the drain starts, then a clean exit.
        count_before = len(listener.all())
        gw.signal(signal.SIGTERM)
        stopping = listener.wait_for("STOPPING")[0]
        self.assertEqual(stopping["fields"]["STOPPING"], "1")
        self.assertIn("draining", stopping["fields"].get("STATUS", ""))
        self.assertEqual(gw.stop(), 0)
        later = listener.all()[count_before:]
        self.assertFalse([m for m in later if "READY" in m["fields"]], f"no READY=1 after STOPPING: {later}")
        for m in listener.all():
            self.assertNotIn("\n\n", m["raw"])
            for line in m["raw"].split("\n"):
                self.assertRegex(line, r"^[A-Z_]+=", f"every line an assignment: {m['raw']!r}")

    def test_abstract_socket_and_watchdog(self):
        listener = NotifyListener(self, abstract=True)
        gw = self.start_gateway(listener, env={"WATCHDOG_USEC": "200000"})
        listener.wait_for("READY")
        pings = listener.wait_for("WATCHDOG", 3)
        self.assertTrue(all(m["fields"]["WATCHDOG"] == "1" for m in pings))
        self.assertIn("WATCHDOG=1 every 100 ms", gw.logs()[1])
        self.assertEqual(gw.stop(), 0)

    def test_watchdog_meant_for_another_process_is_ignored(self):
        listener = NotifyListener(self)
        gw = self.start_gateway(listener, env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
        listener.wait_for("READY")
        self.assertNotIn("systemd watchdog", gw.logs()[1])
        self.assertEqual(gw.stop(), 0)
        # Datagrams keep their order: a watchdog would have pinged right after READY=1, before
        # STOPPING=1.
        listener.wait_for("STOPPING")
        self.assertFalse([m for m in listener.all() if "WATCHDOG" in m["fields"]])

    def test_without_notify_socket_nothing_changes(self):
        with mock.patch.dict(os.environ):
            os.environ.pop("NOTIFY_SOCKET", None)
            gw = Gateway(self, self.up.port)
        self.assertEqual(healthz_status(gw.port), 200)
        self.assertNotIn("sd_notify", gw.logs()[1])
        self.assertEqual(gw.stop(), 0)


if __name__ == "__main__":
    unittest.main()
