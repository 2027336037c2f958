"""The demo application (deploy/demo/app.py) behind the real gateway with the shipped gateway.toml,
through a plain HTTP client: login rotates the token and keeps the handle (and the cart), a wrong
password changes nothing, logout destroys the session, the cart is per session and HTML-escaped,
cross-site forms and client-claimed identities are refused, /static/* carries no session.
test_browser.py walks the same application in a real browser."""

import re
import unittest
import urllib.parse

from demo_util import ACCOUNTS, DemoApp, ShippedGateway
from harness import HttpClient
from session_util import COOKIE, EXPIRED_COOKIE_RE, TOKEN_RE

HANDLE_IN_PAGE = re.compile(r'<code id="handle">([0-9a-f]{32})</code>')


class DemoBehindGateway(unittest.TestCase):
    def setUp(self):
        self.app = DemoApp(self)
        self.gw = ShippedGateway(self, self.app.port)

    # -- helpers -----------------------------------------------------------------------------
    def request(self, method: str, target: str, token: str | None = None, form: dict | None = None,
                headers=()):
        hdrs = list(headers) + [("Connection", "close")]
        if token is not None:
            hdrs.append(("Cookie", f"{COOKIE}={token}"))
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            hdrs.append(("Content-Type", "application/x-www-form-urlencoded"))
        c = HttpClient(self.gw.port, self)
        c.request(method, target, headers=hdrs, body=body)
        resp = c.read_response(method)
        c.close()
        # The application's directives never reach the client.
        self.assertEqual([k for k, _ in resp.headers if k.lower().startswith("x-session-")], [], resp.headers)
        return resp

    def issued(self, resp) -> str | None:
        """The token in our Set-Cookie, None when there is none (an expiring one is checked apart)."""
        values = [v for v in resp.headers_all("Set-Cookie") if v.startswith(f"{COOKIE}=")]
        self.assertLessEqual(len(values), 1, resp.headers)
        if not values:
            return None
        m = re.match(rf"{COOKIE}=({TOKEN_RE.pattern}); ", values[0])
        self.assertIsNotNone(m, values[0])
        self.assertIn("; HttpOnly", values[0])
        return m.group(1)

    def page(self, target: str, token: str | None):
        resp = self.request("GET", target, token)
        self.assertEqual(resp.status, 200, resp)
        return resp, resp.body.decode()

    def visit(self) -> tuple[str, str]:
        """A first visit: (token, handle)."""
        resp, text = self.page("/", None)
        token = self.issued(resp)
        self.assertIsNotNone(token, resp.headers)
        self.assertIn('<p id="status">not signed in</p>', text)
        self.assertNotIn(token, text)  # the application never sees the token
        return token, HANDLE_IN_PAGE.search(text).group(1)

    def login(self, token: str, user: str = "alice", password: str | None = None):
        return self.request("POST", "/login", token, {"user": user, "password": password or ACCOUNTS[user]})

    # -- tests -------------------------------------------------------------------------------
    def test_login_rotates_the_token_and_keeps_the_handle(self):
        t0, handle = self.visit()
        r = self.login(t0)
        self.assertEqual((r.status, r.header("Location")), (303, "/"), r)
        t1 = self.issued(r)
        self.assertIsNotNone(t1, r.headers)
        self.assertNotEqual(t1, t0)
        _, text = self.page("/", t1)
        self.assertIn('signed in as <b id="user">alice</b>', text)
        self.assertEqual(HANDLE_IN_PAGE.search(text).group(1), handle)
        # Inside session.rotation_grace ("10s" in gateway.toml) the pre-login token still serves
        # the same, now signed-in session, with no Set-Cookie: the page's parallel requests
        # during login keep the user. The window's end is tested in test_integrity.py.
        r, text = self.page("/", t0)
        self.assertIn('signed in as <b id="user">alice</b>', text)
        self.assertIsNone(self.issued(r), r.headers)
        self.assertEqual(HANDLE_IN_PAGE.search(text).group(1), handle)

    def test_a_wrong_password_changes_nothing(self):
        t0, _ = self.visit()
        for user, password in (("alice", "wonderlanD"), ("bob", ACCOUNTS["alice"]), ("mallory", "x"),
                               ("alice", ""), ("", "")):
            with self.subTest(user=user, password=password):
                r = self.request("POST", "/login", t0, {"user": user, "password": password})
                self.assertEqual(r.status, 401, r)
                self.assertIn("Wrong user name or password", r.body.decode())
                self.assertIsNone(self.issued(r), r.headers)  # no rotation
                self.assertIn('<p id="status">not signed in</p>', self.page("/", t0)[1])

    def test_cart_is_per_session_escaped_and_survives_login(self):
        t0, _ = self.visit()
        item = '<script>alert("x")</script> & tea'
        r = self.request("POST", "/cart", t0, {"item": item})
        self.assertEqual((r.status, r.header("Location")), (303, "/cart"), r)
        _, text = self.page("/cart", t0)
        self.assertIn("<li>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; tea</li>", text)
        self.assertNotIn("<script>", text)
        t1 = self.issued(self.login(t0))
        _, text = self.page("/cart", t1)
        self.assertIn("Cart (1 item)", text)
        self.assertIn("&lt;script&gt;", text)
        # Another visitor has a cart of their own.
        other, _ = self.visit()
        self.assertIn('<p id="cart-empty">', self.page("/cart", other)[1])

    def test_the_cart_is_bounded(self):
        t0, _ = self.visit()
        for i in range(20):
            self.assertEqual(self.request("POST", "/cart", t0, {"item": f"item {i}"}).header("Location"), "/cart")
        r = self.request("POST", "/cart", t0, {"item": "one too many"})
        self.assertEqual((r.status, r.header("Location")), (303, "/cart?m=cart-full"), r)
        _, text = self.page("/cart?m=cart-full", t0)
        self.assertIn("The cart holds at most 20 items.", text)
        self.assertEqual(text.count("<li>"), 20)
        self.assertNotIn("one too many", text)
        for item in ("", "x" * 61, "tab\there"):
            with self.subTest(item=item):
                self.assertEqual(self.request("POST", "/cart", t0, {"item": item}).status, 400)

    def test_logout_destroys_the_session_and_the_cart(self):
        t0, handle = self.visit()
        t1 = self.issued(self.login(t0, "bob"))
        self.request("POST", "/cart", t1, {"item": "hammer"})
        r = self.request("POST", "/logout", t1)  # no body at all, as `curl -X POST` sends
        self.assertEqual((r.status, r.header("Location")), (303, "/?m=signed-out"), r)
        self.assertRegex(r.header("Set-Cookie", ""), EXPIRED_COOKIE_RE)
        r, text = self.page("/?m=signed-out", t1)
        self.assertIn("You have signed out", text)
        self.assertIn('<p id="status">not signed in</p>', text)
        self.assertNotIn(self.issued(r), (None, t0, t1))
        self.assertNotEqual(HANDLE_IN_PAGE.search(text).group(1), handle)
        self.assertNotIn("hammer", text)

    def test_cross_site_forms_are_refused(self):
        t0, _ = self.visit()
        r = self.request("POST", "/login", t0, {"user": "alice", "password": ACCOUNTS["alice"]},
                         headers=[("Origin", "http://attacker.example")])
        self.assertEqual(r.status, 403, r)
        self.assertIsNone(self.issued(r))
        # The same form from the gateway's own origin (the client's Host, which it forwards) works.
        r = self.request("POST", "/login", t0, {"user": "alice", "password": ACCOUNTS["alice"]},
                         headers=[("Origin", "http://gw.test")])
        self.assertEqual(r.status, 303, r)
        # Logging out and changing state take POST: a link or an image cannot do it.
        self.assertEqual(self.request("GET", "/logout", self.issued(r)).status, 405)

    def test_a_client_cannot_claim_an_identity(self):
        resp = self.request("GET", "/", None, headers=[("X-Session-User", "alice"), ("X-Session-Id", "0" * 32)])
        text = resp.body.decode()
        self.assertIn('<p id="status">not signed in</p>', text)
        self.assertNotIn("0" * 32, text)
        t0 = self.issued(resp)
        r = self.request("POST", "/set", t0, {"name": "User", "value": "alice"})
        self.assertEqual(r.status, 400, r)
        r = self.request("POST", "/set", t0, {"name": "Theme", "value": "dark"})
        self.assertEqual(r.status, 303, r)
        text = self.page("/", t0)[1]
        self.assertIn("<tr><td>theme</td><td>dark</td></tr>", text)
        self.assertIn('<p id="status">not signed in</p>', text)

    def test_static_files_get_no_session(self):
        r = self.request("GET", "/static/style.css")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type", "").startswith("text/css"), r.headers)
        self.assertEqual(r.headers_all("Set-Cookie"), [])


if __name__ == "__main__":
    unittest.main()
