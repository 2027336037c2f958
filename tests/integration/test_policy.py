"""Issue 15 through the real gateway: sign-in required paths, CSRF defence, the signed identity
header (README: "Access rules, CSRF defence and the signed identity header"). What each test
expects is the documented behaviour.
"""

import importlib.util
import os
import unittest
import urllib.parse

import tempfile

from harness import HttpClient, base_config, free_port, merge, start_upstream, to_toml, wait_until
from ops_util import admin_gateway, metric_value, reload, run_cli, write_config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NAVIGATE = [("Accept", "text/html,application/xhtml+xml,*/*;q=0.8"), ("Sec-Fetch-Mode", "navigate")]
JSON = [("Accept", "application/json")]

ACCESS = {
    "login_url": "/login",
    "api_paths": ["/api/*"],
    "rules": [
        {"paths": ["/admin/*"], "require": {"Role": "admin"}},
        {"paths": ["/cart", "/account/*", "/api/*"], "require": "User"},
    ],
}


def setUpModule():
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
        f.write(to_toml(merge(base_config(free_port(), free_port()), {"access": ACCESS})))
        f.flush()
        r = run_cli("--check", "--config", f.name)
    if r.returncode != 0:
        raise AssertionError(f"the test configuration does not load: {r.stdout}{r.stderr}")


def sign_in(test, port, attributes: dict) -> str:
    """A session whose attributes the application set; returns the Cookie header value."""
    c = HttpClient(port, test)
    query = "&".join("h=" + urllib.parse.quote(f"X-Session-Set-{k}:{v}") for k, v in attributes.items())
    r = c.roundtrip("GET", "/respond?status=200&" + query)
    test.assertEqual(r.status, 200)
    cookie = r.header("Set-Cookie")
    test.assertIsNotNone(cookie)
    return cookie.split(";", 1)[0]


class AccessRules(unittest.TestCase):
    def setUp(self):
        self.up = start_upstream(self)
        self.gw, self.admin = admin_gateway(self, self.up.port, {"access": ACCESS})

    def ask(self, target, headers=(), cookie=None, method="GET"):
        c = HttpClient(self.gw.port, self)
        h = list(headers) + ([("Cookie", cookie)] if cookie else [])
        return c.roundtrip(method, target, headers=h)

    def test_every_outcome(self):
        before = len(self.up.requests)
        r = self.ask("/cart?x=1&y=a%2Fb", NAVIGATE)
        self.assertEqual(r.status, 303)
        self.assertEqual(r.header("Location"), "/login?next=/cart%3Fx%3D1%26y%3Da%252Fb")
        r = self.ask("/cart", JSON)
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json(), {"error": "sign-in required", "login_url": "/login"})
        r = self.ask("/api/orders", NAVIGATE)  # api_paths: never a redirect
        self.assertEqual(r.status, 401)
        r = self.ask("/cart", [("X-Requested-With", "XMLHttpRequest")])
        self.assertEqual(r.status, 401)
        self.assertEqual(len(self.up.requests), before, "a refused request reached the application")

        alice = sign_in(self, self.gw.port, {"User": "alice"})
        self.assertEqual(self.ask("/cart", NAVIGATE, alice).status, 200)
        self.assertEqual(self.ask("/admin/users", NAVIGATE, alice).status, 403)
        admin = sign_in(self, self.gw.port, {"User": "root", "Role": "admin"})
        self.assertEqual(self.ask("/admin/users", NAVIGATE, admin).status, 200)
        self.assertEqual(self.ask("/", NAVIGATE).status, 200)  # no rule
        for outcome, count in (("login_redirect", 1), ("unauthorized", 3), ("forbidden", 1)):
            self.assertEqual(metric_value(self.admin, "sessiongate_access_denied_total", outcome=outcome), count)

    def test_the_return_path_is_never_an_absolute_url(self):
        # Absolute-form: the gateway reduces it to origin-form first (request_validation.cc, as
        # for forwarding), so the rule matches its path and only that path, never the scheme or
        # host, goes into the return parameter.
        r = self.ask("http://evil.test/cart?x=1", NAVIGATE)
        self.assertEqual((r.status, r.header("Location")), (303, "/login?next=/cart%3Fx%3D1"))

    def test_rules_reload_on_sighup(self):
        self.assertEqual(self.ask("/cart", JSON).status, 401)
        write_config(self.gw, {"access": dict(ACCESS, rules=[{"paths": ["/other"], "require": "User"}])})
        reload(self.gw, "applied")
        wait_until(lambda: self.ask("/cart", JSON).status == 200, 5.0, message="the new rules in force")
        self.assertEqual(self.ask("/other", JSON).status, 401)


CSRF_CASES = [
    # (Sec-Fetch-Site, Origin, Referer, expected status) for POST from a browser at gw.test
    ("same-origin", None, None, 200),
    ("none", None, None, 200),
    ("same-site", None, None, 403),
    ("cross-site", None, None, 403),
    ("cross-site", "http://gw.test", None, 403),
    ("cross-site", "https://idp.test", None, 200),  # trusted origin
    (None, "http://gw.test", None, 200),
    (None, "http://evil.test", None, 403),
    (None, "null", None, 403),
    (None, None, "http://gw.test/form", 200),
    (None, None, "http://evil.test/form", 403),
    (None, "http://evil.test", "http://gw.test/form", 403),
    (None, None, None, 200),  # csrf.missing = "allow"
]


class CsrfFetchMetadata(unittest.TestCase):
    def test_every_header_combination(self):
        up = start_upstream(self)
        gw, admin = admin_gateway(self, up.port, {"csrf": {"mode": "fetch-metadata",
                                                           "trusted_origins": ["https://idp.test"],
                                                           "exempt": ["/hooks/*"]}})
        refused = 0
        for site, origin, referer, expected in CSRF_CASES:
            with self.subTest(site=site, origin=origin, referer=referer):
                h = [(k, v) for k, v in (("Sec-Fetch-Site", site), ("Origin", origin), ("Referer", referer)) if v]
                r = HttpClient(gw.port, self).roundtrip("POST", "/form", headers=h, body=b"a=1")
                self.assertEqual(r.status, expected)
                refused += expected == 403
        r = HttpClient(gw.port, self).roundtrip("POST", "/hooks/push", headers=[("Sec-Fetch-Site", "cross-site")], body=b"{}")
        self.assertEqual(r.status, 200)
        r = HttpClient(gw.port, self).roundtrip("GET", "/form", headers=[("Sec-Fetch-Site", "cross-site")])
        self.assertEqual(r.status, 200)
        self.assertEqual(sum(1 for q in up.requests if q["path"] == "/form" and q["method"] == "POST"),
                         len(CSRF_CASES) - refused)


class CsrfToken(unittest.TestCase):
    def test_header_form_field_and_bound(self):
        up = start_upstream(self)
        gw = admin_gateway(self, up.port, {"csrf": {"mode": "token", "max_form_bytes": "1KiB"}})[0]
        first = HttpClient(gw.port, self).roundtrip("GET", "/echo")
        cookie = first.header("Set-Cookie").split(";", 1)[0]
        echoed = dict((k.lower(), v) for k, v in first.json()["headers"])
        token = echoed["x-session-csrf"]
        self.assertEqual(len(token), 43)
        self.assertNotIn(token, cookie)

        def post(headers=(), body=b"a=1", ctype="application/x-www-form-urlencoded"):
            h = [("Cookie", cookie), ("Content-Type", ctype), *headers]
            return HttpClient(gw.port, self).roundtrip("POST", "/upload", headers=h, body=body)

        self.assertEqual(post([("X-CSRF-Token", token)]).status, 200)
        wrong = token[:-1] + ("B" if token.endswith("A") else "A")  # always differs from the token
        self.assertEqual(post([("X-CSRF-Token", wrong)]).status, 403)
        self.assertEqual(post().status, 403)
        body = f"item=x&csrf_token={token}&more=".encode() + b"y" * 5000
        r = post(body=body)
        self.assertEqual(r.status, 200)
        self.assertEqual(up.requests[-1]["body_length"], len(body), "the held bytes and the rest forwarded")
        self.assertEqual(post(body=b"item=" + b"x" * 2000 + b"&csrf_token=" + token.encode()).status, 413)
        self.assertEqual(post(body=b'{"csrf_token":"x"}', ctype="application/json").status, 403)
        # A chunked form body: the held bytes are framed again and the rest streams on.
        chunked = [("Cookie", cookie), ("Content-Type", "application/x-www-form-urlencoded"),
                   ("Transfer-Encoding", "chunked")]
        parts = [b"item=x&csrf", f"_token={token}&".encode(), b"z" * 3000]
        raw = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        r = HttpClient(gw.port, self).roundtrip("POST", "/upload", headers=chunked, body=raw)
        self.assertEqual(r.status, 200)
        self.assertEqual(up.requests[-1]["body_length"], sum(len(p) for p in parts))
        # A client-sent X-Session-Csrf is dropped: the application sees the gateway's own only.
        h = [("Cookie", cookie), ("X-Session-Csrf", "forged")]
        echoed = HttpClient(gw.port, self).roundtrip("GET", "/echo", headers=h).json()["headers"]
        self.assertEqual([v for k, v in echoed if k.lower() == "x-session-csrf"], [token])
        self.assertNotIn(token, "".join(gw.logs()), "the token appeared in a log")


class SignedIdentity(unittest.TestCase):
    def test_the_python_verifier_accepts_gateway_output_and_refuses_changes(self):
        spec = importlib.util.spec_from_file_location(
            "verify_signature", os.path.join(ROOT, "deploy", "examples", "verify_signature.py"))
        verifier = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(verifier)
        key = os.urandom(32)
        up = start_upstream(self)
        gw = admin_gateway(self, up.port, start=False)[0]
        key_file = os.path.join(gw.dir, "sign.key")
        with open(key_file, "wb") as f:
            f.write(key)
        os.chmod(key_file, 0o600)
        gw.overrides = merge(gw.overrides, {"upstream": {"sign": True, "sign_key_file": [key_file]}})
        gw.start()
        cookie = sign_in(self, gw.port, {"User": "alice"})
        HttpClient(gw.port, self).roundtrip("GET", "/echo?a=1", headers=[("Cookie", cookie)])
        seen = up.requests[-1]
        headers = dict(seen["headers"])
        self.assertTrue(verifier.verify(seen["method"], seen["target"], headers, [key]))
        self.assertFalse(verifier.verify(seen["method"], "/echo?a=2", headers, [key]))
        self.assertFalse(verifier.verify(seen["method"], seen["target"], dict(headers, **{"X-Session-User": "bob"}), [key]))
        t = int(headers["X-Session-Signature"].split("t=")[1].split(";")[0])
        self.assertFalse(verifier.verify(seen["method"], seen["target"], headers, [key], now=t + 61))

        # Client-sent copies of the gateway's own headers never reach the application: only the
        # gateway's signature arrives, and no <prefix>Csrf at all (token mode is off).
        forged = [("Cookie", cookie), ("X-Session-Signature", "v1; kid=0000000000000000; t=1; sig=x"),
                  ("X-Session-Csrf", "forged"), ("x-session-user", "mallory")]
        HttpClient(gw.port, self).roundtrip("GET", "/echo?b=2", headers=forged)
        seen = up.requests[-1]
        names = [n.lower() for n, _ in seen["headers"]]
        self.assertEqual(names.count("x-session-signature"), 1)
        self.assertEqual(names.count("x-session-user"), 1)
        self.assertNotIn("x-session-csrf", names)
        self.assertNotIn("forged", str(seen["headers"]))
        self.assertTrue(verifier.verify(seen["method"], seen["target"], dict(seen["headers"]), [key]))
        self.assertEqual(dict(seen["headers"])["X-Session-User"], "alice")

        # A key file that cannot be read refuses the reload: the running key keeps signing.
        missing = os.path.join(gw.dir, "gone.key")
        write_config(gw, {"upstream": {"sign": True, "sign_key_file": [missing]}})
        reload(gw, "failed")
        HttpClient(gw.port, self).roundtrip("GET", "/echo?c=3", headers=[("Cookie", cookie)])
        seen = up.requests[-1]
        self.assertTrue(verifier.verify(seen["method"], seen["target"], dict(seen["headers"]), [key]))


if __name__ == "__main__":
    unittest.main()
