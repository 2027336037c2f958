"""The demo application (deploy/demo/app.py) behind the real gateway configured with the shipped
gateway.toml, for test_demo.py and test_browser.py.

- ``DemoApp(test)``: runs app.py on a kernel-chosen loopback port (it prints the address it bound);
  stopped at test cleanup.
- ``ShippedGateway(test, upstream_port)``: the gateway with the repository's gateway.toml, only
  ``server.listen`` and ``upstream.servers`` moved to free loopback ports and ``drain_timeout``
  shortened (so that stopping takes seconds, not the shipped 30 s). Everything else (workers =
  "auto", cookie attributes, /static/* excluded, memory store, JSON access log) is as shipped.
- ``artifacts_dir()``: where tests leave files for people to look at: $SG_ARTIFACTS_DIR, else
  ``artifacts/`` beside the gateway binary under test (the build directory).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import unittest

from harness import Gateway, gateway_bin

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
APP = os.path.join(REPO, "deploy", "demo", "app.py")
SHIPPED_CONFIG = os.path.join(REPO, "gateway.toml")
APP_START_TIMEOUT_S = 30.0  # a deadline, not a wait: generous for a loaded machine
APP_STOP_TIMEOUT_S = 5.0
ACCOUNTS = {"alice": "wonderland", "bob": "builder"}


def artifacts_dir() -> str:
    path = os.environ.get("SG_ARTIFACTS_DIR") or os.path.join(os.path.dirname(os.path.abspath(gateway_bin())),
                                                               "artifacts")
    os.makedirs(path, exist_ok=True)
    return path


class DemoApp:
    """deploy/demo/app.py as a child process on a loopback port of the kernel's choosing."""

    def __init__(self, test: unittest.TestCase, args: tuple = ()):
        self.dir = tempfile.mkdtemp(prefix="sg-demo-")
        self.stderr_path = os.path.join(self.dir, "app-stderr.log")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, APP, "--host", "127.0.0.1", "--port", "0", *args],
                                         stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        test.addCleanup(self.stop)
        line = b""
        deadline = time.monotonic() + APP_START_TIMEOUT_S
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise AssertionError(f"demo app printed no address within {APP_START_TIMEOUT_S}s: {self.stderr()}")
            chunk = os.read(self.proc.stdout.fileno(), 256)
            if not chunk:
                raise AssertionError(f"demo app exited with {self.proc.wait()}: {self.stderr()}")
            line += chunk
        self.proc.stdout.close()
        m = re.search(rb"http://127\.0\.0\.1:(\d+)/", line)
        if not m:
            raise AssertionError(f"unexpected first line from the demo app: {line!r}")
        self.port = int(m.group(1))

    def stderr(self) -> str:
        with open(self.stderr_path, "rb") as f:
            return f.read()[-3000:].decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=APP_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=APP_STOP_TIMEOUT_S)
        shutil.rmtree(self.dir, ignore_errors=True)


def shipped_config() -> dict:
    """gateway.toml as {section: {key: value}}, nested tables flattened to "store.memory"."""
    with open(SHIPPED_CONFIG, "rb") as f:
        doc = tomllib.load(f)
    flat: dict = {}

    def walk(prefix: str, table: dict):
        keys = {k: v for k, v in table.items() if not isinstance(v, dict)}
        if keys:
            flat[prefix] = keys
        for k, v in table.items():
            if isinstance(v, dict):
                walk(f"{prefix}.{k}", v)

    for section, table in doc.items():
        walk(section, table)
    return flat


class ShippedGateway(Gateway):
    """The gateway with the shipped configuration (see the module docstring for what is changed)."""

    def config(self) -> dict:
        cfg = shipped_config()
        cfg["server"]["listen"] = [f"127.0.0.1:{self.port}"]
        cfg["server"]["drain_timeout"] = "3s"
        cfg["upstream"]["servers"] = [f"127.0.0.1:{self.upstream_port}"]
        return cfg
