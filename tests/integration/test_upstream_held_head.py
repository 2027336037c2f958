"""A pooled upstream connection that closes while the session store applies the response's
directives (the response head arrived, the store call pends) must not make the gateway send the
request again: the application has already answered it. The client gets 502 and the application
sees the request once.

How the close reaches the gateway while the head is held: the upstream speaks TLS and sends the
response and its close_notify in one write, so the gateway reads both in one read (over plain TCP
the gateway stops reading while the head is held and would not see the close). The store is Redis,
stopped (SIGSTOP) by the upstream just before it answers, so the directive call cannot complete before the
close is handled; the test resumes Redis only once the gateway has either counted the upstream
failure or sent the request again, so nothing here depends on a timing."""

import socket
import ssl
import threading
import unittest

from harness import FREE_ADMIN_LISTEN, Gateway, simple_get, wait_until
from ops_util import metric_value
from redis_util import RedisServer, require_tools
from tls_util import make_pki

PLAIN_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
DIRECTIVE = b"HTTP/1.1 200 OK\r\nX-Session-Set-User: alice\r\nContent-Length: 0\r\n\r\n"


class MemoryBioUpstream:
    """TLS upstream over ssl.MemoryBIO, so the response and close_notify leave in one send.
    /ok answers 200 and keeps the connection; /directive calls before_directive(), answers with a session directive,
    then close_notify, then closes. ``targets`` lists every request received, on any connection."""

    def __init__(self, test, cert, before_directive):
        self.before_directive = before_directive
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert.cert, cert.key)
        self.targets: list[str] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()
        test.addCleanup(self.stop)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._listener.close()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, sock: socket.socket):
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx.wrap_bio(inc, out, server_side=True)
        sock.settimeout(0.2)
        buf = b""
        handshaken = False
        try:
            while not self._stop.is_set():
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                inc.write(data)
                try:
                    if not handshaken:
                        tls.do_handshake()
                        handshaken = True
                    while True:
                        buf += tls.read(65536)
                except ssl.SSLWantReadError:
                    pass
                sock.sendall(out.read())
                while b"\r\n\r\n" in buf:
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    target = head.split(b" ")[1].decode()
                    with self._cond:
                        self.targets.append(target)
                        self._cond.notify_all()
                    if target != "/directive":
                        tls.write(PLAIN_OK)
                        sock.sendall(out.read())
                        continue
                    self.before_directive()
                    tls.write(DIRECTIVE)
                    try:
                        tls.unwrap()  # writes close_notify; the peer's never comes
                    except ssl.SSLWantReadError:
                        pass
                    sock.sendall(out.read())  # the response and close_notify together
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            sock.close()


class HeldHeadClose(unittest.TestCase):
    def test_no_retry_once_the_response_head_arrived(self):
        require_tools("redis-server")
        pki = make_pki(self)
        redis = RedisServer(self)
        # Redis stops before the response leaves: the directive's store call cannot complete
        # until the test resumes it.
        up = MemoryBioUpstream(self, pki.app, before_directive=redis.suspend)
        gw = Gateway(self, up.port, {
            "server": {"workers": 1},
            "admin": {"listen": FREE_ADMIN_LISTEN},
            "upstream": {"tls": True, "ca_file": pki.ca_cert, "server_name": "app.test"},
            "session": {"store": "redis"},
            "store.redis": {"address": redis.address, "timeout": "60s"},
        })
        wait_until(lambda: "redis store: connected to" in gw.logs()[1], 10.0,
                   message=lambda: gw.logs()[1][-2000:])
        self.assertEqual(simple_get(gw.port, "/ok").status, 200)  # leaves a pooled connection

        result = {}

        def client():
            try:
                result["status"] = simple_get(gw.port, "/directive", timeout=60.0).status
            except Exception as e:  # noqa: BLE001 - reported below
                result["error"] = repr(e)

        t = threading.Thread(target=client, daemon=True)
        t.start()

        def closed_early() -> float:
            return metric_value(gw.admin_port, "sessiongate_upstream_errors_total", kind="closed_early")

        # Either the gateway gave up on the closed connection, or (the bug) it sent the request
        # again on a fresh one.
        wait_until(lambda: closed_early() >= 1 or up.targets.count("/directive") >= 2, 20.0,
                   message=lambda: f"targets {up.targets}")
        redis.resume()
        t.join(60)
        self.assertFalse(t.is_alive())
        self.assertEqual(up.targets.count("/directive"), 1, up.targets)
        self.assertEqual(result.get("status"), 502, result)


if __name__ == "__main__":
    unittest.main()
