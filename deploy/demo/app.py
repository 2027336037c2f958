"""A small "legacy" web application for demonstrating sessiongate.

It has no session logic of its own: no cookie, no token. It trusts only what the gateway tells it
through the X-Session-* request headers (X-Session-Id: the session's handle, X-Session-User: who
logged in) and asks the gateway for changes through response headers:

    GET  /                the home page: "signed in as NAME" or "not signed in", the cart, forms
    GET  /cart            the cart on a page of its own
    POST /cart            add an item (form field "item"); the cart lives here, in this process,
                          keyed by the session handle, which stays the same across login rotation
    GET  /login           the login form (demo accounts alice/wonderland and bob/builder); ?next=
                          is where to return (the gateway's access rules send browsers here)
    POST /login           right password: 303 to next (a local path) or / with X-Session-Control:
                          rotate (new token, same handle) and X-Session-Set-User: NAME; wrong one:
                          401 and the form again
    POST /logout          303 to /?m=signed-out with X-Session-Control: destroy; the cart is dropped
    POST /set             X-Session-Set-NAME: VALUE for a free attribute ("User" and "Id" refused)
    GET  /whoami          what the gateway told us, as JSON
    GET  /static/style.css  the stylesheet; the shipped gateway.toml excludes /static/* from
                          sessions, so this request carries no session and gets no cookie

State-changing requests are POST only, and a POST whose Origin header names another site is
refused (403): together with the gateway's SameSite=Lax cookie this keeps other sites from
logging a visitor in or out or filling the cart. Every value shown is HTML-escaped.

With the gateway's request policy (deploy/examples/policy.toml): /cart needs a signed-in user
([[access.rules]]), every form carries the X-Session-Csrf token the gateway checks ([csrf] mode =
"token"), and with --sign-key-file the application refuses requests whose X-Session-Signature
does not verify (deploy/examples/verify_signature.py).

Run it behind the gateway (deploy/run-demo.sh does both):  python3 app.py --port 9000
--port 0 lets the kernel choose; the first line on stdout names the address actually bound.
"""

import argparse
import collections
import hmac
import html
import importlib.util
import json
import os
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "X-Session-"
# Fixed demo accounts. A real application would keep salted password hashes; the comparison is
# constant-time either way, and an unknown name costs the same comparison as a known one.
ACCOUNTS = {"alice": "wonderland", "bob": "builder"}
_NO_SUCH_ACCOUNT = "\0" * 16
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
RESERVED_ATTRIBUTES = {"id", "user", "csrf", "signature"}  # the gateway's, or set by login only
SIGN_KEYS: list = []  # --sign-key-file: the keys X-Session-Signature must verify with

MAX_FORM_BYTES = 4096  # every form here is a few fields of a few dozen characters
MAX_FORM_FIELDS = 8
MAX_ITEM_CHARS = 60
MAX_CART_ITEMS = 20
MAX_CARTS = 10_000  # least recently used cart dropped first: memory stays bounded

# Fixed messages selected by ?m=: nothing from the query string is ever reflected into a page.
MESSAGES = {
    "signed-out": "You have signed out. The old session cookie no longer works.",
    "cart-full": f"The cart holds at most {MAX_CART_ITEMS} items.",
}

STYLESHEET = b"""body{font-family:sans-serif;max-width:44em;margin:2em auto;padding:0 1em;color:#222}
nav a{margin-right:1em}nav form{display:inline;margin:0}
#status{padding:.5em .8em;background:#eef4ff;border-left:4px solid #36c}
.note{padding:.5em .8em;background:#efe;border-left:4px solid #3a3}.error{background:#fee;border-color:#c33}
td,th{padding:.2em .8em;border:1px solid #ccc;text-align:left}form{margin:.6em 0}
code{background:#f4f4f4;padding:0 .2em}label{display:inline-block;min-width:6em}
"""

# Security headers on every HTML page: no inline script or style is used, so the policy is tight.
PAGE_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)


class Carts:
    """Carts keyed by session handle, shared by the server's threads (hence the lock)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._carts: "collections.OrderedDict[str, list[str]]" = collections.OrderedDict()

    def items(self, handle: str) -> list:
        with self._lock:
            cart = self._carts.get(handle)
            if cart is None:
                return []
            self._carts.move_to_end(handle)
            return list(cart)

    def add(self, handle: str, item: str) -> bool:
        """False when the cart is full."""
        with self._lock:
            cart = self._carts.setdefault(handle, [])
            self._carts.move_to_end(handle)
            if len(cart) >= MAX_CART_ITEMS:
                return False
            cart.append(item)
            while len(self._carts) > MAX_CARTS:
                self._carts.popitem(last=False)
            return True

    def drop(self, handle: str):
        with self._lock:
            self._carts.pop(handle, None)


CARTS = Carts()
VERIFY = None  # verify_signature.verify, loaded with --sign-key-file


def session_view(headers) -> dict:
    """What the gateway told us: the handle and the attributes. Nothing else is trusted."""
    handle, csrf = None, ""
    attributes = {}
    for name, value in headers.items():
        if not name.lower().startswith(PREFIX.lower()):
            continue
        rest = name[len(PREFIX):].lower()
        if rest == "id":
            handle = value
        elif rest == "csrf":
            csrf = value  # [csrf] mode = "token": rendered into every form, checked by the gateway
        elif rest != "signature":
            attributes[rest] = value
    return {"handle": handle, "attributes": attributes, "csrf": csrf}


def local_path(target: str) -> str:
    """Where to return after login: only a path on this site ("/x", never "//host" or "/\\host")."""
    ok = target.startswith("/") and not target.startswith(("//", "/\\")) and target.isprintable()
    return target if ok else "/"


def csrf_field(view: dict) -> str:
    token = view.get("csrf", "")
    return f'<input type="hidden" name="csrf_token" value="{e(token)}">' if token else ""


def load_verifier():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "examples", "verify_signature.py")
    spec = importlib.util.spec_from_file_location("verify_signature", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.verify


def check_password(user: str, password: str) -> bool:
    expected = ACCOUNTS.get(user)
    same = hmac.compare_digest(password.encode(), (expected or _NO_SUCH_ACCOUNT).encode())
    return same and expected is not None


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    server_version = "demo-legacy-app/1.1"
    protocol_version = "HTTP/1.1"
    # http.server writes the head and the body separately; with Nagle on, the body waits for the
    # gateway's delayed ACK of the head (~40 ms per page on keep-alive connections).
    disable_nagle_algorithm = True

    # -- responses ---------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, extra=(), cache="no-store"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _page(self, status: int, view: dict, title: str, content: str, extra=()):
        body = layout(view, title, content).encode()
        self._send(status, body, "text/html; charset=utf-8", [*PAGE_HEADERS, *extra])

    def _text(self, status: int, text: str):
        self._send(status, text.encode() + b"\n", "text/plain; charset=utf-8", [("X-Content-Type-Options", "nosniff")])

    def _redirect(self, location: str, extra=()):
        self._send(303, b"", "text/plain", [("Location", location), *extra])

    # -- requests ----------------------------------------------------------------------------
    def _form(self) -> dict:
        """The urlencoded request body as {name: first value}; BadRequest when it is not one."""
        if self.headers.get("Transfer-Encoding") is not None:
            raise BadRequest(411, "send the form with a Content-Length")
        # No Content-Length on a request means an empty body (RFC 9112 section 6.3): curl -X POST.
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            raise BadRequest(400, "bad Content-Length")
        if int(length) > MAX_FORM_BYTES:
            raise BadRequest(413, "form too large")
        raw = self.rfile.read(int(length))
        if not raw:
            return {}
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise BadRequest(415, "expected an HTML form (application/x-www-form-urlencoded)")
        try:
            fields = urllib.parse.parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                                           max_num_fields=MAX_FORM_FIELDS)
        except (UnicodeDecodeError, ValueError):
            raise BadRequest(400, "malformed form") from None
        return {k: v[0] for k, v in fields.items()}

    def _same_origin(self) -> bool:
        """A browser names the page that sent a POST in Origin; refuse other sites' forms.
        Requests without Origin (curl, old browsers) are let through: SameSite=Lax on the
        gateway's cookie already keeps a cross-site POST out of the visitor's session."""
        origin = self.headers.get("Origin")
        if origin is None:
            return True
        host = self.headers.get("Host", "")
        return origin in (f"http://{host}", f"https://{host}")

    def _signature_refused(self) -> bool:
        """With --sign-key-file: refuse a request the gateway did not sign (sent here directly)."""
        if not SIGN_KEYS or VERIFY(self.command, self.path, dict(self.headers.items()), SIGN_KEYS):
            return False
        self._text(403, "X-Session-Signature does not verify: not sent through the gateway")
        return True

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if self._signature_refused():
            return
        url = urllib.parse.urlsplit(self.path)
        view = session_view(self.headers)
        message = MESSAGES.get(urllib.parse.parse_qs(url.query).get("m", [""])[0])
        if message is MESSAGES["signed-out"] and "user" in view["attributes"]:
            message = None  # a stale or hand-made link: the page must not contradict itself
        if url.path == "/":
            self._page(200, view, "Home", note(message) + home(view))
        elif url.path == "/cart":
            self._page(200, view, "Cart", note(message) + cart_section(view))
        elif url.path == "/login":
            back = local_path(urllib.parse.parse_qs(url.query).get("next", ["/"])[0])
            self._page(200, view, "Log in", login_form(view, back=back))
        elif url.path == "/whoami":
            self._send(200, json.dumps(view, indent=2).encode() + b"\n", "application/json")
        elif url.path == "/static/style.css":
            self._send(200, STYLESHEET, "text/css; charset=utf-8", cache="public, max-age=300")
        elif url.path in ("/logout", "/set"):
            self.send_response(405)
            self.send_header("Allow", "POST")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._text(404, "not found")

    def do_POST(self):
        if self._signature_refused():
            self.close_connection = True  # the body is unread
            return
        url = urllib.parse.urlsplit(self.path)
        view = session_view(self.headers)
        try:
            form = self._form()
        except BadRequest as e:
            self.close_connection = True  # the body may be unread
            self._text(e.status, str(e))
            return
        if not self._same_origin():
            self._text(403, "cross-site form refused")
            return
        handle = view["handle"]
        if url.path == "/login":
            user, password = form.get("user", ""), form.get("password", "")
            back = local_path(form.get("next", "/"))
            if not check_password(user, password):
                self._page(401, view, "Log in", login_form(view, error=True, user=user, back=back))
                return
            # Rotate on privilege change (anti-fixation), then record who logged in. The handle,
            # and with it the cart, stays the same.
            self._redirect(back, [("X-Session-Control", "rotate"), ("X-Session-Set-User", user)])
        elif url.path == "/logout":
            if handle:
                CARTS.drop(handle)
            self._redirect("/?m=signed-out", [("X-Session-Control", "destroy")])
        elif url.path == "/cart":
            item = form.get("item", "").strip()
            if not handle:
                self._text(409, "no session: is the gateway in front of this application?")
            elif not item or len(item) > MAX_ITEM_CHARS or not item.isprintable():
                self._text(400, f"an item is 1 to {MAX_ITEM_CHARS} printable characters")
            elif not CARTS.add(handle, item):
                self._redirect("/cart?m=cart-full")
            else:
                self._redirect("/cart")
        elif url.path == "/set":
            name, value = form.get("name", ""), form.get("value", "")
            if not ATTRIBUTE_NAME.match(name) or name.lower() in RESERVED_ATTRIBUTES:
                self._text(400, "bad attribute name")
            elif len(value) > 200 or not (value.isprintable()):
                self._text(400, "bad attribute value")
            else:
                self._redirect("/", [(f"X-Session-Set-{name}", value)])
        else:
            self._text(404, "not found")

    def log_message(self, fmt, *args):
        sys.stderr.write("demo: " + (fmt % args) + "\n")


# -- pages --------------------------------------------------------------------------------------

def e(s: str) -> str:
    return html.escape(s, quote=True)


def status_line(view: dict) -> str:
    user = view["attributes"].get("user")
    if user:
        return f'<p id="status">signed in as <b id="user">{e(user)}</b></p>'
    return '<p id="status">not signed in</p>'


def layout(view: dict, title: str, content: str) -> str:
    signed_in = "user" in view["attributes"]
    account = (f'<form method="post" action="/logout">{csrf_field(view)}<button id="logout" type="submit">Log out</button></form>'
               if signed_in else '<a id="login-link" href="/login">Log in</a>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)} - sessiongate demo</title>
<link rel="stylesheet" href="/static/style.css">
</head><body>
<nav><a id="home-link" href="/">Home</a><a id="cart-link" href="/cart">Cart</a>{account}</nav>
<h1>{e(title)}</h1>
{status_line(view)}
{content}
</body></html>
"""


def cart_section(view: dict) -> str:
    handle = view["handle"]
    if not handle:
        return "<p>No session (path excluded, or the gateway is not in front): no cart.</p>"
    items = CARTS.items(handle)
    rows = "".join(f"<li>{e(item)}</li>" for item in items)
    listing = f'<ul id="cart">{rows}</ul>' if items else '<p id="cart-empty">The cart is empty.</p>'
    return f"""<h2>Cart ({len(items)} item{'' if len(items) == 1 else 's'})</h2>
{listing}
<form method="post" action="/cart">{csrf_field(view)}<label for="item">Item</label>
<input id="item" name="item" maxlength="{MAX_ITEM_CHARS}" required>
<button id="add" type="submit">Add to cart</button></form>"""


def note(message: str | None) -> str:
    return f'<p class="note" id="message">{e(message)}</p>\n' if message else ""


def home(view: dict) -> str:
    rows = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in sorted(view["attributes"].items()))
    handle = view["handle"] or "(none: path excluded or gateway absent)"
    return f"""<p>Session handle (<code>X-Session-Id</code>): <code id="handle">{e(handle)}</code></p>
<table><tr><th>attribute (<code>X-Session-*</code>)</th><th>value</th></tr>
{rows or '<tr><td colspan="2">(none)</td></tr>'}</table>
{cart_section(view)}
<form method="post" action="/set">{csrf_field(view)}<input type="hidden" name="name" value="Theme">
<label for="theme">Theme</label>
<input id="theme" name="value" maxlength="200">
<button type="submit">Set attribute (empty removes it)</button></form>
<p>This application never sees the session cookie. It trusts only the <code>X-Session-*</code>
headers the gateway injects (the gateway removes any a client sends), and answers with
<code>X-Session-Control: rotate</code> at login, <code>destroy</code> at logout and
<code>X-Session-Set-User</code>. JSON view: <a href="/whoami">/whoami</a>.</p>"""


def login_form(view: dict, error: bool = False, user: str = "", back: str = "/") -> str:
    problem = '<p class="note error" id="error">Wrong user name or password.</p>' if error else ""
    return f"""{problem}
<form method="post" action="/login">{csrf_field(view)}<input type="hidden" name="next" value="{e(back)}">
<p><label for="user">User</label><input id="user" name="user" value="{e(user)}" autocomplete="username" required></p>
<p><label for="password">Password</label><input id="password" name="password" type="password"
 autocomplete="current-password" required></p>
<p><button id="submit" type="submit">Log in</button></p>
</form>
<p>Demo accounts: <code>alice</code> / <code>wonderland</code>, <code>bob</code> / <code>builder</code>.
Logging in rotates the session token; the handle and the cart stay.</p>"""


def main() -> int:
    ap = argparse.ArgumentParser(description="sessiongate demo legacy app")
    ap.add_argument("--port", type=int, default=9000, help="0 lets the kernel choose")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--sign-key-file", action="append", default=[],
                    help="refuse requests whose X-Session-Signature does not verify with this key "
                         "(the gateway's upstream.sign_key_file; repeat for several)")
    args = ap.parse_args()
    global VERIFY
    for path in args.sign_key_file:
        with open(path, "rb") as f:
            SIGN_KEYS.append(f.read())
    if SIGN_KEYS:
        VERIFY = load_verifier()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print(f"demo app on http://{host}:{port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
