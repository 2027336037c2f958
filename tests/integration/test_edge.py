"""The HTTP edge of session integrity (issue 13 items 7, 8, 9, 10, 12), against the real binary:

- forwarding headers (Forwarded, X-Real-IP, X-Forwarded-Port/-Prefix, ...) from a peer outside
  server.trusted_proxies never reach the application; from a trusted one they do;
- Host must be uri-host[:port] (RFC 9112 3.2), an absolute-form target's authority replaces Host,
  X-Forwarded-Host only ever carries a validated host;
- Secure under cookie_secure = "auto" follows a trusted proxy's X-Forwarded-Proto;
- logout_path: POST, or GET from the site's own pages only (logout CSRF); 405 for other methods;
- every response the gateway writes itself carries a Date within a minute of now.

The HTTPS redirect with server.canonical_host is in test_tls.py (RedirectListener); the
configuration checks (--check) are in test_cli.py.
"""

from __future__ import annotations

import email.utils
import time
import unittest

from harness import FREE_ADMIN_LISTEN, HttpClient, free_port, simple_get, wait_until
from ops_util import metric_value, reload, write_config
from session_util import COOKIE, SessionTestCase, header_values, respond_target

SAME_ORIGIN = ("Sec-Fetch-Site", "same-origin")
FORWARDING = [("Forwarded", "for=203.0.113.9;proto=https;host=evil.example"),
              ("X-Real-IP", "203.0.113.9"), ("X-Forwarded-Port", "443"),
              ("X-Forwarded-Prefix", "/admin"), ("X-Forwarded-Ssl", "on"),
              ("X-Client-IP", "203.0.113.9"), ("True-Client-IP", "203.0.113.9")]
BAD_HOSTS = ["evil.example/path?x=", "a@evil.example", "a, b", "a b", "", "a,b", "example.com:x",
             "example.com:99999", "[::1", "exa%2fmple.com"]


def names(headers) -> list[str]:
    return [k.lower() for k, _ in headers]


class ForwardingHeaders(SessionTestCase):
    def test_untrusted_peer_forwarding_headers_are_removed(self):
        gw = self.gateway()
        spelled = FORWARDING + [("x-real-ip", "198.51.100.1"), ("FORWARDED", "for=198.51.100.1")]
        r = self.get(gw, "/echo", headers=spelled + [("X-Forwarded-For", "203.0.113.9"),
                                                      ("X-Forwarded-Proto", "https"),
                                                      ("X-Forwarded-Host", "evil.example")])
        seen = self.seen(r)
        for name, _ in spelled:
            self.assertNotIn(name.lower(), names(seen), f"{name} reached the application: {seen}")
        self.assertEqual(header_values(seen, "X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(header_values(seen, "X-Forwarded-Proto"), ["http"])
        self.assertEqual(header_values(seen, "X-Forwarded-Host"), ["gw.test"])

    def test_trusted_peer_forwarding_headers_are_kept(self):
        gw = self.gateway({"server": {"trusted_proxies": ["127.0.0.1/32"]}})
        r = self.get(gw, "/echo", headers=FORWARDING + [("X-Forwarded-For", "203.0.113.9"),
                                                         ("X-Forwarded-Host", "public.example")])
        seen = self.seen(r)
        for name, value in FORWARDING:
            self.assertEqual(header_values(seen, name), [value], seen)
        self.assertEqual(header_values(seen, "X-Forwarded-For"), ["203.0.113.9, 127.0.0.1"])
        self.assertEqual(header_values(seen, "X-Forwarded-Host"), ["public.example"])

    def test_trusted_peer_invalid_forwarded_host_is_replaced_by_host(self):
        gw = self.gateway({"server": {"trusted_proxies": ["127.0.0.1/32"]}})
        for bad in ("evil.example/path?x=", "a@evil.example", "a, b"):
            with self.subTest(forwarded_host=bad):
                r = self.get(gw, "/echo", headers=[("X-Forwarded-Host", bad)])
                self.assertEqual(header_values(self.seen(r), "X-Forwarded-Host"), ["gw.test"])


class HostValidation(SessionTestCase):
    def raw(self, gw, data: bytes):
        c = HttpClient(gw.port, self)
        c.send(data)
        return c.read_response(), c

    def test_invalid_host_gets_400_and_is_not_forwarded(self):
        gw = self.gateway()
        for host in BAD_HOSTS:
            with self.subTest(host=host):
                r, c = self.raw(gw, b"GET /echo HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n")
                self.assertEqual(r.status, 400, r)
                c.assert_closed(self)
        self.assertEqual(self.up.requests, [], "a request with an invalid Host was forwarded")

    def test_missing_or_duplicate_host_on_http11_gets_400(self):
        gw = self.gateway()
        for data in (b"GET /echo HTTP/1.1\r\n\r\n",
                     b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nHost: gw.test\r\n\r\n",
                     b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nhost: evil.example\r\n\r\n"):
            with self.subTest(request=data):
                r, _ = self.raw(gw, data)
                self.assertEqual(r.status, 400, r)
        self.assertEqual(self.up.requests, [])

    def test_valid_hosts_pass(self):
        gw = self.gateway()
        for host in ("gw.test:8080", "127.0.0.1", "[::1]:8080", "Under_Score.example"):
            with self.subTest(host=host):
                r = self.get(gw, "/echo", headers=[("Host", host)])
                self.assertEqual(header_values(self.seen(r), "Host"), [host])
                self.assertEqual(header_values(self.seen(r), "X-Forwarded-Host"), [host])

    def test_absolute_form_authority_replaces_host(self):
        gw = self.gateway()
        r, _ = self.raw(gw, b"GET http://other.test:81/echo?abs=1 HTTP/1.1\r\nHost: gw.test\r\n"
                            b"Connection: close\r\n\r\n")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["target"], "/echo?abs=1")
        seen = [tuple(h) for h in body["headers"]]
        self.assertEqual(header_values(seen, "Host"), ["other.test:81"])
        self.assertEqual(header_values(seen, "X-Forwarded-Host"), ["other.test:81"])


class SecureBehindProxy(SessionTestCase):
    def cookie_of(self, r) -> str:
        ours = self.our_set_cookies(r)
        self.assertEqual(len(ours), 1, r.headers)
        return ours[0]

    def test_trusted_x_forwarded_proto_https_makes_the_cookie_secure(self):
        gw = self.gateway({"server": {"trusted_proxies": ["127.0.0.1/32"]}})
        r = self.get(gw, "/echo", headers=[("X-Forwarded-Proto", "https")])
        self.assertIn("; Secure", self.cookie_of(r))
        r = self.get(gw, "/echo", headers=[("X-Forwarded-Proto", "http")])
        self.assertNotIn("Secure", self.cookie_of(r))

    def test_untrusted_x_forwarded_proto_is_not_heard(self):
        gw = self.gateway()
        r = self.get(gw, "/echo", headers=[("X-Forwarded-Proto", "https")])
        self.assertNotIn("Secure", self.cookie_of(r))

    def test_trusted_proxy_without_x_forwarded_proto_is_warned_once(self):
        gw = self.gateway({"server": {"trusted_proxies": ["127.0.0.1/32"]}})
        for _ in range(3):
            self.assertNotIn("Secure", self.cookie_of(self.get(gw, "/echo")))
        wait_until(lambda: "without X-Forwarded-Proto" in gw.logs()[1], 10,
                   message="the undecidable Secure warning")
        self.assertEqual(gw.logs()[1].count("without X-Forwarded-Proto"), 1, gw.logs()[1])


class LogoutCsrf(SessionTestCase):
    def signed_in(self, gw):
        token, handle = self.new_session(gw)
        r = self.get(gw, respond_target(("X-Session-Set-User", "alice")), token=token)
        self.assertEqual(r.status, 200, r)
        return token, handle

    def still_signed_in(self, gw, token, handle):
        seen = self.seen(self.get(gw, "/echo", token=token))
        self.assertEqual(header_values(seen, "X-Session-Id"), [handle], "the session was destroyed")
        self.assertEqual(header_values(seen, "X-Session-User"), ["alice"])

    def logged_out(self, gw, token, handle):
        seen = self.seen(self.get(gw, "/echo", token=token))
        self.assertNotEqual(header_values(seen, "X-Session-Id"), [handle], "the session survived logout")

    def test_cross_site_get_is_refused_and_destroys_nothing(self):
        gw = self.gateway({"admin": {"listen": FREE_ADMIN_LISTEN}}, logout_path="/logout")
        token, handle = self.signed_in(gw)
        cases = [[("Sec-Fetch-Site", "cross-site")], [("Sec-Fetch-Site", "same-site")],
                 [("Origin", "https://evil.example")], [("Origin", "null")],
                 [("Referer", "https://evil.example/page")],
                 [("Referer", "http://gw.test.evil.example/")],
                 [],  # no evidence at all: a plain <img src> from an old browser, or curl
                 [("Sec-Fetch-Site", "cross-site"), ("Referer", "http://gw.test/")]]
        before = len(self.up.requests)
        for headers in cases:
            with self.subTest(headers=headers):
                r = self.get(gw, "/logout", token=token, headers=headers)
                self.assertEqual(r.status, 403, r)
                self.assertEqual(self.our_set_cookies(r), [], "a refused logout expired the cookie")
        self.assertEqual(len(self.up.requests), before, "a logout request was forwarded")
        self.still_signed_in(gw, token, handle)
        self.assertEqual(metric_value(gw.admin_port, "sessiongate_logout_refused_total"), len(cases))
        wait_until(lambda: "logout CSRF" in gw.logs()[1], 10, message="the info log line")

    def test_same_origin_get_logs_out(self):
        gw = self.gateway(logout_path="/logout")
        for headers in ([SAME_ORIGIN], [("Sec-Fetch-Site", "none")], [("Origin", "http://gw.test")],
                        [("Referer", "http://gw.test/account?x=1")],
                        [("Referer", "http://GW.test:80/")]):
            with self.subTest(headers=headers):
                token, handle = self.signed_in(gw)
                r = self.get(gw, "/logout", token=token, headers=headers)
                self.assertEqual(r.status, 303, r)
                self.logged_out(gw, token, handle)

    def test_post_logs_out_from_anywhere(self):
        gw = self.gateway(logout_path="/logout")
        for headers in ([], [("Sec-Fetch-Site", "cross-site"), ("Origin", "https://idp.example")]):
            with self.subTest(headers=headers):
                token, handle = self.signed_in(gw)
                c = HttpClient(gw.port, self)
                r = c.roundtrip("POST", "/logout", body=b"x=1",
                                headers=headers + [("Cookie", f"{COOKIE}={token}")])
                self.assertEqual(r.status, 303, r)
                self.logged_out(gw, token, handle)

    def test_reload_refuses_a_logout_path_outside_cookie_path(self):
        # The browser would never send the cookie to /logout: the running configuration stays.
        gw = self.gateway(logout_path="/logout")
        token, handle = self.signed_in(gw)
        write_config(gw, {"session": {"cookie_path": "/app", "logout_path": "/logout"}})
        reload(gw, "failed")
        self.assertIn("is outside session.cookie_path", gw.logs()[1])
        r = self.get(gw, "/logout", token=token, headers=[SAME_ORIGIN])
        self.assertEqual(r.status, 303, r)  # the old logout_path, under the old cookie_path
        self.logged_out(gw, token, handle)

    def test_other_methods_get_405_with_allow(self):
        gw = self.gateway(logout_path="/logout")
        token, handle = self.signed_in(gw)
        for method in ("PUT", "DELETE", "HEAD", "PATCH"):
            with self.subTest(method=method):
                c = HttpClient(gw.port, self)
                r = c.roundtrip(method, "/logout", headers=[("Cookie", f"{COOKIE}={token}"), SAME_ORIGIN])
                self.assertEqual(r.status, 405, r)
                self.assertEqual(r.header("Allow"), "GET, POST")
        self.still_signed_in(gw, token, handle)


class DateOnLocalResponses(SessionTestCase):
    def assert_date(self, r, what: str):
        dates = r.headers_all("Date")
        self.assertEqual(len(dates), 1, f"{what}: expected one Date: {r.headers}")
        parsed = email.utils.parsedate_to_datetime(dates[0])
        self.assertLess(abs(parsed.timestamp() - time.time()), 60, f"{what}: Date {dates[0]}")
        self.assertTrue(dates[0].endswith(" GMT"), dates[0])

    def raw(self, port, data: bytes, method="GET"):
        c = HttpClient(port, self)
        c.send(data)
        return c.read_response(method)

    def test_every_local_response_kind_has_a_date(self):
        gw = self.gateway({"admin": {"listen": FREE_ADMIN_LISTEN}, "limits": {"max_body_bytes": 10}},
                          logout_path="/logout")
        token, _ = self.new_session(gw)
        kinds = {
            "health": simple_get(gw.port, "/healthz"),
            "readiness": simple_get(gw.port, "/readyz"),
            "health HEAD": HttpClient(gw.port, self).roundtrip("HEAD", "/healthz"),
            "logout 303": self.get(gw, "/logout", token=token, headers=[SAME_ORIGIN]),
            "logout 403": self.get(gw, "/logout"),
            "logout 405": HttpClient(gw.port, self).roundtrip("PUT", "/logout"),
            "400": self.raw(gw.port, b"GET /echo HTTP/1.1\r\nHost: a b\r\n\r\n"),
            "413": self.raw(gw.port, b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 99\r\n\r\n"),
            "505": self.raw(gw.port, b"GET /echo HTTP/1.2\r\nHost: gw.test\r\n\r\n"),
        }
        for path in ("/metrics", "/healthz", "/readyz", "/config", "/nope"):
            kinds["admin " + path] = simple_get(gw.admin_port, path)
        kinds["admin 405"] = HttpClient(gw.admin_port, self).roundtrip("POST", "/metrics", body=b"")
        for what, r in kinds.items():
            with self.subTest(kind=what, status=r.status):
                self.assert_date(r, what)
        self.assertEqual(kinds["400"].status, 400)
        self.assertEqual(kinds["413"].status, 413)
        self.assertEqual(kinds["505"].status, 505)

    def test_bad_gateway_has_a_date(self):
        dead = free_port()  # nothing listens there
        gw = self.gateway({"upstream": {"servers": [f"127.0.0.1:{dead}"]}})
        r = self.get(gw, "/echo")
        self.assertEqual(r.status, 502, r)
        self.assert_date(r, "502")


if __name__ == "__main__":
    unittest.main()
