"""End to end in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven over the
DevTools protocol on a pipe, see cdp.py) against the real gateway, with the shipped gateway.toml, in
front of the demo application. Everything runs on loopback ports chosen at run time.

1. first visit: the session cookie is set, HttpOnly, and page JavaScript cannot read it;
2. login through the form (typed, clicked): the cookie value changes, "signed in as alice";
3. add to the cart, go to another page, reload: still signed in, the cart kept; a screenshot of the
   signed-in page is saved (artifacts/e2e-signed-in.png beside the gateway binary);
4. logout: the page says so, and the old cookie replayed by a plain HTTP client is not signed in.

Chromium missing is a failure, not a skip: CI installs it (deploy/install-deps.sh test).
SG_CHROMIUM overrides the executable.
"""

import os
import re
import shutil
import sys
import tempfile
import time
import unittest
import urllib.request

from cdp import Browser
from demo_util import ACCOUNTS, DemoApp, ShippedGateway, artifacts_dir
from session_util import COOKIE, TOKEN_RE

CHROMIUM = os.environ.get("SG_CHROMIUM", "/usr/bin/chromium")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class BrowserEndToEnd(unittest.TestCase):
    def setUp(self):
        if not os.access(CHROMIUM, os.X_OK):
            self.fail(f"Chromium not found at {CHROMIUM}: this test needs a real browser. Install it with "
                      f"`apt-get install chromium` (deploy/install-deps.sh test does), or set SG_CHROMIUM.")
        self.app = DemoApp(self)
        self.gw = ShippedGateway(self, self.app.port)
        self.base = f"http://127.0.0.1:{self.gw.port}"
        log_dir = tempfile.mkdtemp(prefix="sg-browser-")
        self.addCleanup(shutil.rmtree, log_dir, True)
        self.browser = Browser(CHROMIUM, log_dir)
        self.addCleanup(self.browser.close)  # runs first: Chromium goes before the gateway and the app

    # -- helpers -----------------------------------------------------------------------------
    def session_cookie(self) -> dict:
        ours = [c for c in self.browser.cookies() if c["name"] == COOKIE]
        self.assertEqual(len(ours), 1, ours)
        self.assertRegex(ours[0]["value"], f"^{TOKEN_RE.pattern}$")
        return ours[0]

    def status(self) -> str:
        return " ".join((self.page.text("#status") or "").split())

    def replay(self, token: str) -> tuple[str, str | None]:
        """GET / with only `token` as the cookie, from a plain HTTP client: (page, new token or None)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(self.base + "/", headers={"Cookie": f"{COOKIE}={token}"})
        with opener.open(req, timeout=10) as resp:
            body = resp.read().decode()
            issued = [m.group(1) for v in resp.headers.get_all("Set-Cookie") or []
                      if (m := re.match(rf"{COOKIE}=({TOKEN_RE.pattern});", v))]
        return body, (issued[0] if issued else None)

    def click_and_load(self, selector: str):
        self.page.wait_for_load(lambda: self.page.click(selector))

    # -- the walk ----------------------------------------------------------------------------
    def test_login_cart_logout_in_a_real_browser(self):
        started = time.monotonic()
        print(f"\n{self.browser.version.get('product')}", file=sys.stderr)
        self.page = page = self.browser.new_page()

        # 1. First visit: an HttpOnly session cookie that page scripts cannot see.
        page.navigate(self.base + "/")
        self.assertEqual(self.status(), "not signed in")
        first = self.session_cookie()
        self.assertTrue(first["httpOnly"], first)
        self.assertEqual((first["domain"], first["path"], first["sameSite"]), ("127.0.0.1", "/", "Lax"), first)
        self.assertFalse(first["secure"], first)  # plain HTTP on loopback
        # Scripts can use cookies on this page (the probe shows up), just not ours.
        seen_by_script = page.evaluate("document.cookie = 'probe=1; path=/'; document.cookie")
        self.assertIn("probe=1", seen_by_script)
        self.assertNotIn(COOKIE, seen_by_script)
        self.assertNotIn(first["value"], seen_by_script)
        self.assertNotIn(first["value"], page.evaluate("document.documentElement.outerHTML"))

        # 2. Log in through the form: typed and clicked like a person would.
        self.click_and_load("#login-link")
        self.assertEqual(page.url(), self.base + "/login")
        page.type("#user", "alice")
        page.type("#password", ACCOUNTS["alice"])
        self.click_and_load("#submit")
        self.assertEqual(page.url(), self.base + "/")
        self.assertEqual(self.status(), "signed in as alice")
        signed_in = self.session_cookie()
        self.assertNotEqual(signed_in["value"], first["value"], "login must rotate the session token")
        self.assertTrue(signed_in["httpOnly"], signed_in)
        self.assertNotIn(COOKIE, page.evaluate("document.cookie"))

        # 3. The cart, kept across pages and reloads; shown escaped.
        item = "Earl Grey <tea> & scones"
        page.type("#item", item)
        self.click_and_load("#add")
        self.assertEqual(page.url(), self.base + "/cart")
        self.assertEqual(page.evaluate("[...document.querySelectorAll('#cart li')].map(li => li.textContent)"), [item])
        self.assertEqual(page.evaluate("document.querySelectorAll('#cart li *').length"), 0)  # text, not markup
        self.click_and_load("#home-link")
        self.assertEqual(page.url(), self.base + "/")
        page.reload()
        self.assertEqual(self.status(), "signed in as alice")
        self.assertEqual(page.text("#cart li"), item)
        self.click_and_load("#cart-link")
        page.reload()
        self.assertEqual(self.status(), "signed in as alice")
        self.assertEqual(page.text("#cart li"), item)
        self.assertEqual(self.session_cookie()["value"], signed_in["value"])
        self.click_and_load("#home-link")
        shot = os.path.join(artifacts_dir(), "e2e-signed-in.png")
        page.screenshot(shot)
        with open(shot, "rb") as f:
            png = f.read()
        self.assertTrue(png.startswith(PNG_SIGNATURE), "the screenshot is not a PNG")
        print(f"\nscreenshot of the signed-in page: {shot} ({len(png)} bytes)", file=sys.stderr)
        # Control for step 4: the same cookie replayed by a plain client is signed in now.
        body, _ = self.replay(signed_in["value"])
        self.assertIn('signed in as <b id="user">alice</b>', body)

        # 4. Log out: the page says so, and the old cookie is dead.
        self.click_and_load("#logout")
        self.assertEqual(page.url(), self.base + "/?m=signed-out")
        self.assertIn("You have signed out", page.text("#message"))
        self.assertEqual(self.status(), "not signed in")
        self.assertIsNone(page.text("#cart li"))
        after = self.session_cookie()  # the signed-out page started a new anonymous session
        self.assertNotIn(after["value"], (first["value"], signed_in["value"]))
        for old in (signed_in["value"], first["value"]):
            body, issued = self.replay(old)
            self.assertIn('<p id="status">not signed in</p>', body)
            self.assertNotIn("Earl Grey", body)
            self.assertIsNotNone(issued, "a dead token must be answered with a new session")
            self.assertNotIn(issued, (old, after["value"]))

        print(f"browser walk took {time.monotonic() - started:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
