"""CSRF defence (issue 15, [csrf] mode = "fetch-metadata") in a real browser: headless Chromium
against the gateway in front of the demo application. A page on a second origin (another host name
and port, so another site) auto-submits a form to the demo's POST /cart: the gateway refuses it
(the application never sees the request, the cart stays empty); the same form submitted from a
page of our own origin passes.
"""

import os
import shutil
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cdp import Browser
from demo_util import DemoApp, ShippedGateway

CHROMIUM = os.environ.get("SG_CHROMIUM", "/usr/bin/chromium")


class CsrfGateway(ShippedGateway):
    def config(self) -> dict:
        cfg = super().config()
        cfg["csrf"] = dict(cfg.get("csrf", {}), mode="fetch-metadata")
        return cfg


def attacker_site(test, target: str) -> int:
    """A second origin serving one page whose form posts an item to `target`; returns its port."""
    page = (f'<!doctype html><form id="f" method="post" action="{target}">'
            '<input name="item" value="forged"></form>').encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    test.addCleanup(server.server_close)
    test.addCleanup(server.shutdown)
    return server.server_address[1]


class BrowserCsrf(unittest.TestCase):
    def setUp(self):
        d = tempfile.mkdtemp(prefix="sg-browser-csrf-")
        self.addCleanup(shutil.rmtree, d, True)
        if not os.access(CHROMIUM, os.X_OK):
            self.fail(f"Chromium not found at {CHROMIUM}: install it (deploy/install-deps.sh test) or set SG_CHROMIUM")
        self.app = DemoApp(self)
        self.gw = CsrfGateway(self, self.app.port)
        self.base = f"http://127.0.0.1:{self.gw.port}"
        self.browser = Browser(CHROMIUM, d)
        self.addCleanup(self.browser.close)

    def posts_seen_by_app(self) -> int:
        return self.app.stderr().count('"POST /cart ')

    def test_a_cross_site_form_is_refused_and_our_own_passes(self):
        page = self.browser.new_page()
        page.navigate(self.base + "/cart")  # a session, and the empty cart
        self.assertIsNone(page.text("#cart li"))

        # From another site: "localhost" on another port is another origin and another site.
        evil = f"http://localhost:{attacker_site(self, self.base + '/cart')}/"
        page.navigate(evil)
        before = self.posts_seen_by_app()
        page.wait_for_load(lambda: page.evaluate("document.getElementById('f').submit()"))
        self.assertEqual(self.posts_seen_by_app(), before, "the cross-site POST reached the application")
        page.navigate(self.base + "/cart")
        self.assertIsNone(page.text("#cart li"), "the forged item is in the cart")

        # The same form from a page of our own origin.
        page.wait_for_load(lambda: page.evaluate(
            "(() => { const f = document.createElement('form'); f.method = 'post'; f.action = '/cart';"
            " const i = document.createElement('input'); i.name = 'item'; i.value = 'ours';"
            " f.appendChild(i); document.body.appendChild(f); f.submit(); })()"))
        self.assertEqual(page.url(), self.base + "/cart")
        self.assertEqual(page.text("#cart li"), "ours")
        self.assertEqual(self.posts_seen_by_app(), before + 1)


if __name__ == "__main__":
    unittest.main()
