"""The upstream keep-alive pool under more concurrent requests than upstream.max_idle_connections
(issue 17 item 2): with the defaults, connections are reused, not closed after each response and
opened again on the next round."""

import socket
import unittest

from harness import Gateway, start_upstream

CLIENTS = 150  # concurrent keep-alive clients: well above the default max_idle_connections (64)
ROUNDS = 12  # requests per client
REQUEST = b"GET /echo HTTP/1.1\r\nHost: gw.test\r\n\r\n"


def read_response(sock: socket.socket, buf: bytearray) -> bytes:
    """One Content-Length response from a blocking socket (bytes past it stay in buf); its head."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before a response")
        buf += data
    head, _, _ = bytes(buf).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    need = len(head) + 4 + length
    while len(buf) < need:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed inside a response body")
        buf += data
    del buf[:need]
    return head


class PoolUnderConcurrency(unittest.TestCase):
    def test_more_concurrent_requests_than_max_idle_reuse_their_connections(self):
        up = start_upstream(self)
        # Defaults for the pool (max_idle_connections, idle_timeout); one worker, so the pool
        # under test is the one that sees all 150 requests of a round.
        gw = Gateway(self, up.port, {"server": {"workers": 1}, "log": {"access": "off"}})
        socks = [socket.create_connection(("127.0.0.1", gw.port), timeout=30) for _ in range(CLIENTS)]
        self.addCleanup(lambda: [s.close() for s in socks])
        bufs = [bytearray() for _ in socks]
        before = up.connections
        # Rounds in lock step: all 150 requests are in flight together, then every response comes
        # back and its upstream connection returns to the pool before the next round begins.
        for _ in range(ROUNDS):
            for s in socks:
                s.sendall(REQUEST)
            for s, buf in zip(socks, bufs):
                head = read_response(s, buf)
                self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:80])
        opened = up.connections - before
        # The first round opens about one connection per client; later rounds reuse them. Without
        # load-sized pooling each later round closed all but 64 and opened ~86 anew (~1,100 here).
        self.assertLessEqual(opened, CLIENTS + 30,
                             f"{opened} upstream connections for {CLIENTS * ROUNDS} requests "
                             f"from {CLIENTS} keep-alive clients")
        self.assertGreaterEqual(up.open_connections(), 64)
        self.assertTrue(gw.alive())


if __name__ == "__main__":
    unittest.main()
