"""Shared helpers for the session integration tests (test_sessions.py, test_session_snapshot.py)."""

from __future__ import annotations

import base64
import calendar
import email.utils
import os
import re
import time
import unittest
import urllib.parse

from harness import Gateway, simple_get, start_upstream

COOKIE = "session_id"
TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
HANDLE_RE = re.compile(r"[0-9a-f]{32}")
IMF_DATE = (r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
            r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT")
EXPIRED_COOKIE_RE = re.compile(
    rf"{COOKIE}=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax")


def random_token() -> str:
    """A well-shaped (canonical base64url, 43 chars) token that no gateway issued."""
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def non_canonical(token: str) -> str:
    """The same 32 bytes spelled with non-zero padding bits in the last character."""
    i = TOKEN_ALPHABET.index(token[-1])
    return token[:-1] + TOKEN_ALPHABET[i | 1]


def respond_target(*headers: tuple[str, str], status: int = 200, body: str = "") -> str:
    """A /respond target on the test upstream answering with the given response headers."""
    q = [("status", str(status))] + [("h", f"{k}:{v}") for k, v in headers]
    if body:
        q.append(("body", body))
    return "/respond?" + urllib.parse.urlencode(q, quote_via=urllib.parse.quote)


def cookie_header(*tokens: str, extra: str | None = None) -> tuple[str, str]:
    return ("Cookie", "; ".join([f"{COOKIE}={t}" for t in tokens] + ([extra] if extra else [])))


def header_values(headers, name: str) -> list[str]:
    """All values of `name` (case-insensitive) in a [(name, value)] list."""
    return [v for k, v in headers if k.lower() == name.lower()]


def prefixed(headers, prefix: str = "X-Session-") -> list[tuple[str, str]]:
    """Headers whose name starts with prefix, with '_' read as '-' (case-insensitive)."""
    p = prefix.lower()
    return [(k, v) for k, v in headers if k.lower().replace("_", "-").startswith(p)]


class SessionTestCase(unittest.TestCase):
    """Starts an upstream per test; `gateway(**session_keys)` starts a gateway in front of it."""

    def setUp(self):
        self.up = start_upstream(self)

    def gateway(self, overrides: dict | None = None, **session) -> Gateway:
        ov = {k: dict(v) for k, v in (overrides or {}).items()}
        if session:
            ov.setdefault("session", {}).update(session)
        return Gateway(self, self.up.port, ov)

    # -- requests ----------------------------------------------------------------------------
    def get(self, gw: Gateway, target: str = "/echo", token: str | None = None, headers=()):
        hdrs = list(headers)
        if token is not None:
            hdrs.append(cookie_header(token))
        return simple_get(gw.port, target, headers=hdrs)

    def seen(self, resp) -> list:
        """The request headers the upstream received, from /echo's body."""
        self.assertEqual(resp.status, 200, resp)
        return [tuple(h) for h in resp.json()["headers"]]

    def last_upstream_headers(self) -> list:
        return [tuple(h) for h in self.up.requests[-1]["headers"]]

    # -- cookies -----------------------------------------------------------------------------
    def our_set_cookies(self, resp) -> list[str]:
        return [v for v in resp.headers_all("Set-Cookie") if v.lstrip().startswith(COOKIE + "=")
                or v.lstrip().startswith(COOKIE + " ")]

    def issued_token(self, resp, not_in=()) -> str:
        """The token of the one Set-Cookie of ours, checked for shape; never one of `not_in`."""
        ours = self.our_set_cookies(resp)
        self.assertEqual(len(ours), 1, f"expected exactly one Set-Cookie for {COOKIE}: {resp.headers}")
        m = re.match(rf"{COOKIE}=([^;]*);", ours[0])
        self.assertIsNotNone(m, ours[0])
        token = m.group(1)
        self.assertRegex(token, rf"^{TOKEN_RE.pattern}$")
        self.assertNotIn(token, list(not_in), "the gateway re-issued a token it must not")
        return token

    def assert_no_set_cookie(self, resp):
        self.assertEqual(self.our_set_cookies(resp), [], f"unexpected Set-Cookie: {resp.headers}")

    def handle_of(self, headers) -> str:
        ids = header_values(headers, "X-Session-Id")
        self.assertEqual(len(ids), 1, f"expected one X-Session-Id: {headers}")
        self.assertRegex(ids[0], rf"^{HANDLE_RE.pattern}$")
        return ids[0]

    def new_session(self, gw: Gateway, target: str = "/echo") -> tuple[str, str]:
        """(token, handle) of a fresh session."""
        r = self.get(gw, target)
        token = self.issued_token(r)
        handle = self.handle_of(self.seen(r) if target.startswith("/echo") else self.last_upstream_headers())
        return token, handle

    def assert_client_sees_no_prefix(self, resp):
        self.assertEqual(prefixed(resp.headers), [], f"session headers leaked to the client: {resp.headers}")

    def check_expires(self, set_cookie: str, max_age: int, slack: int = 5):
        m = re.search(r"Expires=([^;]+)", set_cookie)
        self.assertIsNotNone(m, set_cookie)
        when = calendar.timegm(email.utils.parsedate(m.group(1)))
        self.assertLessEqual(abs(when - (time.time() + max_age)), slack, set_cookie)
