"""Sessions per user (issue 14) across instances: two gateways share one Redis behind HAProxy.

- three "devices" sign in through HAProxy; either instance's admin API lists all three;
  destroy-others from one device ends the other two on both instances (they get new anonymous
  sessions); deleting one session by handle on one instance ends it for the other; revoking all of
  a user's sessions is refused without the bearer token and works with it;
- session.max_per_user holds across instances, in both on_limit modes;
- figures (printed, run with -v): Redis commands per returning visit and per login, seen by
  MONITOR (commands the gateway sent, not those its scripts ran), and memory per indexed session
  (INFO memory before and after).

One redis-server, two gateways and one HAProxy per test, on free ports, stopped at cleanup."""

import json
import os
import re
import socket
import sys
import threading
import unittest

from harness import wait_until
from ops_util import FREE_ADMIN_LISTEN
from redis_util import HAProxy, require_tools, resp, session_key
from session_util import header_values, respond_target
from test_users import OnRedis, UsersTestCase


def report(text: str) -> None:
    print(f"\n    [measured] {text}", file=sys.stderr, flush=True)


class Monitor:
    """MONITOR on its own connection: the commands clients send, between two ECHO markers."""

    def __init__(self, test: unittest.TestCase, port: int):
        self.port = port
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(b"MONITOR\r\n")
        self.buf = b""
        self._line()  # +OK
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        test.addCleanup(self.close)
        self.marks = 0

    def _line(self) -> str:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("monitor closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def _run(self):
        try:
            while True:
                line = self._line()
                with self.lock:
                    self.lines.append(line)
        except (OSError, ConnectionError):
            pass

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)

    def mark(self) -> str:
        self.marks += 1
        name = f"sg-mark-{self.marks}"
        resp(self.port, "ECHO", name)
        wait_until(lambda: any(name in line for line in self.snapshot()), 5.0,
                   message=f"MONITOR saw {name}")
        return name

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.lines)

    def sent_between(self, start: str, end: str) -> list[str]:
        """The commands clients sent between the markers: not the ones scripts ran ([n lua]), nor
        the expiry sweep's (once a second per instance, on the schedule key, whatever the
        traffic)."""
        lines = self.snapshot()
        i = next(k for k, line in enumerate(lines) if start in line)
        j = next(k for k, line in enumerate(lines) if end in line)
        return [re.sub(r"^\S+ \[[^\]]*\] ", "", line).split(" ")[0].strip('"')
                for line in lines[i + 1:j] if " lua]" not in line and 'expiries"' not in line]


class TwoInstances(OnRedis, UsersTestCase):
    def setUp(self):
        require_tools("redis-server", "haproxy")
        super().setUp()

    def pair(self, audit: tuple[str, str] | None = None, extra: dict | None = None, **session):
        def one(i):
            admin = {"listen": FREE_ADMIN_LISTEN, "token_file": self.token_file}
            ov = {"admin": admin, **({"log": {"audit": audit[i]}} if audit else {}), **(extra or {})}
            return self.gateway(ov, **session)
        a, b = one(0), one(1)
        hap = HAProxy(self, [a.port, b.port])
        hap.wait_all_up()
        return a, b, hap

    def agents(self, gw, user):
        return sorted(s["user_agent"] for s in self.list_user(gw, user))

    def test_three_devices_listed_and_revoked_through_either_instance(self):
        a, b, hap = self.pair()
        tokens = [self.device(hap, f"Device/{i}") for i in range(3)]
        for t in tokens:
            self.sign_in(hap, t, "alice")
        for gw in (a, b):
            self.assertEqual(self.agents(gw, "alice"), ["Device/0", "Device/1", "Device/2"])

        r = self.get(hap, respond_target(("X-Session-Control", "destroy-others")), token=tokens[0])
        self.assertEqual(r.status, 200, r)
        for gw in (a, b):
            self.assertEqual(self.agents(gw, "alice"), ["Device/0"])
            self.assertEqual(self.user_seen(gw, tokens[0]), ("alice", None))
            for t in tokens[1:]:
                user, new = self.user_seen(gw, t)
                self.assertIsNone(user, "an ended session still signed in")
                self.assertIsNotNone(new, "no new anonymous session for an ended one")

        # One session ended by handle on B is gone for A.
        other = self.device(hap, "Device/3")
        self.sign_in(hap, other, "alice")
        handle = next(s["handle"] for s in self.list_user(a, "alice") if s["user_agent"] == "Device/3")
        self.assertEqual(self.admin(b, "DELETE", f"/sessions/{handle}").status, 200)
        self.assertEqual(self.admin(a, "DELETE", f"/sessions/{handle}").status, 404)
        self.assertIsNone(self.user_seen(a, other)[0])

        # Revoking all of alice's sessions: refused without the token, done with it.
        self.assertEqual(self.admin(a, "DELETE", "/sessions?user=alice", token=None).status, 401)
        self.assertEqual(self.admin(a, "DELETE", "/sessions?user=alice", token="wrong").status, 401)
        self.assertEqual(self.user_seen(b, tokens[0])[0], "alice", "a refused revoke ended it")
        r = self.admin(b, "DELETE", "/sessions?user=alice")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["destroyed"], 1)
        for gw in (a, b):
            self.assertEqual(self.list_user(gw, "alice"), [])
        user, new = self.user_seen(a, tokens[0])
        self.assertIsNone(user)
        self.assertIsNotNone(new)

    def test_cap_evict_oldest_across_instances(self):
        audit = (os.path.join(self.tmp, "a.audit"), os.path.join(self.tmp, "b.audit"))
        a, b, hap = self.pair(audit, max_per_user=2, on_limit="evict_oldest")
        tokens = [self.device(hap, f"C{i}") for i in range(3)]
        for gw, t in zip((a, b), tokens):
            self.sign_in(gw, t, "erin")
        oldest = next(s["handle"] for s in self.list_user(b, "erin") if s["user_agent"] == "C0")
        self.sign_in(a, tokens[2], "erin")
        for gw in (a, b):
            self.assertEqual(self.agents(gw, "erin"), ["C1", "C2"])
        # The instance whose login evicted writes the audit line, without any token.
        def evicted():
            with open(audit[0]) as f:
                return [e for e in map(json.loads, filter(str.strip, f)) if e["event"] == "evicted"]
        wait_until(lambda: evicted(), 5.0, message="no eviction audited")
        self.assertEqual([(e["reason"], e["session"], e["user"], e["client"]) for e in evicted()],
                         [("user-cap", oldest, "erin", "127.0.0.1")])
        with open(audit[0]) as f:
            text = f.read()
        for t in tokens:
            self.assertNotIn(t, text)
        user, new = self.user_seen(b, tokens[0])
        self.assertIsNone(user)
        self.assertIsNotNone(new)
        self.assertEqual(self.user_seen(hap, tokens[2])[0], "erin")

    def test_cap_reject_across_instances(self):
        a, b, hap = self.pair(max_per_user=2, on_limit="reject")
        tokens = [self.device(hap, f"R{i}") for i in range(3)]
        for gw, t in zip((a, b, hap), tokens):
            self.sign_in(gw, t, "frank")
        for gw in (a, b):
            self.assertEqual(self.agents(gw, "frank"), ["R0", "R1"])
        first = self.seen(self.get(b, "/echo", token=tokens[2]))
        self.assertEqual(header_values(first, "X-Session-Limit"), ["reached"])
        self.assertEqual(header_values(first, "X-Session-User"), [])
        second = self.seen(self.get(a, "/echo", token=tokens[2]))
        self.assertEqual(header_values(second, "X-Session-Limit"), [], "the notice is shown once")

    def test_figures_commands_per_visit_and_login_and_memory_per_indexed_session(self):
        # The local cache (README, "The local cache"): one worker, so that every visit meets the
        # same copy, kept long enough that a slow machine cannot see it age out.
        a, b, hap = self.pair(extra={"server": {"workers": 1}, "store.redis": {"local_cache": "60s"}})
        mon = Monitor(self, self.redis.port)
        token = self.device(a, "F")
        start = mon.mark()
        self.get(a, "/echo", token=token)  # the first return: read, maybe refreshed (not kept then)
        self.assertEqual(mon.sent_between(start, mon.mark())[0], "HGETALL")
        self.get(a, "/echo", token=token)  # read again if the refresh dropped the copy

        start = mon.mark()
        r = self.get(a, "/echo", token=token)
        self.assertEqual(r.status, 200)
        self.assertEqual(self.our_set_cookies(r), [], "a refresh in the measured visit")
        visit = mon.sent_between(start, mon.mark())
        self.assertEqual(visit, [], visit)  # answered from the worker's copy

        start = mon.mark()
        self.get(a, respond_target(("X-Session-Control", "rotate"), ("X-Session-Set-User", "fig")),
                 token=token)
        login = mon.sent_between(start, mon.mark())
        # The lookup from the copy, the script, and the PING that the answer waits for: Redis has
        # then written the other caches' reports of the change (redis_store.cc, after_reports).
        self.assertEqual(login, ["EVALSHA", "PING"], login)
        report(f"Redis commands: returning visit {len(visit)} (local cache; 1 HGETALL without), "
               f"login with rotation {len(login)} ({' '.join(login)})")
        mon.close()

        def used() -> int:
            info = resp(self.redis.port, "INFO", "memory").decode()
            return int(re.search(r"used_memory:(\d+)", info).group(1))

        def usage(key: str) -> int:
            return resp(self.redis.port, "MEMORY", "USAGE", key, "SAMPLES", "0")

        n = 600
        before = used()
        tokens = [self.device(a, f"Mem/{i}") for i in range(n)]
        anonymous = used()
        hashes = sum(usage(session_key("sgusers:", t)) for t in tokens)
        for i, t in enumerate(tokens):
            self.sign_in(a, t, f"member{i // 3}")  # three devices per user
        indexed = used()
        self.assertEqual(len(self.list_user(b, "member0")), 3)
        # Key by key (MEMORY USAGE: the values and their key names, not the keyspace's buckets):
        # the hashes' growth (a:user, u), the handle keys and the users' sorted sets.
        keys = [k.decode() for k in resp(self.redis.port, "KEYS", "sgusers:*")]
        extra = (sum(usage(session_key("sgusers:", t)) for t in tokens) - hashes +
                 sum(usage(k) for k in keys if k.startswith("sgusers:h:") or "{u:" in k))
        self.assertEqual(sum(1 for k in keys if "{u:" in k), n // 3 + 1)  # and "fig"
        # The expiry schedule: one member per session (the n here, "F" rotated to one more).
        scheduled = resp(self.redis.port, "ZCARD", "sgusers:expiries")
        self.assertEqual(scheduled, n + 1)
        schedule = usage("sgusers:expiries") / scheduled
        report(f"Redis memory (INFO used_memory, {n} sessions, keyspace buckets included): "
               f"{(anonymous - before) / n:.0f} B per anonymous session, "
               f"{(indexed - anonymous) / n:.0f} B more per indexed session; by MEMORY USAGE: "
               f"{hashes / n:.0f} B per anonymous session hash, {extra / n:.0f} B more per indexed "
               f"session (a:user and u in the hash, the handle key, a third of a user's index); "
               f"the expiry schedule {schedule:.0f} B per session (included in the anonymous figure)")

if __name__ == "__main__":
    unittest.main()
