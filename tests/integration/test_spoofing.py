"""Header spoofing (issue 8): no way of sending a reserved header (default prefix X-Session-) reaches
the application, asserted on what the upstream received; the session cookie never reaches it either.

Already covered elsewhere (not repeated): case variations and duplicates of X-Session-* and the
empty suffix (test_sessions.py Spoofing.test_client_session_headers_removed), `_` for `-`
rejected or dropped (Spoofing.test_underscore_variant_*), a Connection header naming the injected
headers (Spoofing.test_connection_header_cannot_strip_injected), the session cookie in a second
Cookie header (FirstVisit.test_other_cookies_forwarded), duplicate session cookies
(DuplicateCookies), a custom prefix (HeaderPrefix).
"""

import json
import unittest

from harness import Gateway, HttpClient
from raw_upstream import RecordingUpstream
from session_util import COOKIE, SessionTestCase, header_values, prefixed, respond_target

EVIL = ["evil", "admin", "root", "0123456789abcdef0123456789abcdef"]


class SpoofingEdges(SessionTestCase):
    def user_session(self, gw):
        token, handle = self.new_session(gw)
        r = self.get(gw, respond_target(("X-Session-Set-User", "alice")), token=token)
        self.assertEqual(r.status, 200, r)
        return token, handle

    def assert_only_ours(self, seen, handle, user="alice"):
        want = [("x-session-id", handle)] + ([("x-session-user", user)] if user else [])
        self.assertEqual(sorted((k.lower(), v) for k, v in prefixed(seen)), sorted(want), seen)
        dump = json.dumps(seen)
        for bad in EVIL:
            self.assertNotIn(bad, dump, f"a client-sent reserved value reached the application: {seen}")

    def test_more_spellings_and_many_duplicates(self):
        gw = self.gateway()
        token, handle = self.user_session(gw)
        spoofs = [("X-SeSsIoN-uSeR", "admin"), ("x-session-id", "\tevil"), ("X-Session-Id", ""),
                  ("X-Session-Idx", "evil"), ("X-Session-User-", "admin"), ("X-SESSION-ROLE", "root")]
        spoofs += [("X-Session-Id", "0123456789abcdef0123456789abcdef")] * 40
        spoofs += [("X-Session-User", "admin")] * 40
        r = self.get(gw, "/echo", token=token, headers=spoofs)
        self.assert_only_ours(self.seen(r), handle)

    def test_reserved_header_and_connection_naming_it(self):
        # Hop-by-hop removal and reserved-header removal together: the client's value is gone and
        # the injected header is still there.
        gw = self.gateway()
        token, handle = self.user_session(gw)
        for conn in ("X-Session-User", "x-session-id, X-Session-User", "keep-alive, X-SESSION-USER"):
            with self.subTest(connection=conn):
                r = self.get(gw, "/echo", token=token,
                             headers=[("X-Session-User", "admin"), ("X-Session-Id", "evil"), ("Connection", conn)])
                self.assert_only_ours(self.seen(r), handle)

    def test_injected_forwarding_headers_survive_connection_naming_them(self):
        gw = self.gateway()
        token, handle = self.user_session(gw)
        r = self.get(gw, "/echo", token=token,
                     headers=[("Connection", "X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Request-Id, "
                                             "X-Session-Id, X-Session-User, Host")])
        seen = self.seen(r)
        self.assert_only_ours(seen, handle)
        self.assertEqual(header_values(seen, "X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(header_values(seen, "X-Forwarded-Proto"), ["http"])
        self.assertEqual(header_values(seen, "X-Forwarded-Host"), ["gw.test"])
        self.assertEqual(len(header_values(seen, "X-Request-Id")), 1, seen)
        self.assertEqual(header_values(seen, "Host"), ["gw.test"])

    def test_reserved_headers_in_chunked_trailers_never_reach_the_application(self):
        gw = self.gateway()
        token, handle = self.user_session(gw)
        c = HttpClient(gw.port, self)
        c.send(f"POST /echo HTTP/1.1\r\nHost: gw.test\r\nCookie: {COOKIE}={token}\r\n"
               "Transfer-Encoding: chunked\r\nTrailer: X-Session-Id, X-Session-User\r\n\r\n"
               "5\r\nhello\r\n0\r\nX-Session-Id: evil\r\nX-Session-User: admin\r\nx_session_role: root\r\n"
               f"Cookie: {COOKIE}={token}\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        rec = r.json()
        self.assertEqual(rec["body"], "hello")
        self.assert_only_ours([tuple(h) for h in rec["headers"]], handle)
        self.assertEqual(rec["trailers"], [], "client trailers were forwarded to the application")
        self.assertNotIn(token, json.dumps(rec))
        # The connection stays usable and the next request is clean too.
        r = c.roundtrip("GET", "/echo", headers=[("Cookie", f"{COOKIE}={token}")])
        self.assert_only_ours(self.seen(r), handle)

    def test_websocket_upgrade_request_is_sanitized_too(self):
        # The tunnelled path builds its upstream request separately from plain requests.
        gw = self.gateway()
        token, handle = self.user_session(gw)
        c = HttpClient(gw.port, self)
        c.send(f"GET /ws HTTP/1.1\r\nHost: gw.test\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Session-User\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               f"X-Session-User: admin\r\nX-Session-Id: evil\r\nCookie: {COOKIE}={token}; a=1\r\n\r\n")
        self.assertEqual(c.read_head().status, 101)
        seen = [tuple(h) for h in self.up.requests[-1]["headers"]]
        self.assert_only_ours(seen, handle)
        self.assertEqual(header_values(seen, "Cookie"), ["a=1"])
        self.assertNotIn(token, json.dumps(seen))

    def test_obs_fold_continuations_are_refused(self):
        gw = self.gateway()
        token, _ = self.user_session(gw)
        before = len(self.up.requests)
        for fold in (b"X-Foo: a\r\n X-Session-Id: evil\r\n", b"X-Session-User: alice\r\n\tadmin\r\n",
                     b"X-Foo: a\r\n\tX-Session-User: admin\r\n", b"Cookie: a=1\r\n " + COOKIE.encode() + b"=x\r\n"):
            with self.subTest(fold=fold):
                c = HttpClient(gw.port, self)
                c.send(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nCookie: " + f"{COOKIE}={token}".encode() + b"\r\n"
                       + fold + b"\r\n")
                r = c.read_response()
                self.assertEqual(r.status, 400, r)
                c.assert_closed(self)
        self.assertEqual(len(self.up.requests), before, "a folded header reached the application")

    def test_whitespace_before_colon_in_a_reserved_name_is_refused(self):
        gw = self.gateway()
        for line in (b"X-Session-Id : evil", b"X-Session-Id\t: evil", b" X-Session-Id: evil"):
            with self.subTest(line=line):
                c = HttpClient(gw.port, self)
                c.send(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\n" + line + b"\r\n\r\n")
                self.assertEqual(c.read_response().status, 400)
        self.assertEqual(self.up.requests, [])

    def test_session_cookie_variants_are_recognised_and_never_forwarded(self):
        gw = self.gateway()
        token, handle = self.user_session(gw)
        recognised = [f"{COOKIE} = {token}", f"{COOKIE}= {token}", f"{COOKIE} ={token}", f"  {COOKIE}={token}  ",
                      f"{COOKIE}=\t{token}\t", f"{COOKIE}={token};", f"{COOKIE}={token};;", f";{COOKIE}={token}",
                      f"a=1;{COOKIE}={token};b=2", f"{COOKIE}={token}; {COOKIE}={token}",
                      f"{COOKIE}=; {COOKIE}={token}", f"{COOKIE}; {COOKIE}={token}"]
        for value in recognised:
            with self.subTest(cookie=value):
                r = self.get(gw, "/echo", headers=[("Cookie", value)])
                seen = self.seen(r)
                self.assertEqual(self.handle_of(seen), handle)
                self.assertNotIn(token, json.dumps(seen), "the token reached the application")
                self.assert_only_ours(seen, handle)
                self.assert_no_set_cookie(r)

    def test_malformed_session_cookies_are_not_adopted_and_not_forwarded(self):
        gw = self.gateway()
        token, handle = self.user_session(gw)
        # A quoted value (RFC 6265 allows DQUOTEs, a token never has them), a comma list (RFC 2965
        # style), a value with extra bytes: no session, a new one is issued, and the pair named
        # session_id is still removed from what the application sees.
        for value in (f'{COOKIE}="{token}"', f"{COOKIE}={token},x=1", f"{COOKIE}={token} x",
                      f"{COOKIE}={token}%00", f'{COOKIE}="{token}"; {COOKIE}="{token}"'):
            with self.subTest(cookie=value):
                r = self.get(gw, "/echo", headers=[("Cookie", value)])
                seen = self.seen(r)
                new = self.handle_of(seen)
                self.assertNotEqual(new, handle, "a malformed cookie resolved to the live session")
                self.issued_token(r, not_in=[token])
                self.assertNotIn(token, json.dumps(seen), "the token reached the application")
                self.assertEqual(prefixed(seen), [("X-Session-Id", new)])

    def test_cookie_names_are_case_sensitive(self):
        # RFC 6265 §5.4: cookie names are compared case-sensitively, so SESSION_ID is another cookie
        # (the application may read it; it is not ours): never adopted as the session.
        gw = self.gateway()
        token, handle = self.user_session(gw)
        r = self.get(gw, "/echo", headers=[("Cookie", f"{COOKIE.upper()}={token}")])
        seen = self.seen(r)
        self.assertNotEqual(self.handle_of(seen), handle)
        self.issued_token(r, not_in=[token])
        self.assertEqual(header_values(seen, "Cookie"), [f"{COOKIE.upper()}={token}"])


class ResponseTrailers(unittest.TestCase):
    def test_application_trailers_cannot_set_our_cookie_or_send_directives(self):
        # The client sees no trailer at all: a Set-Cookie for the session cookie or a session
        # directive in a chunked response's trailer section would otherwise bypass the head rules.
        up = RecordingUpstream(self, script={"/t": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                                  b"Trailer: Set-Cookie, X-Session-Control\r\n\r\n5\r\nhello\r\n0\r\n"
                                                  b"Set-Cookie: " + COOKIE.encode() + b"=evil; Path=/\r\n"
                                                  b"X-Session-Control: destroy\r\n\r\n"})
        gw = Gateway(self, up.port)
        c = HttpClient(gw.port, self)
        r = c.roundtrip("GET", "/t")
        self.assertEqual((r.status, r.body), (200, b"hello"))
        self.assertEqual(r.trailers, [])
        self.assertEqual(r.headers_all("Trailer"), [])
        self.assertNotIn("evil", json.dumps(r.headers))
        # The connection stays in step.
        r = c.roundtrip("GET", "/next")
        self.assertEqual(r.json()["target"], "/next")


if __name__ == "__main__":
    unittest.main()
