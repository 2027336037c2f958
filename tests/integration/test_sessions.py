"""Sessions end to end (issue 3): cookie issue and attributes, trusted headers to the application,
anti-spoofing, invalid/expired tokens, duplicate cookies, rotation/destroy/logout directives,
the application's Set-Cookie, excluded paths, and the token never leaking into logs or upstream."""

import json
import re
import time
import unittest

from harness import HttpClient, wait_until
from session_util import (COOKIE, EXPIRED_COOKIE_RE, IMF_DATE, TOKEN_RE, SessionTestCase, cookie_header,
                          header_values, non_canonical, prefixed, random_token, respond_target)


class FirstVisit(SessionTestCase):
    def test_new_session_cookie_exact_attributes(self):
        gw = self.gateway()
        r = self.get(gw, "/echo")
        self.assertEqual(r.status, 200)
        ours = self.our_set_cookies(r)
        self.assertEqual(len(ours), 1, r.headers)
        self.assertRegex(ours[0], rf"^{COOKIE}={TOKEN_RE.pattern}; Path=/; Max-Age=3600; Expires={IMF_DATE}; "
                                  r"HttpOnly; SameSite=Lax$")
        self.check_expires(ours[0], 3600)
        self.assertEqual(r.headers_all("Cache-Control"), ["no-store"])
        self.assert_client_sees_no_prefix(r)

    def test_cookie_attributes_when_configured(self):
        gw = self.gateway(cookie_secure=True, cookie_domain="example.test", cookie_path="/app",
                          cookie_samesite="Strict", idle_timeout="90s", cookie_name="sid")
        r = self.get(gw, "/app/echo")
        sc = r.headers_all("Set-Cookie")
        self.assertEqual(len(sc), 1, r.headers)
        self.assertRegex(sc[0], rf"^sid={TOKEN_RE.pattern}; Path=/app; Domain=example.test; Max-Age=90; "
                                rf"Expires={IMF_DATE}; Secure; HttpOnly; SameSite=Strict$")
        self.check_expires(sc[0], 90)

    def test_cookie_secure_false_and_auto_without_tls(self):
        for secure in (False, "auto"):
            with self.subTest(cookie_secure=secure):
                gw = self.gateway(cookie_secure=secure)
                sc = self.our_set_cookies(self.get(gw, "/echo"))
                self.assertEqual(len(sc), 1)
                self.assertNotIn("Secure", sc[0])

    def test_upstream_sees_handle_not_token_and_no_cookie(self):
        gw = self.gateway()
        r = self.get(gw, "/echo")
        token = self.issued_token(r)
        seen = self.seen(r)
        handle = self.handle_of(seen)
        self.assertNotEqual(handle, token)
        self.assertEqual(header_values(seen, "Cookie"), [])  # no cookie sent: none invented
        # Returning with only our cookie: the Cookie header is dropped altogether.
        r2 = self.get(gw, "/echo", token=token)
        seen2 = self.seen(r2)
        self.assertEqual(self.handle_of(seen2), handle)
        self.assertEqual(header_values(seen2, "Cookie"), [], seen2)
        self.assertNotIn(token, json.dumps(r2.json()))
        # Nothing under the prefix except X-Session-Id (no attributes yet).
        self.assertEqual([k.lower() for k, _ in prefixed(seen2)], ["x-session-id"])

    def test_other_cookies_forwarded(self):
        gw = self.gateway()
        token, handle = self.new_session(gw)
        r = self.get(gw, "/echo", headers=[("Cookie", f"a=1; {COOKIE}={token}; b=2")])
        seen = self.seen(r)
        self.assertEqual(header_values(seen, "Cookie"), ["a=1; b=2"])
        self.assertEqual(self.handle_of(seen), handle)
        # Also across two Cookie header fields, our cookie in the second one.
        r = self.get(gw, "/echo", headers=[("Cookie", "a=1"), ("Cookie", f"{COOKIE}={token}; c=3")])
        seen = self.seen(r)
        self.assertNotIn(token, json.dumps(seen))
        self.assertEqual(self.handle_of(seen), handle)
        self.assertEqual("; ".join(header_values(seen, "Cookie")), "a=1; c=3")

    def test_app_cache_control_private_kept_public_replaced(self):
        gw = self.gateway()
        r = self.get(gw, respond_target(("Cache-Control", "private, max-age=60")))
        self.issued_token(r)
        self.assertEqual(r.headers_all("Cache-Control"), ["private, max-age=60"])
        r = self.get(gw, respond_target(("Cache-Control", "public, max-age=600")))
        self.issued_token(r)
        self.assertEqual(r.headers_all("Cache-Control"), ["no-store"])
        # Without our Set-Cookie the application's caching is its own business.
        token, _ = self.new_session(gw)
        r = self.get(gw, respond_target(("Cache-Control", "public, max-age=600")), token=token)
        self.assert_no_set_cookie(r)
        self.assertEqual(r.headers_all("Cache-Control"), ["public, max-age=600"])


class ReturningVisit(SessionTestCase):
    def test_returning_visit_keeps_handle_without_set_cookie(self):
        gw = self.gateway()
        token, handle = self.new_session(gw)
        c = HttpClient(gw.port, self)
        for _ in range(3):  # keep-alive connection, several requests
            r = c.roundtrip("GET", "/echo", headers=[cookie_header(token)])
            self.assertEqual(self.handle_of(self.seen(r)), handle)
            self.assert_no_set_cookie(r)
            self.assertEqual(r.headers_all("Cache-Control"), [])

    def test_refresh_after_a_tenth_of_idle_timeout_resends_same_token(self):
        gw = self.gateway(idle_timeout="2s")
        token, handle = self.new_session(gw)
        time.sleep(0.35)  # > idle_timeout / 10 = 200ms
        r = self.get(gw, "/echo", token=token)
        self.assertEqual(self.handle_of(self.seen(r)), handle)
        ours = self.our_set_cookies(r)
        self.assertEqual(len(ours), 1, f"expected a refreshed cookie: {r.headers}")
        self.assertRegex(ours[0], rf"^{COOKIE}={re.escape(token)}; Path=/; Max-Age=2; Expires={IMF_DATE}; "
                                  r"HttpOnly; SameSite=Lax$")
        self.assertEqual(r.headers_all("Cache-Control"), ["no-store"])
        # The refresh moved last-seen: 1.2s of activity keeps a 2s session alive past 2s from creation.
        for _ in range(6):
            time.sleep(0.4)
            r = self.get(gw, "/echo", token=token)
            self.assertEqual(self.handle_of(self.seen(r)), handle)
            for v in self.our_set_cookies(r):
                self.assertTrue(v.startswith(f"{COOKIE}={token};"), v)


class ConnectionReuse(SessionTestCase):
    """Session state is per request, never per connection."""

    def test_keep_alive_requests_with_different_identities(self):
        gw = self.gateway()
        ta, ha = self.new_session(gw)
        self.get(gw, respond_target(("X-Session-Set-User", "alice")), token=ta)
        c = HttpClient(gw.port, self)
        r = c.roundtrip("GET", "/echo", headers=[cookie_header(ta)])
        self.assertEqual(sorted(prefixed(self.seen(r))), [("X-Session-Id", ha), ("X-Session-User", "alice")])
        r = c.roundtrip("GET", "/echo")  # same connection, no cookie: not alice
        t2 = self.issued_token(r, not_in=[ta])
        h2 = self.handle_of(self.seen(r))
        self.assertNotEqual(h2, ha)
        self.assertEqual(header_values(self.seen(r), "X-Session-User"), [])
        r = c.roundtrip("GET", respond_target(("X-Session-Control", "rotate")), headers=[cookie_header(ta)])
        ta2 = self.issued_token(r, not_in=[ta, t2])
        r = c.roundtrip("GET", "/echo", headers=[cookie_header(t2)])
        self.assertEqual(self.handle_of(self.seen(r)), h2)
        self.assert_no_set_cookie(r)
        r = c.roundtrip("GET", "/echo", headers=[cookie_header(ta2)])
        self.assertEqual(self.handle_of(self.seen(r)), ha)

    def test_pipelined_requests_with_different_identities(self):
        gw = self.gateway()
        ta, ha = self.new_session(gw)
        tb, hb = self.new_session(gw)
        c = HttpClient(gw.port, self)
        order = [ta, None, tb, ta, None]
        c.send(b"".join(
            f"GET /echo?i={i} HTTP/1.1\r\nHost: gw.test\r\n{'Cookie: ' + COOKIE + '=' + t + chr(13) + chr(10) if t else ''}"
            f"\r\n".encode() for i, t in enumerate(order)))
        fresh = set()
        for i, t in enumerate(order):
            r = c.read_response()
            seen = self.seen(r)
            self.assertEqual(r.json()["target"], f"/echo?i={i}")
            h = self.handle_of(seen)
            if t is None:
                self.issued_token(r, not_in=[ta, tb])
                self.assertNotIn(h, (ha, hb))
                fresh.add(h)
            else:
                self.assert_no_set_cookie(r)
                self.assertEqual(h, ha if t == ta else hb)
        self.assertEqual(len(fresh), 2)

    def test_bodyless_statuses_still_get_cookie(self):
        gw = self.gateway()
        for target in ("/status/204", "/status/304", "/status/404", "/status/500"):
            with self.subTest(target=target):
                r = self.get(gw, target)
                self.issued_token(r)
        c = HttpClient(gw.port, self)
        c.request("HEAD", "/echo")
        self.issued_token(c.read_response("HEAD"))


class Store(SessionTestCase):
    def test_max_sessions_evicts_least_recently_seen(self):
        gw = self.gateway({"store.memory": {"max_sessions": 2}})
        ta, ha = self.new_session(gw)
        tb, hb = self.new_session(gw)
        tc, hc = self.new_session(gw)  # evicts A
        r = self.get(gw, "/echo", token=tc)
        self.assertEqual(self.handle_of(self.seen(r)), hc)
        r = self.get(gw, "/echo", token=tb)
        self.assertEqual(self.handle_of(self.seen(r)), hb)
        r = self.get(gw, "/echo", token=ta)
        self.issued_token(r, not_in=[ta, tb, tc])
        self.assertNotIn(self.handle_of(self.seen(r)), (ha, hb, hc))


class HeaderPrefix(SessionTestCase):
    def test_configured_prefix(self):
        gw = self.gateway(header_prefix="X-Auth-")
        token = self.issued_token(self.get(gw, "/echo"))
        r = self.get(gw, respond_target(("X-Auth-Set-User", "carol"), ("X-Session-Set-User", "mallory")),
                     token=token)
        self.assertEqual(prefixed(r.headers, "X-Auth-"), [])
        self.assertEqual(r.headers_all("X-Session-Set-User"), ["mallory"])  # not ours any more: passes
        r = self.get(gw, "/echo", token=token,
                     headers=[("X-Auth-Id", "evil"), ("x-auth-user", "admin"), ("X-Session-Id", "other")])
        seen = self.seen(r)
        auth = sorted(prefixed(seen, "X-Auth-"))
        self.assertEqual([k for k, _ in auth], ["X-Auth-Id", "X-Auth-User"], seen)
        self.assertRegex(auth[0][1], r"^[0-9a-f]{32}$")
        self.assertEqual(auth[1][1], "carol")
        self.assertEqual(header_values(seen, "X-Session-Id"), ["other"])


class Spoofing(SessionTestCase):
    SPOOFS = [
        ("X-Session-Id", "evil"),
        ("x-session-id", "evil2"),
        ("X-SESSION-ID", "evil3"),
        ("X-Session-Id", "0123456789abcdef0123456789abcdef"),
        ("X-Session-User", "admin"),
        ("x-session-role", "root"),
        ("X-Session-Control", "destroy"),
        ("X-Session-Set-User", "admin"),
        ("X-Session-", "empty-suffix"),
    ]

    def make_user_session(self, gw):
        token, handle = self.new_session(gw)
        r = self.get(gw, respond_target(("X-Session-Set-User", "alice")), token=token)
        self.assertEqual(r.status, 200)
        return token, handle

    def test_client_session_headers_removed(self):
        gw = self.gateway()
        token, handle = self.make_user_session(gw)
        r = self.get(gw, "/echo", token=token, headers=self.SPOOFS)
        seen = self.seen(r)
        self.assertEqual(sorted((k, v) for k, v in prefixed(seen)),
                         [("X-Session-Id", handle), ("X-Session-User", "alice")], seen)
        self.assertNotIn("evil", json.dumps(seen))
        self.assertNotIn("admin", json.dumps(seen))
        # Without a cookie: a new session, and still none of the client's values.
        r = self.get(gw, "/echo", headers=self.SPOOFS)
        seen = self.seen(r)
        new_handle = self.handle_of(seen)
        self.assertNotEqual(new_handle, handle)
        self.assertEqual([(k, v) for k, v in prefixed(seen)], [("X-Session-Id", new_handle)])

    def test_spoofing_on_excluded_path(self):
        gw = self.gateway()
        token, _ = self.new_session(gw)
        r = self.get(gw, "/static/app.js", token=token, headers=self.SPOOFS)
        self.assertEqual(prefixed(self.seen(r)), [])

    def test_underscore_variant_rejected_by_default(self):
        gw = self.gateway()
        r = self.get(gw, "/echo", headers=[("X_Session_Id", "evil")])
        self.assertEqual(r.status, 400)
        self.assertEqual(len(self.up.requests), 0, "a rejected request reached the upstream")

    def test_underscore_variant_dropped(self):
        gw = self.gateway({"server": {"underscore_headers": "drop"}})
        token, handle = self.make_user_session(gw)
        r = self.get(gw, "/echo", token=token,
                     headers=[("X_Session_Id", "evil"), ("x_session_user", "admin"), ("X-Session_Role", "root")])
        seen = self.seen(r)
        self.assertEqual(sorted(prefixed(seen)), [("X-Session-Id", handle), ("X-Session-User", "alice")], seen)
        self.assertNotIn("evil", json.dumps(seen))

    def test_connection_header_cannot_strip_injected(self):
        gw = self.gateway()
        token, handle = self.make_user_session(gw)
        r = self.get(gw, "/echo", token=token,
                     headers=[("Connection", "X-Session-Id, X-Session-User, Cookie")])
        seen = self.seen(r)
        self.assertEqual(sorted(prefixed(seen)), [("X-Session-Id", handle), ("X-Session-User", "alice")], seen)
        # New session case too.
        r = self.get(gw, "/echo", headers=[("Connection", "X-Session-Id")])
        self.handle_of(self.seen(r))


class InvalidTokens(SessionTestCase):
    def assert_fresh(self, gw, value, live_handles, live_tokens=()):
        r = self.get(gw, "/echo", headers=[("Cookie", f"{COOKIE}={value}")])
        token = self.issued_token(r, not_in=[value, *live_tokens])
        handle = self.handle_of(self.seen(r))
        self.assertNotIn(handle, live_handles, f"cookie value {value!r} resolved to a live session")
        return token, handle

    def test_unknown_well_shaped_token_not_adopted(self):
        gw = self.gateway()
        forged = random_token()
        t1, h1 = self.assert_fresh(gw, forged, [])
        # Sending the forged token again still gives a new session: it was never stored.
        t2, h2 = self.assert_fresh(gw, forged, [h1])
        self.assertNotEqual(t1, t2)
        # The issued token works.
        r = self.get(gw, "/echo", token=t1)
        self.assertEqual(self.handle_of(self.seen(r)), h1)
        self.assert_no_set_cookie(r)

    def test_malformed_values(self):
        gw = self.gateway()
        live, handle = self.new_session(gw)
        for value in (live[:42], live + "A", live[:-1], "", "x", f'"{live}"', live[:20] + "+" + live[21:],
                      live[:20] + "/" + live[21:], live[:20] + "." + live[21:], live[:20] + "%2D" + live[23:],
                      non_canonical(live), live + "=", live.lower() if live.lower() != live else live.upper()):
            with self.subTest(value=value):
                self.assert_fresh(gw, value, [handle], [live])
        # The live session was not disturbed.
        r = self.get(gw, "/echo", token=live)
        self.assertEqual(self.handle_of(self.seen(r)), handle)

    def test_idle_expiry(self):
        gw = self.gateway(idle_timeout="1s", absolute_timeout="1h")
        token, handle = self.new_session(gw)
        time.sleep(1.5)
        self.assert_fresh(gw, token, [handle], [token])
        # And the expired token stays dead.
        self.assert_fresh(gw, token, [handle], [token])

    def test_absolute_expiry_despite_activity(self):
        gw = self.gateway(idle_timeout="1s", absolute_timeout="2s")
        r = self.get(gw, "/echo")
        created = time.monotonic()
        token = self.issued_token(r)
        handle = self.handle_of(self.seen(r))
        while time.monotonic() - created < 1.6:  # active use: never idle-expired
            time.sleep(0.3)
            r = self.get(gw, "/echo", token=token)
            self.assertEqual(self.handle_of(self.seen(r)), handle)
        while time.monotonic() - created < 2.3:
            time.sleep(0.3)
        self.assert_fresh(gw, token, [handle], [token])


class DuplicateCookies(SessionTestCase):
    def test_two_valid_cookies_treated_as_none(self):
        gw = self.gateway()
        ta, ha = self.new_session(gw)
        tb, hb = self.new_session(gw)
        for headers in ([cookie_header(ta, tb)], [cookie_header(ta), cookie_header(tb)]):
            with self.subTest(headers=len(headers)):
                r = self.get(gw, "/echo", headers=headers)
                self.issued_token(r, not_in=[ta, tb])
                self.assertNotIn(self.handle_of(self.seen(r)), (ha, hb))

    def test_one_valid_cookie_among_others_is_used(self):
        gw = self.gateway()
        ta, ha = self.new_session(gw)
        for value in (f"{COOKIE}=garbage; {COOKIE}={ta}", f"{COOKIE}={ta}; {COOKIE}=garbage",
                      f"{COOKIE}={random_token()}; {COOKIE}={ta}", f"{COOKIE}={ta}; {COOKIE}={ta}",
                      f'{COOKIE}="{ta}"; {COOKIE}={ta}'):
            with self.subTest(cookie=value):
                r = self.get(gw, "/echo", headers=[("Cookie", value)])
                seen = self.seen(r)
                self.assertEqual(self.handle_of(seen), ha)
                self.assert_no_set_cookie(r)
                self.assertEqual(header_values(seen, "Cookie"), [])


class Directives(SessionTestCase):
    def log_events(self, gw, wanted):
        def find():
            ev = [(e.get("session"), e.get("session_event")) for e in gw.access_log_lines()]
            return ev if all(w in ev for w in wanted) else None
        return wait_until(find, 5.0, message=lambda: f"access log events {wanted}: {gw.logs()[0][-2000:]}")

    def test_rotate_with_attribute(self):
        gw = self.gateway(rotation_grace="0s")  # the grace window: test_integrity.py
        old, handle = self.new_session(gw)
        r = self.get(gw, respond_target(("X-Session-Control", "rotate"), ("X-Session-Set-User", "alice"),
                                        ("X-Session-Other", "x")), token=old)
        self.assertEqual(r.status, 200)
        self.assert_client_sees_no_prefix(r)
        new = self.issued_token(r, not_in=[old])
        self.assertRegex(self.our_set_cookies(r)[0], rf"; Max-Age=3600; Expires={IMF_DATE}; HttpOnly; SameSite=Lax$")
        self.assertEqual(r.headers_all("Cache-Control"), ["no-store"])
        # The upstream saw the old session for that request.
        self.assertEqual(self.handle_of(self.last_upstream_headers()), handle)
        r = self.get(gw, "/echo", token=new)
        seen = self.seen(r)
        self.assertEqual(sorted(prefixed(seen)), [("X-Session-Id", handle), ("X-Session-User", "alice")])
        self.assert_no_set_cookie(r)
        # The old token no longer works: a new, empty session.
        r = self.get(gw, "/echo", token=old)
        self.issued_token(r, not_in=[old, new])
        seen = self.seen(r)
        self.assertNotEqual(self.handle_of(seen), handle)
        self.assertEqual(header_values(seen, "X-Session-User"), [])
        self.log_events(gw, [(handle, "rotated")])

    def test_rotate_or_destroy_on_a_brand_new_session(self):
        gw = self.gateway()
        r = self.get(gw, respond_target(("X-Session-Control", "rotate"), ("X-Session-Set-User", "dora")))
        token = self.issued_token(r)  # exactly one Set-Cookie: the rotated token
        handle = self.handle_of(self.last_upstream_headers())
        seen = self.seen(self.get(gw, "/echo", token=token))
        self.assertEqual(sorted(prefixed(seen)), [("X-Session-Id", handle), ("X-Session-User", "dora")])
        r = self.get(gw, respond_target(("X-Session-Control", "destroy")))
        ours = self.our_set_cookies(r)
        self.assertEqual(len(ours), 1, r.headers)
        self.assertRegex(ours[0], f"^{EXPIRED_COOKIE_RE.pattern}$")

    def test_attributes_set_case_and_remove(self):
        gw = self.gateway()
        token, handle = self.new_session(gw)
        r = self.get(gw, respond_target(("X-Session-Set-User", "alice"), ("x-session-set-TENANT-ID", "t1"),
                                        ("X-Session-Set-Role_Name", "admin")), token=token)
        self.assert_client_sees_no_prefix(r)
        self.assert_no_set_cookie(r)
        seen = self.seen(self.get(gw, "/echo", token=token))
        self.assertEqual(sorted(prefixed(seen)), [("X-Session-Id", handle), ("X-Session-Role-Name", "admin"),
                                                  ("X-Session-Tenant-Id", "t1"), ("X-Session-User", "alice")])
        r = self.get(gw, respond_target(("X-Session-Set-User", ""), ("X-Session-Set-Tenant-Id", "t2")), token=token)
        self.assert_client_sees_no_prefix(r)
        seen = self.seen(self.get(gw, "/echo", token=token))
        self.assertEqual(sorted(prefixed(seen)), [("X-Session-Id", handle), ("X-Session-Role-Name", "admin"),
                                                  ("X-Session-Tenant-Id", "t2")])

    def test_destroy(self):
        gw = self.gateway()
        token, handle = self.new_session(gw)
        r = self.get(gw, respond_target(("X-Session-Control", "destroy")), token=token)
        self.assertEqual(r.status, 200)
        self.assert_client_sees_no_prefix(r)
        ours = self.our_set_cookies(r)
        self.assertEqual(len(ours), 1, r.headers)
        self.assertRegex(ours[0], f"^{EXPIRED_COOKIE_RE.pattern}$")
        self.assertEqual(r.headers_all("Cache-Control"), ["no-store"])
        r = self.get(gw, "/echo", token=token)
        self.issued_token(r, not_in=[token])
        self.assertNotEqual(self.handle_of(self.seen(r)), handle)
        self.log_events(gw, [(handle, "destroyed")])

    def test_destroy_wins_over_rotate(self):
        gw = self.gateway()
        token, handle = self.new_session(gw)
        r = self.get(gw, respond_target(("X-Session-Control", "rotate"), ("X-Session-Control", "destroy")),
                     token=token)
        ours = self.our_set_cookies(r)
        self.assertEqual(len(ours), 1, r.headers)
        self.assertRegex(ours[0], f"^{EXPIRED_COOKIE_RE.pattern}$")
        r = self.get(gw, "/echo", token=token)
        self.assertNotEqual(self.handle_of(self.seen(r)), handle)

    def test_logout_path(self):
        gw = self.gateway(logout_path="/logout", logout_redirect="/bye")
        token, handle = self.new_session(gw)
        self.get(gw, respond_target(("X-Session-Set-User", "alice")), token=token)
        before = len(self.up.requests)
        r = self.get(gw, "/logout", token=token)
        self.assertEqual(r.status, 303)
        self.assertEqual(r.header("Location"), "/bye")
        ours = self.our_set_cookies(r)
        self.assertEqual(len(ours), 1, r.headers)
        self.assertRegex(ours[0], f"^{EXPIRED_COOKIE_RE.pattern}$")
        self.assertEqual(len(self.up.requests), before, "logout was forwarded to the application")
        self.assert_client_sees_no_prefix(r)
        r = self.get(gw, "/echo", token=token)
        self.issued_token(r, not_in=[token])
        seen = self.seen(r)
        self.assertNotEqual(self.handle_of(seen), handle)
        self.assertEqual(header_values(seen, "X-Session-User"), [])
        self.log_events(gw, [(handle, "destroyed")])

    def test_logout_with_several_live_sessions_destroys_them_all(self):
        # A second live cookie (planted from a sibling domain, say) makes the request ambiguous:
        # it gets no session, but the logout must still end every session it presented.
        gw = self.gateway(logout_path="/logout")
        ta, ha = self.new_session(gw)
        tb, hb = self.new_session(gw)
        r = self.get(gw, "/logout", headers=[cookie_header(ta, tb)])
        self.assertEqual(r.status, 303)
        self.assertRegex(self.our_set_cookies(r)[0], f"^{EXPIRED_COOKIE_RE.pattern}$")
        for token, handle in ((ta, ha), (tb, hb)):
            r = self.get(gw, "/echo", token=token)
            self.issued_token(r, not_in=[ta, tb])
            self.assertNotEqual(self.handle_of(self.seen(r)), handle, "a session outlived the logout")

    def test_logout_without_session(self):
        gw = self.gateway(logout_path="/logout")
        for headers in ([], [cookie_header(random_token())]):
            r = self.get(gw, "/logout?next=1", headers=headers)
            self.assertEqual(r.status, 303)
            self.assertEqual(r.header("Location"), "/")
            ours = self.our_set_cookies(r)
            self.assertEqual(len(ours), 1, r.headers)  # no new session created for a logout
            self.assertRegex(ours[0], f"^{EXPIRED_COOKIE_RE.pattern}$")
        self.assertEqual(len(self.up.requests), 0)

    def test_bad_directives_ignored(self):
        gw = self.gateway(max_attributes=2, max_attribute_bytes=40)
        token, handle = self.new_session(gw)
        r = self.get(gw, respond_target(
            ("X-Session-Set-A", "1"), ("X-Session-Set-B", "2"), ("X-Session-Set-C", "3"),  # C: too many
            ("X-Session-Set-Id", "evil"),                 # reserved name
            ("X-Session-Control", "promote"),             # unknown control
            ("X-Session-Set-B", "x" * 60),                # over max_attribute_bytes: B stays "2"
            ("X-Session-Set-A", "a\tb"),                  # control byte inside the value: A stays "1"
            ("X-Session-Set-", "noname"),                 # no name
        ), token=token)
        self.assertEqual(r.status, 200)
        self.assert_client_sees_no_prefix(r)
        self.assert_no_set_cookie(r)  # no rotate, no destroy
        seen = self.seen(self.get(gw, "/echo", token=token))
        self.assertEqual(sorted(prefixed(seen)), [("X-Session-A", "1"), ("X-Session-B", "2"),
                                                  ("X-Session-Id", handle)], seen)
        err = gw.logs()[1]
        for what in ("too many session attributes", "reserved", "session attributes too large",
                     "control or non-ASCII", "X-Session-Control"):
            self.assertIn(what, err, f"refused directive not logged: {what}")

    def test_non_ascii_value_refused(self):
        gw = self.gateway()
        token, handle = self.new_session(gw)
        r = self.get(gw, respond_target(("X-Session-Set-User", "caf\u00e9")), token=token)
        self.assertEqual(r.status, 200, r)
        self.assert_client_sees_no_prefix(r)
        seen = self.seen(self.get(gw, "/echo", token=token))
        self.assertEqual(prefixed(seen), [("X-Session-Id", handle)])

    def test_directives_without_session_on_excluded_path_are_stripped(self):
        gw = self.gateway()
        r = self.get(gw, respond_target(("X-Session-Control", "rotate"), ("X-Session-Set-User", "x"))
                     .replace("/respond", "/static/respond", 1))
        self.assert_client_sees_no_prefix(r)
        self.assert_no_set_cookie(r)


class AppSetCookie(SessionTestCase):
    def test_app_cannot_set_our_cookie(self):
        gw = self.gateway()
        target = respond_target(("Set-Cookie", f"{COOKIE}=evil; Path=/"), ("Set-Cookie", "other=1; Path=/"),
                                ("Set-Cookie", f"{COOKIE} =evil2"), ("Set-Cookie", f"{COOKIE}\t=evil3"),
                                ("Set-Cookie", f" {COOKIE}=evil4"), ("Set-Cookie", f"{COOKIE}x=3"))
        r = self.get(gw, target)  # new session: ours plus the app's other cookies
        token = self.issued_token(r)
        all_sc = r.headers_all("Set-Cookie")
        self.assertNotIn("evil", " ".join(all_sc), all_sc)
        self.assertIn("other=1; Path=/", all_sc)
        self.assertIn(f"{COOKIE}x=3", all_sc)
        r = self.get(gw, target, token=token)  # returning session: no cookie of ours at all
        all_sc = r.headers_all("Set-Cookie")
        self.assertEqual(sorted(all_sc), sorted(["other=1; Path=/", f"{COOKIE}x=3"]))
        r = self.get(gw, "/echo", token=token)
        self.assert_no_set_cookie(r)


class Exclude(SessionTestCase):
    def test_excluded_path_gets_no_session(self):
        gw = self.gateway(exclude=["/static/*", "/assets/*.css"])
        for target in ("/static/x.css", "/static/a/b/c.js?v=1", "/assets/site.css"):
            with self.subTest(target=target):
                r = self.get(gw, target)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.headers_all("Set-Cookie"), [])
                self.assertEqual(r.headers_all("Cache-Control"), [])
                self.assertEqual(prefixed(self.seen(r)), [])
        # With a live cookie: still no session headers, and the cookie is still removed.
        token, _ = self.new_session(gw)
        r = self.get(gw, "/static/x.css", headers=[("Cookie", f"a=1; {COOKIE}={token}")])
        seen = self.seen(r)
        self.assertEqual(prefixed(seen), [])
        self.assertEqual(header_values(seen, "Cookie"), ["a=1"])
        self.assertEqual(r.headers_all("Set-Cookie"), [])
        # A path outside the patterns gets a session.
        self.issued_token(self.get(gw, "/assets/site.js"))


class TokenNeverLeaks(SessionTestCase):
    """Every token issued over a run (new, returning, refreshed, rotated, destroyed, logout) is in
    no stdout/stderr line and in nothing the upstream received."""

    def setUp(self):
        super().setUp()
        self.issued = []

    def get(self, gw, target="/echo", token=None, headers=()):
        r = super().get(gw, target, token=token, headers=headers)
        for v in self.our_set_cookies(r):
            m = re.match(rf"{COOKIE}=([^;]+)", v)
            if m:
                self.issued.append(m.group(1))
        return r

    def test_token_in_no_log_and_no_upstream_request(self):
        gw = self.gateway({"log": {"level": "debug"}}, idle_timeout="2s", logout_path="/logout",
                          rotation_grace="0s")
        t, _ = self.new_session(gw)                                                  # new
        self.get(gw, "/echo", token=t)                                               # returning
        self.get(gw, respond_target(("X-Session-Set-User", "bob")), token=t)         # attribute
        r = self.get(gw, respond_target(("X-Session-Control", "rotate")), token=t)   # rotated
        t2 = self.issued_token(r, not_in=[t])
        self.get(gw, "/echo", token=t)                                               # old token: new session
        time.sleep(0.25)
        r = self.get(gw, "/echo", token=t2)                                          # refreshed
        self.assertEqual(self.our_set_cookies(r)[0].split(";")[0], f"{COOKIE}={t2}")
        self.get(gw, respond_target(("X-Session-Set-Bad", "a\tb")), token=t2)      # rejected directive (logged)
        self.get(gw, respond_target(("X-Session-Control", "bogus")), token=t2)      # unknown control (logged)
        self.get(gw, "/echo", headers=[("Cookie", f"{COOKIE}={t2}; {COOKIE}={t}")])  # duplicate
        t3, _ = self.new_session(gw)
        self.get(gw, respond_target(("X-Session-Control", "destroy")), token=t3)     # destroyed
        self.get(gw, "/echo", token=t3)                                              # destroyed token
        t4, _ = self.new_session(gw)
        self.get(gw, "/logout", token=t4)                                            # logout
        self.get(gw, "/echo", token=t4)                                              # logged-out token
        self.get(gw, "/static/x", token=t2)                                          # excluded
        self.get(gw, "/echo", headers=[("Cookie", f"{COOKIE}={random_token()}")])   # forged
        issued = set(self.issued)
        self.assertGreaterEqual(len(issued), 8, self.issued)
        self.assertTrue({t, t2, t3, t4} <= issued)
        n = 17
        wait_until(lambda: len(gw.access_log_lines()) >= n, 5.0,
                   message=lambda: f"{n} access log lines: {gw.logs()[0][-3000:]}")
        out, err = gw.logs()
        upstream_dump = json.dumps(self.up.requests)
        for tok in issued:
            self.assertNotIn(tok, out, "token in the access log (stdout)")
            self.assertNotIn(tok, err, "token in stderr")
            self.assertNotIn(tok, upstream_dump, "token reached the upstream")
        entries = gw.access_log_lines()
        events = {e.get("session_event") for e in entries}
        self.assertTrue({"new", "rotated", "destroyed"} <= events, events)
        for e in entries:
            if e.get("session"):
                self.assertRegex(e["session"], r"^[0-9a-f]{32}$")


if __name__ == "__main__":
    unittest.main()
