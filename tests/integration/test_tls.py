"""TLS (issue 5): HTTPS through the gateway (X-Forwarded-Proto, Secure cookie, HSTS, ALPN), versions
(TLS 1.1 refused, min_version 1.3, no CBC on 1.2), SNI, resumption (openssl s_client -sess_out /
-sess_in; Python sessions across a reload), certificate reload under load (zero failures; a bad key
keeps the old certificate), TLS to the upstream (verified, wrong CA, wrong name, mTLS), the
redirect listener, the handshake timeout and --check with a mismatched key.

Certificates are made at test time with the ``openssl`` command (tls_util.make_pki)."""

from __future__ import annotations

import email.utils
import os
import re
import shutil
import signal
import socket
import ssl
import tempfile
import threading
import time
import unittest
import warnings

from harness import ConnectionClosed, Gateway, HttpClient, free_port, simple_get, start_upstream, wait_until
from ops_util import RELOAD_TAKEN_UP, reload, run_cli, write_raw
from session_util import COOKIE
from tls_util import (HttpsClient, TlsGateway, cert_serial, client_context, https_get, make_pki,
                      render_config, s_client, san_dns, start_tls_upstream, subject_cn, tls_overrides)

warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*TLSv1_1.*")
warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*TLSVersion.*")

HSTS = "max-age=31536000; includeSubDomains"
PKI = None


def setUpModule():
    global PKI
    PKI = make_pki()


def tearDownModule():
    if PKI is not None:
        shutil.rmtree(PKI.dir, ignore_errors=True)


def forwarded(resp, name: str) -> list[str]:
    """Values of request header `name` as the upstream saw it (from /echo's JSON)."""
    return [v for k, v in resp.json()["headers"] if k.lower() == name.lower()]


def our_cookie(resp) -> str:
    ours = [v for v in resp.headers_all("Set-Cookie") if v.startswith(COOKIE + "=")]
    assert len(ours) == 1, f"expected one Set-Cookie for {COOKIE}: {resp.headers}"
    return ours[0]


class TlsTestCase(unittest.TestCase):
    def setUp(self):
        self.up = start_upstream(self)

    def tls_gateway(self, cert=None, sni=None, overrides=None, **tls_keys) -> TlsGateway:
        from harness import merge
        ov = merge(tls_overrides(cert or PKI.default, **tls_keys), overrides)
        return TlsGateway(self, self.up.port, ov, ca=PKI.ca_cert, sni=sni)


# -- 1. HTTPS through the gateway ----------------------------------------------------------------

class HttpsBasics(TlsTestCase):
    def test_https_request_reaches_upstream_with_secure_cookie_and_hsts(self):
        gw = self.tls_gateway(strict_transport_security=HSTS,
                              overrides={"session": {"cookie_secure": "auto"}})
        c = HttpsClient(gw.port, gw.context(), server_name="localhost", test=self)
        self.assertEqual(c.alpn, "http/1.1", "ALPN http/1.1 not negotiated")
        self.assertIn(c.version, ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(subject_cn(c.peer_cert()), "localhost")

        r = c.roundtrip("GET", "/echo?x=1", host="gw.test")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(forwarded(r, "X-Forwarded-Proto"), ["https"])
        self.assertEqual(forwarded(r, "X-Forwarded-Host"), ["gw.test"])
        self.assertEqual(r.json()["target"], "/echo?x=1")
        cookie = our_cookie(r)
        attrs = [a.strip().lower() for a in cookie.split(";")[1:]]
        self.assertIn("secure", attrs, f"session cookie over TLS without Secure: {cookie}")
        self.assertIn("httponly", attrs, cookie)
        self.assertEqual(r.headers_all("Strict-Transport-Security"), [HSTS])
        token = re.match(rf"{COOKIE}=([^;]*)", cookie).group(1)

        # Keep-alive over TLS: a second request on the same connection, with the session.
        r2 = c.roundtrip("GET", "/echo?x=2", headers=[("Cookie", f"{COOKIE}={token}")])
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(len(self.up.requests), 2)
        self.assertEqual(self.up.requests[0]["conn"], self.up.requests[1]["conn"])
        self.assertEqual(len(forwarded(r2, "X-Session-Id")), 1)
        self.assertEqual(r2.headers_all("Strict-Transport-Security"), [HSTS])

        # A big body both ways (records of 16 KiB, many SSL_write chunks).
        body = os.urandom(300_000)
        r3 = c.roundtrip("POST", "/upload", body=body, headers=[("Cookie", f"{COOKIE}={token}")])
        self.assertEqual(r3.status, 200, r3)
        import hashlib
        self.assertEqual(r3.json()["body_sha256"], hashlib.sha256(body).hexdigest())
        r4 = c.roundtrip("GET", "/bytes?n=2000000")
        self.assertEqual(len(r4.body), 2_000_000)
        self.assertEqual(hashlib.sha256(r4.body).hexdigest(), r4.header("X-Body-Sha256"))

        # Health is answered over TLS with HSTS too.
        h, _ = https_get(gw.port, "/healthz", gw.context())
        self.assertEqual(h.status, 200)
        self.assertEqual(h.headers_all("Strict-Transport-Security"), [HSTS])

    def test_no_hsts_header_unless_configured(self):
        gw = self.tls_gateway()
        r, _ = https_get(gw.port, "/echo", gw.context())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers_all("Strict-Transport-Security"), [])
        self.assertIn("secure", [a.strip().lower() for a in our_cookie(r).split(";")])

    def test_plain_http_on_the_tls_port_gets_no_http_answer(self):
        gw = self.tls_gateway()
        c = HttpClient(gw.port, test=self, timeout=5)
        c.request("GET", "/echo")
        closed, extra = c.is_closed(5.0)
        self.assertTrue(closed, "plain HTTP on the TLS port: connection left open")
        self.assertFalse(extra.startswith(b"HTTP/"), f"plain HTTP answered in clear: {extra[:100]!r}")
        self.assertEqual(self.up.requests, [])


# -- 2. versions, ciphers, ALPN -----------------------------------------------------------------

def tls11_context() -> ssl.SSLContext:
    return client_context(None, min_version=ssl.TLSVersion.TLSv1_1, max_version=ssl.TLSVersion.TLSv1_1,
                          ciphers="DEFAULT:@SECLEVEL=0")


def python_can_speak_tls11() -> bool:
    """Control: this Python/OpenSSL negotiates TLS 1.1 with a server that allows it."""
    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.load_cert_chain(PKI.default.cert, PKI.default.key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        srv.minimum_version = ssl.TLSVersion.TLSv1_1
        srv.maximum_version = ssl.TLSVersion.TLSv1_1
    srv.set_ciphers("DEFAULT:@SECLEVEL=0")
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(5)
    result = {}

    def serve():
        try:
            s, _ = ls.accept()
            with srv.wrap_socket(s, server_side=True) as t:
                result["server"] = t.version()
        except (OSError, ssl.SSLError) as e:
            result["error"] = repr(e)
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        with tls11_context().wrap_socket(socket.create_connection(ls.getsockname(), timeout=5)) as t:
            result["client"] = t.version()
    except (OSError, ssl.SSLError) as e:
        result["error"] = repr(e)
    th.join(5)
    ls.close()
    return result.get("client") == "TLSv1.1"


class Versions(TlsTestCase):
    def handshake(self, port: int, ctx: ssl.SSLContext, server_name="localhost"):
        """(version, None) on success, (None, error text) on failure."""
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            with ctx.wrap_socket(raw, server_hostname=server_name) as t:
                return t.version(), None
        except (ssl.SSLError, OSError) as e:
            return None, f"{type(e).__name__}: {e}"
        finally:
            raw.close()

    def test_tls11_refused(self):
        gw = self.tls_gateway()
        if python_can_speak_tls11():
            version, err = self.handshake(gw.port, tls11_context())
            self.assertIsNone(version, f"the gateway accepted {version}")
            self.assertIsNotNone(err)
        else:  # fall back to the openssl command
            r = s_client(gw.port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-servername", "localhost")
            out = r.stdout.decode(errors="replace")
            self.assertNotIn("Protocol  : TLSv1.1", out)
            self.assertNotEqual(r.returncode, 0, out[-2000:])
        # TLS 1.0 too, and the gateway still serves TLS 1.2 afterwards.
        ctx10 = client_context(None, min_version=ssl.TLSVersion.TLSv1, max_version=ssl.TLSVersion.TLSv1,
                               ciphers="DEFAULT:@SECLEVEL=0")
        self.assertIsNone(self.handshake(gw.port, ctx10)[0])
        v12, err = self.handshake(gw.port, gw.context(max_version=ssl.TLSVersion.TLSv1_2))
        self.assertEqual(v12, "TLSv1.2", err)
        v13, err = self.handshake(gw.port, gw.context())
        self.assertEqual(v13, "TLSv1.3", err)
        self.assertEqual(self.up.requests, [])

    def test_min_version_13_refuses_a_tls12_only_client(self):
        gw = self.tls_gateway(min_version="1.3")
        version, err = self.handshake(gw.port, gw.context(max_version=ssl.TLSVersion.TLSv1_2))
        self.assertIsNone(version, f"min_version 1.3 accepted {version}")
        c = HttpsClient(gw.port, gw.context(), test=self)
        self.assertEqual(c.version, "TLSv1.3")
        self.assertEqual(c.alpn, "http/1.1")
        self.assertEqual(c.roundtrip("GET", "/echo").status, 200)

    def test_tls12_default_ciphers_are_ecdhe_aead_only(self):
        gw = self.tls_gateway()
        tls12 = dict(max_version=ssl.TLSVersion.TLSv1_2)
        for cbc_or_rsa_kx in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "AES128-GCM-SHA256"):
            version, _ = self.handshake(gw.port, gw.context(ciphers=cbc_or_rsa_kx, **tls12))
            self.assertIsNone(version, f"TLS 1.2 with {cbc_or_rsa_kx} accepted")
        c = HttpsClient(gw.port, gw.context(ciphers="ECDHE-ECDSA-AES128-GCM-SHA256", **tls12), test=self)
        self.assertEqual(c.sock.cipher()[0], "ECDHE-ECDSA-AES128-GCM-SHA256")
        self.assertEqual(c.alpn, "http/1.1")

    def test_alpn_h2_only_client(self):
        """A client offering only h2 gets h2 (server.http2, the default); with server.http2 off
        the gateway must not claim h2 (no ALPN or a refusal). test_http2.py serves it."""
        gw = self.tls_gateway()
        c = HttpsClient(gw.port, gw.context(alpn=["h2"]), test=self)
        self.assertEqual(c.alpn, "h2")
        off = self.tls_gateway(overrides={"server": {"http2": False}})
        try:
            c = HttpsClient(off.port, off.context(alpn=["h2"]), test=self)
        except (ssl.SSLError, OSError):
            return  # no_application_protocol alert: acceptable (RFC 7301 §3.2)
        self.assertIn(c.alpn, (None,), f"the gateway selected {c.alpn!r} for an h2-only client")


# -- 3. SNI --------------------------------------------------------------------------------------

class Sni(TlsTestCase):
    def test_each_name_gets_its_certificate_unknown_gets_default(self):
        sni = [{"server_names": ["a.test"], "certificate": PKI.a.cert, "private_key": PKI.a.key},
               {"server_names": ["b.test", "*.b.test"], "certificate": PKI.b.cert, "private_key": PKI.b.key}]
        gw = self.tls_gateway(sni=sni)
        verified = gw.context()  # check_hostname: the certificate must match the name asked for
        for name, want_cn, want_dns in [("a.test", "a.test", ["a.test"]),
                                        ("b.test", "b.test", ["b.test", "*.b.test"]),
                                        ("x.b.test", "b.test", ["b.test", "*.b.test"]),
                                        ("A.TEST", "a.test", ["a.test"]),
                                        ("localhost", "localhost", ["localhost"])]:
            c = HttpsClient(gw.port, verified, server_name=name, test=self)
            cert = c.peer_cert()
            self.assertEqual(subject_cn(cert), want_cn, f"SNI {name}: {cert['subject']}")
            self.assertEqual(san_dns(cert), want_dns, f"SNI {name}")
            self.assertEqual(c.peer_serial(), {"a.test": PKI.a, "b.test": PKI.b,
                                               "localhost": PKI.default}[want_cn].serial)
            r = c.roundtrip("GET", "/echo", host=name)
            self.assertEqual(r.status, 200, f"SNI {name}: {r}")
            c.close()
        unverified_name = gw.context(check_hostname=False)
        for name in ("unknown.test", "a.b.b.test", "b.test.evil", None):
            c = HttpsClient(gw.port, unverified_name, server_name=name, test=self)
            self.assertEqual(subject_cn(c.peer_cert()), "localhost", f"SNI {name!r} should get the default")
            self.assertEqual(c.roundtrip("GET", "/echo").status, 200)
            c.close()


# -- 4. resumption --------------------------------------------------------------------------------

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


class Resumption(TlsTestCase):
    def resume(self, port: int, version_flag: str, tmp: str) -> tuple[str, str]:
        sess = os.path.join(tmp, f"sess{version_flag}")
        common = [version_flag, "-servername", "localhost", "-CAfile", PKI.ca_cert, "-ign_eof"]
        first = s_client(port, *common, "-sess_out", sess, stdin=REQUEST)
        out1 = first.stdout.decode(errors="replace")
        self.assertIn("HTTP/1.1 200", out1, f"first s_client {version_flag}: {out1[-3000:]}")
        self.assertTrue(os.path.getsize(sess) > 0, f"no session saved with {version_flag}")
        second = s_client(port, *common, "-sess_in", sess, stdin=REQUEST)
        out2 = second.stdout.decode(errors="replace")
        self.assertIn("HTTP/1.1 200", out2, out2[-3000:])
        return out1, out2

    def test_resumption_tls12_and_tls13(self):
        gw = self.tls_gateway()
        tmp = tempfile.mkdtemp(prefix="sg-sess-")
        self.addCleanup(shutil.rmtree, tmp, True)
        for flag, proto in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            out1, out2 = self.resume(gw.port, flag, tmp)
            self.assertIn(f"New, {proto}", out1)
            self.assertIn(f"Reused, {proto}", out2, f"{proto} session not resumed:\n{out2[-3000:]}")

    def test_resumption_survives_a_certificate_reload(self):
        """Ticket keys are handed over on reload (TlsServerContext::load(previous))."""
        gw = self.tls_gateway()
        for max_v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = gw.context(max_version=max_v)
            c = HttpsClient(gw.port, ctx, test=self)
            self.assertEqual(c.roundtrip("GET", "/healthz").status, 200)  # TLS 1.3 ticket arrives
            session = c.session
            c.close()
            self.assertIsNotNone(session)
            c2 = HttpsClient(gw.port, ctx, session=session, test=self)
            self.assertTrue(c2.session_reused, f"{max_v.name}: not resumed before the reload")
            self.assertEqual(c2.roundtrip("GET", "/healthz").status, 200)
            session = c2.session
            c2.close()
            reload(gw, "applied")
            c3 = HttpsClient(gw.port, ctx, session=session, test=self)
            self.assertEqual(c3.roundtrip("GET", "/healthz").status, 200)
            self.assertTrue(c3.session_reused, f"{max_v.name}: ticket not accepted after a reload")
            c3.close()


# -- 5. reload -----------------------------------------------------------------------------------

class CertTraffic:
    """HTTPS clients during a reload: one keep-alive connection and one new connection per
    request; every failure is recorded, and the serial of each new connection's certificate."""

    def __init__(self, port: int, ctx: ssl.SSLContext):
        self.port, self.ctx = port, ctx
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.done = {"keepalive": 0, "fresh": 0}
        self.fresh_serials: list[tuple[float, bytes]] = []  # (connect started, DER) per new connection
        self.keepalive_connections = 0
        self.threads = [threading.Thread(target=self._keepalive, daemon=True),
                        threading.Thread(target=self._fresh, daemon=True)]

    def count(self, kind):
        with self.lock:
            return self.done[kind]

    def last_serial(self):
        with self.lock:
            return self.fresh_serials[-1][1] if self.fresh_serials else None

    def _record(self, kind, i, resp=None, exc=None):
        with self.lock:
            if exc is not None:
                self.errors.append(f"{kind} {i}: {type(exc).__name__}: {exc}")
            elif resp.status != 200:
                self.errors.append(f"{kind} {i}: status {resp.status}: {resp!r}"[:500])
            else:
                self.done[kind] += 1

    def _keepalive(self):
        c, i = None, 0
        while not self.stop.is_set():
            i += 1
            try:
                if c is None:
                    c = HttpsClient(self.port, self.ctx, timeout=10)
                    with self.lock:
                        self.keepalive_connections += 1
                resp = c.roundtrip("GET", f"/echo?ka={i}")
                self._record("keepalive", i, resp)
                if "close" in resp.tokens("Connection"):
                    c.close()
                    c = None
            except (OSError, ConnectionClosed, AssertionError, ValueError) as e:
                self._record("keepalive", i, exc=e)
                if c is not None:
                    c.close()
                c = None
        if c is not None:
            c.close()

    def _fresh(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            c = None
            try:
                started = time.monotonic()
                c = HttpsClient(self.port, self.ctx, timeout=10)
                serial = c.peer_der()
                c.request("GET", f"/echo?fresh={i}", headers=[("Connection", "close")])
                resp = c.read_response()
                self._record("fresh", i, resp)
                with self.lock:
                    self.fresh_serials.append((started, serial))
            except (OSError, ConnectionClosed, AssertionError, ValueError) as e:
                self._record("fresh", i, exc=e)
            finally:
                if c is not None:
                    c.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=20)


def copy_cert(cert, directory: str, stem: str):
    """Copies of `cert`'s files under fixed names (what the config points at)."""
    c, k = os.path.join(directory, stem + ".pem"), os.path.join(directory, stem + ".key")
    shutil.copyfile(cert.cert, c)
    shutil.copyfile(cert.key, k)
    os.chmod(k, 0o600)
    return c, k


def replace_file(src: str, dst: str):
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, dst)


class Reload(TlsTestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="sg-tls-reload-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_reload_swaps_the_certificate_under_load(self):
        cert_path, key_path = copy_cert(PKI.default, self.tmp, "live")
        new = PKI.issue("localhost-2", ["DNS:localhost", "IP:127.0.0.1"], stem="localhost-2")
        self.assertNotEqual(new.serial, PKI.default.serial)
        from harness import merge
        gw = TlsGateway(self, self.up.port,
                        merge({"tls": {"certificate": cert_path, "private_key": key_path}},
                              {"server": {"workers": 2}, "log": {"access": "off"}}), ca=PKI.ca_cert)
        ctx = gw.context()
        traffic = CertTraffic(gw.port, ctx).start()
        self.addCleanup(traffic.finish)
        try:
            wait_until(lambda: traffic.count("keepalive") >= 20 and traffic.count("fresh") >= 10, 15,
                       message="traffic to start")
            self.assertEqual(traffic.last_serial(), PKI.default.der)
            # Key first, then certificate: a reload must not see a mismatched pair, so SIGHUP
            # only after both files are in place.
            replace_file(new.key, key_path)
            replace_file(new.cert, cert_path)
            ka, fr = traffic.count("keepalive"), traffic.count("fresh")
            taken0 = gw.logs()[1].count(RELOAD_TAKEN_UP)
            reload(gw, "applied")
            # Workers swap contexts one after another; once the gateway logs that every worker has
            # taken the reload up, no connection started later may see the old certificate.
            wait_until(lambda: gw.logs()[1].count(RELOAD_TAKEN_UP) > taken0, 30,
                       message=lambda: f"every worker to take the reload up: {gw.logs()[1][-1500:]}")
            all_swapped = time.monotonic()  # observed at or after the last worker swapped
            wait_until(lambda: traffic.last_serial() == new.der, 30,
                       message="a new connection to see the new certificate")
            wait_until(lambda: traffic.count("keepalive") >= ka + 300 and traffic.count("fresh") >= fr + 100
                       and sum(1 for t, _ in list(traffic.fresh_serials) if t > all_swapped) >= 50, 60,
                       message="traffic to progress after the reload")
        finally:
            traffic.finish()
        print(f"\n[tls reload] {traffic.done} requests, {traffic.keepalive_connections} keep-alive connection(s)")
        self.assertEqual(traffic.errors, [], f"{len(traffic.errors)} failed request(s) across the reload")
        self.assertEqual(traffic.keepalive_connections, 1, "the keep-alive connection was dropped")
        seen = traffic.fresh_serials
        self.assertEqual({der for _, der in seen}, {PKI.default.der, new.der}, "a certificate neither old nor new")
        late_old = [t - all_swapped for t, der in seen if der != new.der and t > all_swapped]
        self.assertEqual(late_old, [], "the old certificate was served after every worker took the reload up")
        c = HttpsClient(gw.port, ctx, test=self)
        self.assertEqual(subject_cn(c.peer_cert()), "localhost-2")
        self.assertEqual(c.peer_serial(), new.serial)

    def test_bad_key_on_reload_keeps_the_old_certificate(self):
        cert_path, key_path = copy_cert(PKI.default, self.tmp, "live")
        gw = TlsGateway(self, self.up.port, {"tls": {"certificate": cert_path, "private_key": key_path}},
                        ca=PKI.ca_cert)
        ctx = gw.context()
        keep = HttpsClient(gw.port, ctx, test=self)
        self.assertEqual(keep.roundtrip("GET", "/echo").status, 200)

        new = PKI.issue("localhost-3", ["DNS:localhost", "IP:127.0.0.1"], stem="localhost-3")
        # 1. a new certificate with a key that does not match it (the old key stays)
        replace_file(new.cert, cert_path)
        reload(gw, "failed")
        # 2. a key file that is not PEM at all
        replace_file(PKI.default.cert, cert_path)
        with open(key_path + ".new", "w") as f:
            f.write("not a key\n")
        os.replace(key_path + ".new", key_path)
        reload(gw, "failed")
        err = gw.logs()[1]
        self.assertIn("reload failed", err)
        self.assertIn(key_path, err, "the failed reload does not name the key file")

        for _ in range(3):
            c = HttpsClient(gw.port, ctx, test=self)
            self.assertEqual(c.peer_serial(), PKI.default.serial, "the old certificate is no longer served")
            self.assertEqual(c.roundtrip("GET", "/echo").status, 200)
            c.close()
        self.assertEqual(keep.roundtrip("GET", "/echo").status, 200, "keep-alive connection broken by the failed reload")
        replace_file(PKI.default.key, key_path)  # a loadable pair for the final stop


# -- 6. TLS to the upstream ----------------------------------------------------------------------

class UpstreamTls(unittest.TestCase):
    def gateway(self, up, **upstream_keys) -> Gateway:
        keys = {"tls": True}
        keys.update(upstream_keys)
        return Gateway(self, up.port, {"upstream": keys, "log": {"level": "debug"}})

    def test_verified_with_ca_file_and_server_name(self):
        up = start_tls_upstream(self, PKI.app)
        gw = self.gateway(up, ca_file=PKI.ca_cert, server_name="app.test")
        r = simple_get(gw.port, "/echo?tls=1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["target"], "/echo?tls=1")
        self.assertEqual(forwarded(r, "X-Forwarded-Proto"), ["http"])
        # pooled: a second request reuses the TLS connection
        c = HttpClient(gw.port, test=self)
        for i in range(3):
            self.assertEqual(c.roundtrip("GET", f"/echo?i={i}").status, 200)
        self.assertLessEqual(up.handshakes, 2)
        r = simple_get(gw.port, "/bytes?n=1000000")
        self.assertEqual(len(r.body), 1_000_000)

    def test_ip_literal_address_verified_against_ip_san(self):
        up = start_tls_upstream(self, PKI.app)  # app.test has IP:127.0.0.1
        gw = self.gateway(up, ca_file=PKI.ca_cert)
        self.assertEqual(simple_get(gw.port, "/echo").status, 200)

    def test_wrong_ca_is_502(self):
        up = start_tls_upstream(self, PKI.app)
        gw = self.gateway(up, ca_file=PKI.other_ca.ca_cert, server_name="app.test")
        r = simple_get(gw.port, "/echo")
        self.assertEqual(r.status, 502, r)
        self.assertEqual(up.requests, [])

    def test_hostname_mismatch_is_502(self):
        up = start_tls_upstream(self, PKI.app)
        gw = self.gateway(up, ca_file=PKI.ca_cert, server_name="other.test")
        r = simple_get(gw.port, "/echo")
        self.assertEqual(r.status, 502, r)
        self.assertEqual(up.requests, [])

    def test_verify_false_accepts_any_certificate(self):
        up = start_tls_upstream(self, PKI.app)
        gw = self.gateway(up, ca_file=PKI.other_ca.ca_cert, server_name="other.test", verify=False)
        self.assertEqual(simple_get(gw.port, "/echo").status, 200)

    def test_plain_upstream_with_tls_on_is_502(self):
        up = start_upstream(self)
        gw = self.gateway(up, ca_file=PKI.ca_cert, server_name="app.test",
                          connect_timeout="2s", response_timeout="2s")
        r = simple_get(gw.port, "/echo")
        self.assertIn(r.status, (502, 504), r)

    def test_mtls_upstream_sees_the_gateway_certificate(self):
        up = start_tls_upstream(self, PKI.app, client_ca=PKI.ca_cert)
        gw = self.gateway(up, ca_file=PKI.ca_cert, server_name="app.test",
                          certificate=PKI.client.cert, private_key=PKI.client.key)
        r = simple_get(gw.port, "/echo")
        self.assertEqual(r.status, 200, r)
        self.assertGreaterEqual(len(up.peer_certs), 1)
        self.assertEqual(subject_cn(up.peer_certs[0]), "gateway-client")

    def test_mtls_without_client_certificate_is_502(self):
        up = start_tls_upstream(self, PKI.app, client_ca=PKI.ca_cert)
        gw = self.gateway(up, ca_file=PKI.ca_cert, server_name="app.test")
        r = simple_get(gw.port, "/echo")
        self.assertEqual(r.status, 502, r)
        self.assertEqual(up.requests, [])
        wait_until(lambda: up.handshake_errors, 5, message="the upstream to refuse the handshake")

    def test_https_client_to_https_upstream(self):
        up = start_tls_upstream(self, PKI.app, client_ca=PKI.ca_cert)
        gw = TlsGateway(self, up.port, {"tls": {"certificate": PKI.default.cert, "private_key": PKI.default.key},
                                        "upstream": {"tls": True, "ca_file": PKI.ca_cert, "server_name": "app.test",
                                                     "certificate": PKI.client.cert,
                                                     "private_key": PKI.client.key}}, ca=PKI.ca_cert)
        r, _ = https_get(gw.port, "/echo", gw.context())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(forwarded(r, "X-Forwarded-Proto"), ["https"])


# -- 7. redirect listener ------------------------------------------------------------------------

class RedirectListener(TlsTestCase):
    def test_plain_requests_get_308_to_https_except_health(self):
        rport = free_port()
        gw = self.tls_gateway(overrides={"server": {"redirect_listen": f"127.0.0.1:{rport}"}},
                              strict_transport_security=HSTS)
        wait_until(lambda: _answers(rport), 5, message="the redirect listener")
        r = simple_get(rport, "/some/path?q=1&b=%20x", headers=[("Host", f"gw.test:{rport}")])
        self.assertEqual(r.status, 308, r)
        self.assertEqual(r.header("Location"), f"https://gw.test:{gw.port}/some/path?q=1&b=%20x")
        self.assertEqual(r.headers_all("Strict-Transport-Security"), [], "HSTS over plain HTTP")
        self.assertEqual([v for v in r.headers_all("Set-Cookie") if v.startswith(COOKIE)], [],
                         "a session cookie on the plain redirect")
        r = simple_get(rport, "/", headers=[("Host", "gw.test")])
        self.assertEqual(r.status, 308, r)
        self.assertEqual(r.header("Location"), f"https://gw.test:{gw.port}/")
        r = simple_get(rport, "/x", headers=[("Host", "[::1]:80")])
        self.assertEqual(r.header("Location"), f"https://[::1]:{gw.port}/x")
        # POST too (308 keeps the method)
        c = HttpClient(rport, test=self)
        r = c.roundtrip("POST", "/form", body=b"a=1", host="gw.test")
        self.assertEqual(r.status, 308, r)
        for path in ("/healthz",):
            h = simple_get(rport, path, headers=[("Host", "gw.test")])
            self.assertEqual(h.status, 200, f"{path} on the redirect listener: {h}")
            self.assertIsNone(h.header("Location"))
        self.assertEqual(self.up.requests, [], "the redirect listener forwarded a request")

    def test_redirect_uses_canonical_host_and_refuses_an_invalid_host(self):
        rport = free_port()
        gw = self.tls_gateway(overrides={"server": {"redirect_listen": f"127.0.0.1:{rport}",
                                                    "canonical_host": "www.example.test"}})
        wait_until(lambda: _answers(rport), 5, message="the redirect listener")
        r = simple_get(rport, "/p?q=1", headers=[("Host", "evil.example")])
        self.assertEqual(r.status, 308, r)
        self.assertEqual(r.header("Location"), f"https://www.example.test:{gw.port}/p?q=1")
        date = r.header("Date")
        self.assertIsNotNone(date, r.headers)
        self.assertLess(abs(email.utils.parsedate_to_datetime(date).timestamp() - time.time()), 60)
        # A Host that is not uri-host[:port] never reaches a Location: 400.
        for bad in ("evil.example/path?x=", "a@evil.example", "a, b", "a b", ""):
            with self.subTest(host=bad):
                r = simple_get(rport, "/p", headers=[("Host", bad)])
                self.assertEqual(r.status, 400, r)
                self.assertIsNone(r.header("Location"))

    def test_canonical_host_with_a_port_is_used_as_it_is(self):
        rport = free_port()
        self.tls_gateway(overrides={"server": {"redirect_listen": f"127.0.0.1:{rport}",
                                               "canonical_host": "www.example.test:8443"}})
        wait_until(lambda: _answers(rport), 5, message="the redirect listener")
        r = simple_get(rport, "/x", headers=[("Host", "gw.test")])
        self.assertEqual(r.header("Location"), "https://www.example.test:8443/x")


def _answers(port):
    try:
        return simple_get(port, "/healthz", timeout=1).status == 200
    except (OSError, ConnectionClosed):
        return False


# -- 8. handshake timeout ------------------------------------------------------------------------

class HandshakeTimeout(TlsTestCase):
    def test_silent_client_closed_after_handshake_timeout(self):
        gw = self.tls_gateway(handshake_timeout="1s")
        for partial in (b"", bytes.fromhex("160301")):  # nothing; a record header then silence
            c = HttpClient(gw.port, test=self)
            if partial:
                c.send(partial)
            t0 = time.monotonic()
            # The subject is the timeout: never before it; after it, within a generous deadline (a
            # loaded machine fires timers late, a gateway without the timeout never closes).
            closed, extra = c.is_closed(20.0)
            elapsed = time.monotonic() - t0
            self.assertTrue(closed, f"silent TLS client (sent {partial!r}) still connected after 20s")
            self.assertGreaterEqual(elapsed, 0.8, f"closed after {elapsed:.2f}s, before handshake_timeout")
        # A completed handshake is not subject to it: idle keep-alive connections live on.
        k = HttpsClient(gw.port, gw.context(), test=self)
        time.sleep(2.0)  # the scenario itself: idle for longer than handshake_timeout
        self.assertEqual(k.roundtrip("GET", "/echo").status, 200)


# -- 9. --check ----------------------------------------------------------------------------------

class Check(unittest.TestCase):
    def test_check_with_a_key_that_does_not_match_the_certificate(self):
        d = tempfile.mkdtemp(prefix="sg-check-")
        self.addCleanup(shutil.rmtree, d, True)
        from harness import base_config, merge
        path = os.path.join(d, "gateway.toml")
        good = merge(base_config(free_port(), 9), tls_overrides(PKI.default))
        with open(path, "w") as f:
            f.write(render_config(good))
        r = run_cli("--check", "--config", path)
        self.assertEqual(r.returncode, 0, r.stderr)

        bad = merge(base_config(free_port(), 9), {"tls": {"certificate": PKI.default.cert,
                                                          "private_key": PKI.a.key}})
        with open(path, "w") as f:
            f.write(render_config(bad))
        r = run_cli("--check", "--config", path)
        self.assertEqual(r.returncode, 1, f"--check accepted a mismatched key: {r.stdout} {r.stderr}")
        self.assertIn(PKI.a.key, r.stderr + r.stdout, f"the message does not name the key file: {r.stderr}")

        # The same in an SNI entry.
        sni = [{"server_names": ["a.test"], "certificate": PKI.a.cert, "private_key": PKI.b.key}]
        with open(path, "w") as f:
            f.write(render_config(good, sni))
        r = run_cli("--check", "--config", path)
        self.assertEqual(r.returncode, 1, f"--check accepted a mismatched SNI key: {r.stdout} {r.stderr}")
        self.assertIn(PKI.b.key, r.stderr + r.stdout, r.stderr)

        # Starting with it fails too, rather than serving without TLS.
        with open(path, "w") as f:
            f.write(render_config(bad))
        import subprocess
        from harness import gateway_bin
        p = subprocess.run([gateway_bin(), "--config", path], capture_output=True, text=True, timeout=10)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(PKI.a.key, p.stderr)


if __name__ == "__main__":
    unittest.main()
