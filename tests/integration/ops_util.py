"""Shared helpers for the operations tests (reload, admin listener, metrics, readiness, logs, CLI).

- ``admin_gateway(test, upstream_port, overrides)``: a Gateway with ``[admin] listen`` on a free
  port (FREE_ADMIN_LISTEN: picked again on every start attempt); returns (gateway, admin_port).
- ``write_config(gw, overrides)`` / ``write_raw(gw, text)``: replace the gateway's file atomically
  (then ``reload(gw, ...)``).
- ``reload(gw, expect)``: SIGHUP and wait for the matching stderr line ("reload applied" or
  "reload failed", as logged by gateway/main.cc); fails if the other outcome is logged.
- ``scrape(admin_port)``, ``parse_metrics(text)``, ``metric(samples, name, **labels)``.
- ``run_cli(*args)``: run the binary with arguments (``--check``, ``--print-config``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import unittest

from harness import FREE_ADMIN_LISTEN, Gateway, gateway_bin, merge, simple_get, to_toml, wait_until

RELOAD_APPLIED = "reload applied"
RELOAD_FAILED = "reload failed"
RELOAD_TAKEN_UP = "reload taken up by every worker"


def admin_gateway(test: unittest.TestCase, upstream_port: int, overrides: dict | None = None,
                  start: bool = True) -> tuple[Gateway, int]:
    ov = merge(overrides or {}, {"admin": {"listen": FREE_ADMIN_LISTEN}})
    gw = Gateway(test, upstream_port, ov, start=start)
    return gw, gw.admin_port


def _atomic_write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def config_text(gw: Gateway, overrides: dict | None = None) -> str:
    return to_toml(merge(gw.config(), overrides))


def write_config(gw: Gateway, overrides: dict | None = None) -> str:
    """Write the gateway's own config with `overrides` merged on top; returns the text."""
    text = config_text(gw, overrides)
    _atomic_write(gw.config_path, text)
    return text


def write_raw(gw: Gateway, text: str) -> None:
    _atomic_write(gw.config_path, text)


def reload_counts(gw: Gateway) -> tuple[int, int]:
    err = gw.logs()[1]
    return err.count(RELOAD_APPLIED), err.count(RELOAD_FAILED)


def reload(gw: Gateway, expect: str = "applied", timeout: float = 5.0) -> None:
    """SIGHUP, then wait until stderr logs one more reload outcome, and check it is `expect`."""
    ok0, failed0 = reload_counts(gw)
    gw.signal(signal.SIGHUP)

    def outcome():
        ok, failed = reload_counts(gw)
        if ok > ok0:
            return "applied"
        if failed > failed0:
            return "failed"
        return None
    got = wait_until(outcome, timeout, message=lambda: f"a reload outcome on stderr; stderr tail: "
                                                       f"{gw.logs()[1][-1500:]}")
    if got != expect:
        raise AssertionError(f"reload {got}, expected {expect}; stderr tail: {gw.logs()[1][-1500:]}")


def scrape(admin_port: int) -> str:
    r = simple_get(admin_port, "/metrics")
    if r.status != 200:
        raise AssertionError(f"/metrics answered {r.status}: {r.body[:300]!r}")
    return r.body.decode("utf-8")


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict:
    """{(name, frozenset(labels.items())): float} for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if m is None:
            raise AssertionError(f"unparseable metrics line {line!r}")
        labels = frozenset(_LABEL_RE.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(samples: dict, name: str, **labels) -> float:
    key = (name, frozenset(labels.items()))
    if key not in samples:
        near = sorted(str(k) for k in samples if k[0] == name)
        raise AssertionError(f"no sample {name}{labels}; samples of that name: {near}")
    return samples[key]


def metric_value(admin_port: int, name: str, **labels) -> float:
    return metric(parse_metrics(scrape(admin_port)), name, **labels)


def run_cli(*args, timeout: float = 10.0) -> subprocess.CompletedProcess:
    binary = gateway_bin()
    if not os.access(binary, os.X_OK):
        if "SESSIONGATE_BIN" in os.environ:
            raise AssertionError(f"SESSIONGATE_BIN={binary} is not an executable file")
        raise unittest.SkipTest(f"gateway binary {binary} not built")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)
