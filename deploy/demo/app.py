"""A small "legacy" web application for demonstrating sessiongate.

It has no session logic of its own. It trusts only what the gateway tells it through the
X-Session-* request headers, and asks the gateway for changes through response headers:

    /                 an HTML page with links and what the gateway told us
    /whoami           the same information as JSON
    /login?user=NAME  X-Session-Control: rotate + X-Session-Set-User: NAME (new token, same handle)
    /logout           X-Session-Control: destroy
    /set?name=N&value=V   X-Session-Set-N: V (an empty value removes the attribute)

Run it behind the gateway:  python3 app.py --port 9000
"""

import argparse
import html
import json
import re
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "X-Session-"
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
MAX_USER_LEN = 64


def session_view(headers) -> dict:
    """What the gateway told us: the handle and the attributes. Nothing else is trusted."""
    handle = None
    attributes = {}
    for name, value in headers.items():
        if not name.lower().startswith(PREFIX.lower()):
            continue
        rest = name[len(PREFIX):]
        if rest.lower() == "id":
            handle = value
        else:
            attributes[rest.lower()] = value
    return {"handle": handle, "attributes": attributes}


class Handler(BaseHTTPRequestHandler):
    server_version = "demo-legacy-app/1.0"
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: bytes, content_type: str, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _redirect(self, location: str, extra=()):
        self._send(303, b"", "text/plain", [("Location", location), *extra])

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        view = session_view(self.headers)

        if url.path == "/login":
            user = query.get("user", [""])[0]
            if not user or len(user) > MAX_USER_LEN or not user.isprintable():
                self._send(400, b"user must be 1-64 printable characters\n", "text/plain")
                return
            # Rotate on privilege change (anti-fixation), then record who logged in.
            self._redirect("/", [("X-Session-Control", "rotate"), ("X-Session-Set-User", user)])
            return
        if url.path == "/logout":
            self._redirect("/", [("X-Session-Control", "destroy")])
            return
        if url.path == "/set":
            name = query.get("name", [""])[0]
            value = query.get("value", [""])[0]
            if not ATTRIBUTE_NAME.match(name) or name.lower() == "id":
                self._send(400, b"bad attribute name\n", "text/plain")
                return
            self._redirect("/", [(f"X-Session-Set-{name}", value)])
            return
        if url.path == "/whoami":
            self._send(200, json.dumps(view, indent=2).encode() + b"\n", "application/json")
            return
        if url.path == "/":
            self._send(200, render(view).encode(), "text/html; charset=utf-8")
            return
        self._send(404, b"not found\n", "text/plain")

    def log_message(self, fmt, *args):
        sys.stderr.write("demo: " + (fmt % args) + "\n")


def render(view: dict) -> str:
    user = view["attributes"].get("user")
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                   for k, v in sorted(view["attributes"].items()))
    greeting = f"Hello, <b>{html.escape(user)}</b>." if user else "You are not logged in."
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>sessiongate demo</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}td{{padding:.2em .8em;border:1px solid #ccc}}</style>
</head><body>
<h1>Legacy app behind sessiongate</h1>
<p>{greeting}</p>
<p>Session handle (<code>X-Session-Id</code>): <code>{html.escape(view["handle"] or "(none: path excluded or gateway absent)")}</code></p>
<table><tr><th>attribute</th><th>value</th></tr>{rows or '<tr><td colspan="2">(none)</td></tr>'}</table>
<ul>
  <li><a href="/login?user=alice">Log in as alice</a> / <a href="/login?user=bob">as bob</a> (rotates the token)</li>
  <li><a href="/set?name=Theme&amp;value=dark">Set attribute Theme=dark</a> /
      <a href="/set?name=Theme&amp;value=">remove it</a></li>
  <li><a href="/logout">Log out</a> (destroys the session)</li>
  <li><a href="/whoami">/whoami</a> (JSON)</li>
</ul>
<p>This app never sees the session cookie: it trusts only the <code>X-Session-*</code> headers the
gateway injects, and the gateway removes any a client tries to send.</p>
</body></html>
"""


def main() -> int:
    ap = argparse.ArgumentParser(description="sessiongate demo legacy app")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"demo app on http://{args.host}:{args.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
