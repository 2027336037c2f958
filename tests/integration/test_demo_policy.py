"""The demo application's side of issue 15 (deploy/demo/app.py, deploy/examples/policy.toml),
talked to directly: the return path after login, the X-Session-Csrf token rendered into its
forms, and --sign-key-file refusing requests whose X-Session-Signature does not verify.

The gateway's side (the /cart rule, the CSRF check, the signature it adds) is tested end to end
in test_policy.py and test_browser_csrf.py.
"""

import base64
import hashlib
import hmac
import http.client
import os
import re
import shutil
import tempfile
import time
import unittest
import urllib.parse

from demo_util import DemoApp

KEY = bytes(range(32))


def sign(method: str, target: str, headers: dict, t: int, key: bytes = KEY) -> str:
    """The gateway's signature (README: "Signed identity header"), written out independently."""
    kid = hashlib.sha256(b"sessiongate-kid-v1" + key).hexdigest()[:16]
    lines = sorted((n.lower(), v) for n, v in headers.items() if n.lower().startswith("x-session-"))
    text = "\n".join(["v1", method, target] + [f"{n}:{v}" for n, v in lines] + [str(t)])
    mac = base64.urlsafe_b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).rstrip(b"=")
    return f"v1; kid={kid}; t={t}; sig={mac.decode()}"


class DemoPolicy(unittest.TestCase):
    def request(self, port, method, target, headers=None, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(conn.close)
        conn.request(method, target, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()

    def test_login_returns_to_a_local_path_only(self):
        app = DemoApp(self)
        status, _, page = self.request(app.port, "GET", "/login?next=%2Fcart%3Fx%3D1")
        self.assertEqual(status, 200)
        self.assertIn('name="next" value="/cart?x=1"', page)
        for evil in ("//evil.example/", "/\\evil.example", "https://evil.example/"):
            with self.subTest(evil):
                _, _, page = self.request(app.port, "GET", "/login?next=" + urllib.parse.quote(evil, safe=""))
                self.assertIn('name="next" value="/"', page)
                form = urllib.parse.urlencode({"user": "alice", "password": "wonderland", "next": evil})
                status, headers, _ = self.request(
                    app.port, "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"}, form)
                self.assertEqual((status, headers.get("Location")), (303, "/"))
        form = urllib.parse.urlencode({"user": "alice", "password": "wonderland", "next": "/cart"})
        status, headers, _ = self.request(app.port, "POST", "/login",
                                          {"Content-Type": "application/x-www-form-urlencoded"}, form)
        self.assertEqual((status, headers.get("Location")), (303, "/cart"))
        self.assertEqual(headers.get("X-Session-Control"), "rotate")

    def test_the_csrf_token_goes_into_every_form_and_nowhere_else(self):
        app = DemoApp(self)
        token = "T0k3n_-abcdefghijklmnopqrstuvwxyz0123456789"
        headers = {"X-Session-Id": "a" * 32, "X-Session-User": "alice", "X-Session-Csrf": token}
        _, _, page = self.request(app.port, "GET", "/", headers)
        forms = re.findall(r"<form method=\"post\".*?</form>", page, re.S)
        self.assertGreaterEqual(len(forms), 3)  # logout, cart, set attribute
        for form in forms:
            self.assertIn(f'<input type="hidden" name="csrf_token" value="{token}">', form)
        self.assertNotIn("<td>csrf</td>", page)  # not listed as an attribute
        _, _, page = self.request(app.port, "GET", "/", {"X-Session-Id": "a" * 32})
        self.assertNotIn("csrf_token", page)

    def test_sign_key_file_refuses_what_the_gateway_did_not_sign(self):
        d = tempfile.mkdtemp(prefix="sg-demo-key-")
        self.addCleanup(shutil.rmtree, d, True)
        key_file = os.path.join(d, "sign.key")
        with open(key_file, "wb") as f:
            f.write(KEY)
        app = DemoApp(self, args=("--sign-key-file", key_file))
        identity = {"X-Session-Id": "b" * 32, "X-Session-User": "alice"}
        status, _, _ = self.request(app.port, "GET", "/whoami", identity)
        self.assertEqual(status, 403)
        now = int(time.time())
        signed = dict(identity, **{"X-Session-Signature": sign("GET", "/whoami", identity, now)})
        status, _, body = self.request(app.port, "GET", "/whoami", signed)
        self.assertEqual(status, 200, body)
        self.assertIn('"user": "alice"', body)
        forged = dict(signed, **{"X-Session-User": "mallory"})
        self.assertEqual(self.request(app.port, "GET", "/whoami", forged)[0], 403)
        stale = dict(identity, **{"X-Session-Signature": sign("GET", "/whoami", identity, now - 3600)})
        self.assertEqual(self.request(app.port, "GET", "/whoami", stale)[0], 403)
        other = dict(identity, **{"X-Session-Signature": sign("GET", "/whoami", identity, now, bytes(32))})
        self.assertEqual(self.request(app.port, "GET", "/whoami", other)[0], 403)


if __name__ == "__main__":
    unittest.main()
