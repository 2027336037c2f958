"""WebSocket (RFC 6455) tunnelled through the gateway after 101."""

import base64
import os
import unittest

from harness import Gateway, HttpClient, start_upstream, wait_until
from upstream import make_ws_frame, read_ws_frame, ws_accept


class WebSocket(unittest.TestCase):
    def setUp(self):
        self.up = start_upstream(self)
        self.gw = Gateway(self, self.up.port)

    def handshake(self) -> HttpClient:
        c = HttpClient(self.gw.port, self)
        key = base64.b64encode(os.urandom(16)).decode()
        c.request("GET", "/ws", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                         ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")])
        r = c.read_response()
        self.assertEqual(r.status, 101, r)
        self.assertIn("websocket", r.tokens("Upgrade"))
        self.assertIn("upgrade", r.tokens("Connection"))
        self.assertEqual(r.header("Sec-WebSocket-Accept"), ws_accept(key))
        rec = self.up.wait_requests(1)[-1]
        self.assertEqual([v for k, v in rec["headers"] if k.lower() == "sec-websocket-key"], [key])
        return c

    def echo(self, c: HttpClient, opcode: int, payload: bytes):
        c.send(make_ws_frame(opcode, payload, mask=True))
        got = read_ws_frame(c._read_exact, expect_masked=False)
        self.assertEqual(got[0], opcode)
        self.assertEqual(got[1], payload)

    def test_echo_text_and_binary_frames_then_close(self):
        c = self.handshake()
        self.echo(c, 0x1, "héllo".encode())
        self.echo(c, 0x2, bytes(range(256)))
        self.echo(c, 0x1, b"")
        self.echo(c, 0x2, os.urandom(200))       # 16-bit length
        self.echo(c, 0x2, os.urandom(100_000))   # 64-bit length
        c.send(make_ws_frame(0x9, b"ping!", mask=True))
        self.assertEqual(read_ws_frame(c._read_exact, expect_masked=False)[:2], (0xA, b"ping!"))
        c.send(make_ws_frame(0x8, b"\x03\xe8bye", mask=True))
        self.assertEqual(read_ws_frame(c._read_exact, expect_masked=False)[:2], (0x8, b"\x03\xe8bye"))
        closed, extra = c.is_closed(5.0)
        self.assertEqual(extra, b"")
        self.assertTrue(closed, "the tunnel stayed open after the upstream closed")

    def test_frames_written_together_and_split(self):
        c = self.handshake()
        frames = [make_ws_frame(0x1, f"msg {i}".encode(), mask=True) for i in range(10)]
        c.send(b"".join(frames))
        for i in range(10):
            self.assertEqual(read_ws_frame(c._read_exact, expect_masked=False)[1], f"msg {i}".encode())
        # One frame in byte-sized pieces.
        frame = make_ws_frame(0x2, b"split-frame", mask=True)
        for b in frame:
            c.send(bytes([b]))
        self.assertEqual(read_ws_frame(c._read_exact, expect_masked=False)[1], b"split-frame")

    def test_upstream_closing_tunnel_closes_client_side(self):
        c = self.handshake()
        self.echo(c, 0x1, b"x")
        self.up.stop()  # shuts down every upstream connection
        closed, _ = c.is_closed(5.0)
        self.assertTrue(closed, "client side of the tunnel left open after the upstream closed")

    def test_upgrade_refused_by_upstream_is_a_normal_response(self):
        c = HttpClient(self.gw.port, self)
        # No Sec-WebSocket-Key: the upstream answers 400 and the connection is not tunnelled.
        c.request("GET", "/ws", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                         ("Sec-WebSocket-Version", "13")])
        r = c.read_response()
        self.assertEqual(r.status, 400, r)

    def test_two_tunnels_at_once(self):
        a, b = self.handshake(), self.handshake()
        self.echo(a, 0x1, b"to a")
        self.echo(b, 0x1, b"to b")
        self.echo(a, 0x1, b"to a again")

    def test_client_closing_tunnel_closes_upstream_side(self):
        c = self.handshake()
        self.echo(c, 0x1, b"x")
        c.close()
        # The gateway closes the upstream side of the tunnel too (no leaked tunnel).
        wait_until(lambda: self.up.open_connections() == 0, 5.0, message="upstream side of the tunnel closed")
        # A new tunnel still works.
        d = self.handshake()
        self.echo(d, 0x1, b"y")


if __name__ == "__main__":
    unittest.main()
