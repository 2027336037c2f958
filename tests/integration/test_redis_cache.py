"""The Redis store's local cache (store.redis.local_cache) end to end, on loopback, each test with a
redis-server of its own (see redis_store.h, "The local cache", for the design):

- a returning visit whose record the worker holds is answered without a Redis command
  (sessiongate_redis_cache_hits_total rises, INFO commandstats counts no HGETALL);
- a change made anywhere is seen by the very next request to a gateway that had the session in its
  cache, with no retry: logout through another gateway's logout_path, an attribute set through
  another gateway, a rotation through another gateway (rotation_grace "0s"), destroy-user through
  another gateway, the admin API's DELETE /sessions?user= (the gateway answers a change once Redis
  has written its reports: redis_store.cc, after_reports); a DEL or FLUSHDB by another Redis
  client, once that client made sure the reports are out (reports_written);
- more reports waiting than one read of the socket takes: all are read before a copy is served;
- local_cache = "0s": no invalidation connection and no tracking, one HGETALL per returning visit;
- either connection of a worker killed by Redis (CLIENT KILL): the cache is emptied, a change made
  meanwhile is seen, and hits resume once the gateway tracks again;
- an entry older than local_cache is read from Redis again; a session idle past its timeout is
  not served from a young copy.

Connections are told apart in CLIENT LIST: the command connection of a worker has tracking on
(flag "t") and names its invalidation connection in "redir". Every process is stopped at cleanup
even when a test fails."""

import signal
import time
import unittest

from harness import FREE_ADMIN_LISTEN, Gateway, HttpClient, wait_until
from ops_util import metric_value
from redis_util import RedisServer, require_tools, session_key
from session_util import COOKIE, prefixed, random_token, respond_target
from test_users import UsersTestCase

PREFIX = "sgcache:"
INVALIDATION_CHANNEL = "__redis__:invalidate"
# Long enough that no entry ages out during a test (the max-age test sets its own).
LONG_CACHE = "30s"


class CacheTestCase(UsersTestCase):
    """UsersTestCase for its admin API helpers (admin(), token_file); a Redis per test."""

    def setUp(self):
        require_tools("redis-server")
        super().setUp()
        self.redis = RedisServer(self)

    # -- gateways ----------------------------------------------------------------------------
    def cache_gateway(self, redis: RedisServer | None = None, local_cache: str = LONG_CACHE,
                      workers: int = 1, **session) -> Gateway:
        redis = redis or self.redis
        tracking_before = len(tracking_clients(redis))
        ov = {"server": {"workers": workers},
              "session": {"store": "redis", "logout_path": "/logout", **session},
              "store.redis": {"address": redis.address, "key_prefix": PREFIX, "timeout": "2s",
                              "local_cache": local_cache},
              "admin": {"listen": FREE_ADMIN_LISTEN, "token_file": self.token_file}}
        gw = Gateway(self, self.up.port, ov)
        # Every worker's connection and the admin listener's (no cache there) are up before the
        # first request: a worker still connecting would answer 503 (fail_closed).
        wait_until(lambda: gw.logs()[1].count("redis store: connected to") >= workers + 1, 10.0,
                   message=lambda: f"{workers} workers and the admin API connected: {gw.logs()[1][-2000:]}")
        if local_cache != "0s":
            wait_until(lambda: len(tracking_clients(redis)) >= tracking_before + workers, 10.0,
                       message=lambda: f"tracking on for {workers} workers: {client_list(redis)}")
        return gw

    # -- visits ------------------------------------------------------------------------------
    def visit(self, gw, token, target="/echo"):
        r = self.get(gw, target, token=token)
        self.assertEqual(r.status, 200, r)
        return r

    def attributes(self, r) -> dict:
        return {k.lower(): v for k, v in prefixed(self.seen(r)) if k.lower() != "x-session-id"}

    def assert_same_session(self, gw, token, handle, attributes=None, where=""):
        """The session `handle` answered for `token`, with `attributes` when given."""
        r = self.visit(gw, token)
        self.assertEqual(self.handle_of(self.seen(r)), handle, f"{where}: another session")
        self.assert_no_set_cookie(r)
        if attributes is not None:
            self.assertEqual(self.attributes(r), attributes, where)
        return r

    def assert_session_gone(self, gw, token, handle, where=""):
        """`token` no longer names `handle`: the gateway starts a new, anonymous session."""
        r = self.visit(gw, token)
        self.assertNotEqual(self.handle_of(self.seen(r)), handle, f"{where}: the old session was served")
        self.assertEqual(self.attributes(r), {}, where)
        return self.issued_token(r, not_in=[token])

    def reports_written(self):
        """Returns once Redis has written the reports (invalidations) of every change it answered
        before. Redis queues a change's reports before the writer's reply, but writes its pending
        replies newest first: the writer's reply leaves first, the reports right after it, in the
        same pass, before Redis polls again. A writer (or whoever it answers) faster than that gap
        meets the stale copy: seen ~1 in 200 with FLUSHDB then a visit, and a few times in ~25
        runs of this file with an attribute set through B, on a loaded machine. A command sent
        now is read in a later pass, after every write of that one: its answer is the barrier.
        The gateway's store does the same before it answers a change (after_reports); a plain
        Redis client does not, so the tests do it for the changes they make that way."""
        self.assertEqual(self.redis.cmd("PING"), b"PONG")

    def other_client(self, *command):
        """`command` sent by a Redis client that is not a gateway, once its reports are out."""
        reply = self.redis.cmd(*command)
        self.reports_written()
        return reply

    def hits(self, gw) -> float:
        return metric_value(gw.admin_port, "sessiongate_redis_cache_hits_total")

    def warm(self, gw, token, handle, attributes=None):
        """Visits until one is answered from `gw`'s cache (the first ones read Redis while the
        tracking handshake may still be on its way). Returns the hits then."""
        start = self.hits(gw)

        def hit():
            self.assert_same_session(gw, token, handle, attributes, "warming")
            return self.hits(gw) > start
        wait_until(hit, 10.0, interval=0.02, message="a visit answered from the cache")
        return self.hits(gw)

    def warm_session(self, gw, **attributes) -> tuple[str, str]:
        """A new session through `gw` (with these attributes set by the application) held in
        `gw`'s cache: (token, handle)."""
        if attributes:
            r = self.get(gw, respond_target(*[(f"X-Session-Set-{k}", v) for k, v in attributes.items()]))
            self.assertEqual(r.status, 200, r)
            token = self.issued_token(r)
            handle = self.handle_of(self.last_upstream_headers())
        else:
            token, handle = self.new_session(gw)
        self.warm(gw, token, handle, {f"x-session-{k.lower()}": v for k, v in attributes.items()})
        return token, handle


# -- Redis introspection ----------------------------------------------------------------------

def client_list(redis: RedisServer) -> list[dict]:
    """CLIENT LIST as dicts, without the connection that asks."""
    out = []
    for line in redis.cmd("CLIENT", "LIST").decode().splitlines():
        fields = dict(f.split("=", 1) for f in line.split(" ") if "=" in f)
        if fields.get("cmd") != "client|list":
            out.append(fields)
    return out


def tracking_clients(redis: RedisServer) -> list[dict]:
    """The connections with tracking on (a cache-enabled worker's command connection)."""
    return [c for c in client_list(redis) if "t" in c.get("flags", "")]


def invalidation_subscribers(redis: RedisServer) -> int:
    reply = redis.cmd("PUBSUB", "NUMSUB", INVALIDATION_CHANNEL)
    return int(reply[1])


def events_subscribers(redis: RedisServer) -> int:
    return int(redis.cmd("PUBSUB", "NUMSUB", PREFIX + "events")[1])


def command_calls(redis: RedisServer, name: str) -> int:
    """How many times Redis ran `name` (INFO commandstats; e.g. "hgetall", "client|caching")."""
    for line in redis.cmd("INFO", "commandstats").decode().splitlines():
        if line.startswith(f"cmdstat_{name}:"):
            return int(line.split("calls=", 1)[1].split(",", 1)[0])
    return 0


def hgetall_calls(redis: RedisServer) -> int:
    """HGETALLs Redis ran (none of the tests' own connections sends one, and no script that sets
    an attribute runs while this is compared)."""
    return command_calls(redis, "hgetall")


class FromTheCache(CacheTestCase):
    def test_returning_visits_send_no_command(self):
        gw = self.cache_gateway()
        token, handle = self.warm_session(gw)
        hits, reads = self.hits(gw), hgetall_calls(self.redis)
        n = 20
        for i in range(n):
            self.assert_same_session(gw, token, handle, {}, f"visit {i}")
        self.assertEqual(self.hits(gw) - hits, n)
        self.assertEqual(hgetall_calls(self.redis) - reads, 0, "a cached visit asked Redis")

    def test_cache_off_has_no_second_connection_and_reads_redis_every_visit(self):
        # The same gateway, 2 workers, with the cache off and on, each on a Redis of its own so
        # that the connections counted are that gateway's alone. Without the cache: a command
        # connection per worker, the admin API's, and the process's events subscriber.
        workers = 2
        off = self.cache_gateway(local_cache="0s", workers=workers)
        wait_until(lambda: events_subscribers(self.redis) == 1, 10.0, message="the events subscriber")
        off_clients = client_list(self.redis)
        self.assertEqual(len(off_clients), workers + 2, off_clients)
        self.assertEqual(tracking_clients(self.redis), [])
        self.assertEqual(invalidation_subscribers(self.redis), 0)
        token, handle = self.new_session(off)
        self.assert_same_session(off, token, handle)
        reads = hgetall_calls(self.redis)
        n = 10
        for i in range(n):
            self.assert_same_session(off, token, handle, {}, f"visit {i}")
        self.assertEqual(hgetall_calls(self.redis) - reads, n, "one HGETALL per returning visit")
        self.assertEqual(self.hits(off), 0)

        # With it: one more connection per worker, subscribed to the invalidations, and each
        # worker's command connection tracks with its invalidations sent there.
        other = RedisServer(self)
        self.cache_gateway(other, workers=workers)  # waits for tracking on both workers
        wait_until(lambda: invalidation_subscribers(other) == workers and events_subscribers(other) == 1,
                   10.0, message=lambda: f"the subscribers: {client_list(other)}")
        on_clients = client_list(other)
        self.assertEqual(len(on_clients), workers + 2 + workers, on_clients)
        tracked = tracking_clients(other)
        self.assertEqual(len(tracked), workers, on_clients)
        subscribed = {c["id"] for c in on_clients if c["sub"] == "1"}
        self.assertEqual(len({c["redir"] for c in tracked} & subscribed), workers,
                         f"each worker's invalidations go to a subscribed connection of its own: {on_clients}")
        print(f"\n    [measured] CLIENT LIST, {workers} workers + admin API: {len(off_clients)} connections "
              f"with local_cache 0s, {len(on_clients)} with it on", flush=True)


class ChangesElsewhere(CacheTestCase):
    """A session in A's cache; something else changes it; A's very next request sees the change."""

    def setUp(self):
        super().setUp()
        self.a = self.cache_gateway(rotation_grace="0s")
        self.b = self.cache_gateway(rotation_grace="0s")

    def test_logout_through_another_gateway(self):
        token, handle = self.warm_session(self.a)
        c = HttpClient(self.b.port, self)
        r = c.roundtrip("POST", "/logout", body=b"", headers=[("Cookie", f"{COOKIE}={token}"),
                                                              ("Connection", "close")])
        self.assertEqual(r.status, 303, r)
        self.assert_session_gone(self.a, token, handle, "A after logout through B")

    def test_del_by_another_redis_client(self):
        token, handle = self.warm_session(self.a)
        self.assertEqual(self.other_client("DEL", session_key(PREFIX, token)), 1)
        self.assert_session_gone(self.a, token, handle, "A after DEL")

    def test_attribute_set_through_another_gateway(self):
        token, handle = self.warm_session(self.a, Plan="silver")
        r = self.get(self.b, respond_target(("X-Session-Set-Plan", "gold")), token=token)
        self.assertEqual(r.status, 200, r)
        self.assert_same_session(self.a, token, handle, {"x-session-plan": "gold"}, "A after B's change")
        # And removed through B.
        self.warm(self.a, token, handle, {"x-session-plan": "gold"})
        self.assertEqual(self.get(self.b, respond_target(("X-Session-Set-Plan", "")), token=token).status, 200)
        self.assert_same_session(self.a, token, handle, {}, "A after B's removal")

    def test_rotation_through_another_gateway(self):
        token, handle = self.warm_session(self.a, User="dave")
        r = self.get(self.b, respond_target(("X-Session-Control", "rotate")), token=token)
        self.assertEqual(r.status, 200, r)
        new_token = self.issued_token(r, not_in=[token])
        # rotation_grace is 0s: the old token is a replay at once, everywhere.
        self.assert_session_gone(self.a, token, handle, "A, old token after B's rotation")
        self.assert_same_session(self.a, new_token, handle, {"x-session-user": "dave"}, "A, new token")

    def test_destroy_user_through_another_gateway(self):
        token, handle = self.warm_session(self.a, User="carol")
        other = self.device(self.b, "Other/1")
        self.sign_in(self.b, other, "carol")
        r = self.get(self.b, respond_target(("X-Session-Control", "destroy-user")), token=other)
        self.assertEqual(r.status, 200, r)
        self.assert_session_gone(self.a, token, handle, "A after destroy-user through B")

    def test_admin_delete_of_the_user_through_another_gateway(self):
        token, handle = self.warm_session(self.a, User="erin")
        r = self.admin(self.b, "DELETE", "/sessions?user=erin")
        self.assertEqual(r.status, 200, r)
        self.assert_session_gone(self.a, token, handle, "A after DELETE /sessions?user= on B")

    def test_flushdb_empties_every_cache(self):
        ta, ha = self.warm_session(self.a)
        tb, hb = self.warm_session(self.b)
        self.warm(self.b, ta, ha)  # A's session in B's cache too
        self.assertEqual(self.other_client("FLUSHDB"), b"OK")
        self.assert_session_gone(self.a, ta, ha, "A's session on A after FLUSHDB")
        self.assert_session_gone(self.b, tb, hb, "B's session on B after FLUSHDB")
        self.assert_session_gone(self.b, ta, ha, "A's session on B after FLUSHDB")


class LostConnections(CacheTestCase):
    def tracked(self) -> dict:
        """The gateway's one worker's command connection (tracking on)."""
        clients = tracking_clients(self.redis)
        self.assertEqual(len(clients), 1, client_list(self.redis))
        return clients[0]

    def tracking_again(self, old_id: str, field: str) -> dict:
        """Waits until the worker tracks again with a new connection in `field` ("id": the
        command connection, "redir": the invalidation connection)."""
        def fresh():
            clients = [c for c in tracking_clients(self.redis) if "R" not in c["flags"]]
            return clients[0] if len(clients) == 1 and clients[0][field] != old_id else None
        return wait_until(fresh, 10.0, interval=0.02,
                          message=lambda: f"tracking on a new connection: {client_list(self.redis)}")

    def test_invalidation_connection_killed(self):
        gw = self.cache_gateway()
        token, handle = self.warm_session(gw)
        listener = self.tracked()["redir"]
        self.assertEqual(self.redis.cmd("CLIENT", "KILL", "ID", listener), 1)
        # Redis has nowhere to send this key's invalidation now: the gateway must have emptied
        # its cache when the connection dropped (it reads that socket before serving a hit).
        self.assertEqual(self.other_client("DEL", session_key(PREFIX, token)), 1)
        token2 = self.assert_session_gone(gw, token, handle, "right after the kill")
        handle2 = self.handle_of(self.last_upstream_headers())

        self.tracking_again(listener, "redir")
        self.warm(gw, token2, handle2)  # hits resume
        self.assertEqual(self.other_client("DEL", session_key(PREFIX, token2)), 1)
        self.assert_session_gone(gw, token2, handle2, "after the reconnection")

    def test_command_connection_killed(self):
        gw = self.cache_gateway()
        token, handle = self.warm_session(gw)
        command = self.tracked()["id"]
        self.assertEqual(self.redis.cmd("CLIENT", "KILL", "ID", command), 1)
        # The new command connection tracks only what it reads itself: a record cached before the
        # drop would never be invalidated, so the drop must have emptied the cache.
        self.tracking_again(command, "id")
        self.assertEqual(self.other_client("DEL", session_key(PREFIX, token)), 1)
        token2 = self.assert_session_gone(gw, token, handle, "after the reconnection")
        self.warm(gw, token2, self.handle_of(self.last_upstream_headers()))


class InvalidationBurst(CacheTestCase):
    def test_a_burst_of_reports_ahead_of_the_one_that_matters_is_read_whole(self):
        # More reports waiting than one read of the socket takes (hiredis reads 16 KiB at a time,
        # a report is ~130 bytes): the one for the session visited comes behind 1,000 others.
        # They all reached the machine before the request did (the gateway was stopped
        # meanwhile), so the request must not be answered from the copy.
        gw = self.cache_gateway()
        token, handle = self.warm_session(gw)
        others = [random_token() for _ in range(1000)]
        c = HttpClient(gw.port, self)
        for t in others:  # each unknown token's key read once by the worker: tracked for it
            c.request("GET", "/echo", headers=[("Cookie", f"{COOKIE}={t}")])
            self.assertEqual(c.read_response().status, 200)
        c.close()
        gw.signal(signal.SIGSTOP)
        try:
            args = []
            for t in others:
                args += [session_key(PREFIX, t), "x"]
            self.assertEqual(self.redis.cmd("MSET", *args), b"OK")
            self.assertEqual(self.other_client("DEL", session_key(PREFIX, token)), 1)
            c = HttpClient(gw.port, self)
            c.request("GET", "/echo", headers=[("Cookie", f"{COOKIE}={token}"), ("Connection", "close")])
        finally:
            gw.signal(signal.SIGCONT)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertNotEqual(self.handle_of(self.seen(r)), handle, "served from the copy")


class MaxAge(CacheTestCase):
    def test_an_entry_older_than_local_cache_is_read_again(self):
        max_age = 0.3
        gw = self.cache_gateway(local_cache="300ms")
        token, handle = self.warm_session(gw)
        hits, reads = self.hits(gw), hgetall_calls(self.redis)
        optins = command_calls(self.redis, "client|caching")
        # Not a guess at how long something takes: the entry was read before the last warming
        # visit returned, so after this sleep it is older than max_age whatever the load.
        time.sleep(max_age + 0.1)
        self.assert_same_session(gw, token, handle, {}, "past max age")
        # The visit's own read, then the cache's tracked read (CLIENT CACHING yes, HGETALL), which
        # may leave just after the response: waited for, then counted exactly.
        wait_until(lambda: hgetall_calls(self.redis) - reads >= 2, 10.0,
                   message="a visit past max age was not read again, tracked")
        self.assertEqual(hgetall_calls(self.redis) - reads, 2)
        self.assertEqual(command_calls(self.redis, "client|caching") - optins, 1)
        self.assertEqual(self.hits(gw), hits)
        self.warm(gw, token, handle)  # and kept again

    def test_a_session_idle_past_its_timeout_is_not_served_from_the_cache(self):
        idle = 1.0
        gw = self.cache_gateway(idle_timeout="1s", absolute_timeout="1h")
        token, handle = self.warm_session(gw)
        # The copy itself is young (local_cache is 30s); the session it holds is not: its last
        # visit was before the last warming visit returned.
        time.sleep(idle + 0.2)
        self.assert_session_gone(gw, token, handle, "idle past its timeout")


if __name__ == "__main__":
    unittest.main()
