"""An application that writes the response head and body separately with Nagle's algorithm on
(Python's http.server does, so do many CGI wrappers): its body waits until the head is
acknowledged, and on a pooled keep-alive connection Linux delays that ACK by at least 40 ms
(TCP_DELACK_MIN). nginx shows that stall on every response; the gateway acknowledges at once after
a small read that leaves the response unfinished.

The assertion is a latency, but not a fine one: the median of nine requests must stay under 20 ms,
where the stall makes every request take 40 ms or more and a loaded CI machine answers in a few.
"""

import socket
import statistics
import threading
import time
import unittest

from harness import Gateway, HttpClient

BODY = b"x" * 600


class NagleUpstream:
    """Keep-alive HTTP/1.1 server: head and body in two send() calls, Nagle left on."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.pages = {}  # connection number -> requests for /page/ it carried
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stop_event.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
            t = threading.Thread(target=self._serve, args=(sock, self.connections), daemon=True)
            t.start()  # before it is listed: stop() may join any listed thread at any moment
            self.threads.append(t)

    def _serve(self, sock, number):
        buf = b""
        sock.settimeout(10)
        try:
            while not self.stop_event.is_set():
                while b"\r\n\r\n" not in buf:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)  # the gateway sends bodyless GETs here
                if head.startswith(b"GET /page/"):
                    self.pages[number] = self.pages.get(number, 0) + 1
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(BODY))
                sock.sendall(BODY)
        except OSError:
            pass
        finally:
            sock.close()

    def stop(self):
        self.stop_event.set()
        self.listener.close()
        for t in self.threads:
            t.join(5)


class SplitWritesWithNagle(unittest.TestCase):
    def test_no_delayed_ack_stall_on_a_pooled_connection(self):
        up = NagleUpstream()
        self.addCleanup(up.stop)
        gw = Gateway(self, up.port, {"server": {"workers": 1}, "log": {"access": "off"}})
        c = HttpClient(gw.port, self)
        took = []
        for i in range(12):
            start = time.monotonic()
            r = c.roundtrip("GET", f"/page/{i}")
            took.append(time.monotonic() - start)
            self.assertEqual((r.status, r.body), (200, BODY))
        self.assertEqual(list(up.pages.values()), [12], "the test is about one pooled connection")
        median_ms = statistics.median(took[3:]) * 1000
        print(f"\n[nagle] per request (ms): {' '.join(f'{t * 1000:.1f}' for t in took)}; "
              f"median of the last 9: {median_ms:.1f}")
        self.assertLess(median_ms, 20.0, "responses wait for a delayed ACK (40 ms or more each)")


if __name__ == "__main__":
    unittest.main()
