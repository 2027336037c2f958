"""TLS helpers for the integration tests (stdlib ``ssl`` plus the ``openssl`` command).

- ``Pki(dir)``: a throw-away CA made with ``openssl`` at test time. ``issue(name, sans, ...)`` makes
  a leaf (server or client) certificate and key signed by it; ``Pki.other_ca`` is a second,
  unrelated CA for "wrong CA" tests. ``make_pki(test)`` makes one in a temp dir removed at cleanup,
  with the certificates the TLS tests share: ``localhost`` (default listener certificate, DNS
  localhost + IP 127.0.0.1), ``a.test`` and ``b.test`` (SNI), ``app.test`` (TLS upstream) and
  ``gateway-client`` (client certificate for mTLS).
- ``client_context(ca, ...)``: an ``ssl.SSLContext`` for talking to the gateway's TLS listener.
- ``HttpsClient``: the harness's ``HttpClient`` over a TLS socket (same request/response API), plus
  the TLS facts of the connection (version, ALPN, peer certificate, resumption).
- ``TlsGateway``: a harness ``Gateway`` with ``[tls]`` on: renders ``[[tls.certificates]]`` (the
  harness TOML writer has no arrays of tables) and waits for /healthz over TLS.
- ``TlsUpstream``: the harness ``Upstream`` with every accepted connection wrapped in TLS (optionally
  requiring a client certificate); records the client certificates it saw and handshake errors.
- ``s_client(...)``: runs ``openssl s_client`` with a bounded timeout.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import warnings

from harness import ConnectionClosed, Gateway, HttpClient, IO_TIMEOUT_S, READY_DEADLINE_S, to_toml
from upstream import Upstream

OPENSSL = shutil.which("openssl") or "openssl"


def run_openssl(*args: str, cwd: str | None = None, timeout: float = 30.0) -> str:
    r = subprocess.run([OPENSSL, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r.stdout


# -- certificates -------------------------------------------------------------------------------

class Cert:
    """A PEM certificate and key on disk, with what went into it."""

    def __init__(self, cert: str, key: str, cn: str, serial: int, sans: list[str]):
        self.cert, self.key, self.cn, self.serial, self.sans = cert, key, cn, serial, sans

    @property
    def der(self) -> bytes:
        with open(self.cert) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    def __repr__(self):
        return f"<Cert CN={self.cn} serial={self.serial:#x} {self.cert}>"


class Pki:
    """A CA in `directory`; leaf certificates are EC P-256 unless `rsa` is asked for."""

    def __init__(self, directory: str, name: str = "ca", cn: str = "sessiongate test CA"):
        self.dir = directory
        self.name = name
        self.ca_cert = os.path.join(directory, f"{name}.pem")
        self.ca_key = os.path.join(directory, f"{name}.key")
        self._serial = int.from_bytes(os.urandom(6), "big") | 1
        run_openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", self.ca_key, "-out", self.ca_cert, "-days", "3",
                    "-subj", f"/CN={cn}",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        os.chmod(self.ca_key, 0o600)
        self.other_ca: Pki | None = None

    def issue(self, cn: str, sans: list[str] | None = None, client: bool = False, rsa: bool = False,
              stem: str | None = None, serial: int | None = None) -> Cert:
        """A leaf certificate for `cn` with subjectAltName `sans` ("DNS:x", "IP:1.2.3.4")."""
        stem = stem or cn.replace("*", "star")
        cert = os.path.join(self.dir, f"{stem}.pem")
        key = os.path.join(self.dir, f"{stem}.key")
        csr = os.path.join(self.dir, f"{stem}.csr")
        ext = os.path.join(self.dir, f"{stem}.ext")
        sans = list(sans if sans is not None else [f"DNS:{cn}"])
        if serial is None:
            self._serial += 1
            serial = self._serial
        lines = ["basicConstraints=critical,CA:FALSE",
                 "keyUsage=critical,digitalSignature" + (",keyEncipherment" if rsa else ""),
                 "extendedKeyUsage=" + ("clientAuth" if client else "serverAuth")]
        if sans:
            lines.append("subjectAltName=" + ",".join(sans))
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        newkey = ["-newkey", "rsa:2048"] if rsa else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        run_openssl("req", "-new", *newkey, "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
        run_openssl("x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
                    "-set_serial", str(serial), "-days", "2", "-sha256", "-extfile", ext, "-out", cert)
        os.chmod(key, 0o600)
        return Cert(cert, key, cn, serial, sans)


def make_pki(test: unittest.TestCase | None = None) -> Pki:
    """A CA plus the shared certificates (see the module doc), in a temp dir."""
    d = tempfile.mkdtemp(prefix="sg-tls-")
    if test is not None:
        test.addCleanup(shutil.rmtree, d, True)
    pki = Pki(d)
    pki.default = pki.issue("localhost", ["DNS:localhost", "IP:127.0.0.1"])
    pki.a = pki.issue("a.test", ["DNS:a.test"])
    pki.b = pki.issue("b.test", ["DNS:b.test", "DNS:*.b.test"])
    pki.app = pki.issue("app.test", ["DNS:app.test", "IP:127.0.0.1"])
    pki.client = pki.issue("gateway-client", [], client=True)
    pki.other_ca = Pki(d, name="other-ca", cn="unrelated test CA")
    return pki


def cert_serial(der: bytes) -> int:
    """The serial number of a DER certificate (via ``openssl x509``)."""
    r = subprocess.run([OPENSSL, "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                       capture_output=True, timeout=10)
    if r.returncode != 0:
        raise AssertionError(f"openssl x509 could not read the peer certificate: {r.stderr!r}")
    return int(r.stdout.decode().strip().split("=", 1)[1], 16)


def subject_cn(cert: dict) -> str | None:
    """commonName from an ``SSLSocket.getpeercert()`` dict."""
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def san_dns(cert: dict) -> list[str]:
    return [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]


# -- client side --------------------------------------------------------------------------------

def client_context(ca: str | None, check_hostname: bool = True, min_version=None, max_version=None,
                   alpn: list[str] | None = ("http/1.1",), ciphers: str | None = None,
                   cert: Cert | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(ca)
        ctx.check_hostname = check_hostname
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 is deprecated (on purpose)
        if min_version is not None:
            ctx.minimum_version = min_version
        if max_version is not None:
            ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


class HttpsClient(HttpClient):
    """``HttpClient`` over TLS. `server_name` is the SNI (and verified name); None sends none."""

    def __init__(self, port: int, ctx: ssl.SSLContext, server_name: str | None = "localhost",
                 test: unittest.TestCase | None = None, timeout: float = IO_TIMEOUT_S,
                 host: str = "127.0.0.1", session: ssl.SSLSession | None = None):
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=server_name, session=session)
        except BaseException:
            raw.close()
            raise
        self.buf = bytearray()
        self.eof = False
        self.received_total = 0
        if test is not None:
            test.addCleanup(self.close)

    def _fill(self) -> bool:
        try:
            return super()._fill()
        except ssl.SSLError:  # a TLS alert or a broken record ends the connection like a reset
            self.eof = True
            return False

    @property
    def version(self) -> str:
        return self.sock.version()

    @property
    def alpn(self) -> str | None:
        return self.sock.selected_alpn_protocol()

    def peer_cert(self) -> dict:
        """The verified peer certificate as a dict (needs a context with a CA)."""
        return self.sock.getpeercert()

    def peer_serial(self) -> int:
        return cert_serial(self.sock.getpeercert(binary_form=True))

    def peer_der(self) -> bytes:
        return self.sock.getpeercert(binary_form=True)

    @property
    def session(self) -> ssl.SSLSession | None:
        return self.sock.session

    @property
    def session_reused(self) -> bool:
        return self.sock.session_reused


def https_get(port: int, target: str, ctx: ssl.SSLContext, server_name: str | None = "localhost",
              headers=None, timeout: float = 5.0):
    """One GET over a fresh TLS connection (Connection: close); returns (response, client)."""
    c = HttpsClient(port, ctx, server_name=server_name, timeout=timeout)
    try:
        c.request("GET", target, headers=list(headers or []) + [("Connection", "close")])
        return c.read_response(), c
    finally:
        c.close()


# -- the gateway with TLS -----------------------------------------------------------------------

def render_config(config: dict, sni: list[dict] | None = None) -> str:
    """TOML for `config` plus one [[tls.certificates]] block per entry of `sni`
    ({"server_names": [...], "certificate": path, "private_key": path})."""
    text = to_toml(config)
    for entry in sni or []:
        text += "\n" + to_toml({"tls.certificates": entry}).replace("[tls.certificates]", "[[tls.certificates]]", 1)
    return text


def tls_overrides(cert: Cert, **tls_keys) -> dict:
    keys = {"certificate": cert.cert, "private_key": cert.key}
    keys.update(tls_keys)
    return {"tls": keys}


class TlsGateway(Gateway):
    """A Gateway whose listener speaks TLS. `ca` verifies it at start (GET /healthz over TLS);
    `sni` becomes [[tls.certificates]] blocks."""

    def __init__(self, test, upstream_port: int, overrides: dict, ca: str, sni: list[dict] | None = None,
                 start: bool = True):
        self.ca = ca
        self.sni = list(sni or [])
        super().__init__(test, upstream_port, overrides, start=False)
        if start:
            self.start()

    def render(self, overrides: dict | None = None, sni: list[dict] | None = None) -> str:
        from harness import merge
        return render_config(merge(self.config(), overrides), self.sni if sni is None else sni)

    def start(self) -> "TlsGateway":
        # Gateway.start() writes to_toml(self.config()) itself; rewrite the file with the
        # [[tls.certificates]] blocks before the process reads it by wrapping config() output.
        import harness
        original = harness.to_toml
        me = self

        def to_toml_with_sni(sections):
            if sections == me.config():
                return render_config(sections, me.sni)
            return original(sections)
        harness.to_toml = to_toml_with_sni
        try:
            return super().start()
        finally:
            harness.to_toml = original

    def context(self, **kw) -> ssl.SSLContext:
        return client_context(self.ca, **kw)

    def _wait_ready(self) -> tuple[bool, str]:
        ctx = client_context(self.ca, check_hostname=False)
        deadline = time.monotonic() + READY_DEADLINE_S
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.logs()
                return False, f"exited with {self.proc.returncode}; stderr: {err[-3000:]} stdout: {out[-1000:]}"
            try:
                r, _ = https_get(self.port, "/healthz", ctx, timeout=1.0)
                if r.status == 200 and self._admin_accepts():  # it opens after the listeners
                    return True, ""
            except (OSError, ConnectionClosed, AssertionError) as e:
                last = repr(e)
            time.sleep(0.02)
        return False, f"no 200 from /healthz over TLS within {READY_DEADLINE_S}s ({last}); stderr: {self.logs()[1][-3000:]}"


# -- the upstream with TLS ----------------------------------------------------------------------

class TlsUpstream(Upstream):
    """The test upstream behind TLS. With `client_ca`, a client certificate signed by it is
    required (ssl.CERT_REQUIRED). ``peer_certs`` holds the client certificates seen (dicts),
    ``handshake_errors`` the failed handshakes."""

    def __init__(self, cert: Cert, client_ca: str | None = None):
        super().__init__()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert.cert, cert.key)
        if client_ca is not None:
            self.ctx.load_verify_locations(client_ca)
            self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.peer_certs: list[dict] = []
        self.handshake_errors: list[str] = []
        self.handshakes = 0

    def _serve(self, sock: socket.socket, conn_no: int) -> None:
        with self._lock:
            self._socks.discard(sock)
        sock.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self._lock:
                self.handshake_errors.append(f"{type(e).__name__}: {e}")
            try:
                sock.close()
            except OSError:
                pass
            return
        tls.settimeout(None)
        with self._lock:
            self.handshakes += 1
            self._socks.add(tls)
            cert = tls.getpeercert()
            if cert:
                self.peer_certs.append(cert)
        try:
            super()._serve(tls, conn_no)
        except ssl.SSLError:
            pass


def start_tls_upstream(test: unittest.TestCase, cert: Cert, client_ca: str | None = None) -> TlsUpstream:
    up = TlsUpstream(cert, client_ca).start()
    test.addCleanup(up.stop)
    return up


# -- openssl s_client ---------------------------------------------------------------------------

def s_client(port: int, *args: str, stdin: bytes = b"", timeout: float = 15.0,
             host: str = "127.0.0.1") -> subprocess.CompletedProcess:
    """``openssl s_client -connect host:port ARGS`` with `stdin`; stdout+stderr text in .stdout."""
    return subprocess.run([OPENSSL, "s_client", "-connect", f"{host}:{port}", *args], input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
