"""Request and response bodies through the gateway, byte for byte (SHA-256), both framings."""

import hashlib
import unittest

from harness import Gateway, HttpClient, start_upstream
from upstream import pattern_chunks, pattern_sha256

MiB = 1 << 20


class Bodies(unittest.TestCase):
    def setUp(self):
        self.up = start_upstream(self)
        self.gw = Gateway(self, self.up.port)
        self.c = HttpClient(self.gw.port, self)

    def download(self, n: int, chunked: bool):
        self.c.request("GET", f"/bytes?n={n}&chunked={int(chunked)}")
        resp, length, sha = self.c.read_response_hashed()
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(length, n)
        self.assertEqual(sha, pattern_sha256(n))
        self.assertEqual(resp.header("X-Body-Sha256"), sha)
        if not chunked:
            self.assertEqual(resp.header("Content-Length"), str(n))

    def upload(self, n: int, chunked: bool, chunk: int = 256 * 1024):
        if chunked:
            self.c.request("POST", "/upload", headers=[("Transfer-Encoding", "chunked")])
            for piece in pattern_chunks(n, chunk):
                self.c.send(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
            self.c.send(b"0\r\n\r\n")
        else:
            self.c.request("POST", "/upload", headers=[("Content-Length", str(n))])
            for piece in pattern_chunks(n, chunk):
                self.c.send(bytes(piece))
        resp = self.c.read_response()
        self.assertEqual(resp.status, 200, resp)
        rec = resp.json()
        self.assertEqual(rec["body_length"], n)
        self.assertEqual(rec["body_sha256"], pattern_sha256(n))

    def test_download_1mib_content_length(self):
        self.download(1 * MiB, chunked=False)

    def test_download_1mib_chunked(self):
        self.download(1 * MiB, chunked=True)

    def test_download_64mib_content_length(self):
        self.download(64 * MiB, chunked=False)

    def test_download_64mib_chunked(self):
        self.download(64 * MiB, chunked=True)

    def test_upload_1mib_content_length(self):
        self.upload(1 * MiB, chunked=False)

    def test_upload_1mib_chunked(self):
        self.upload(1 * MiB, chunked=True)

    def test_upload_64mib_content_length(self):
        self.upload(64 * MiB, chunked=False)

    def test_upload_64mib_chunked(self):
        self.upload(64 * MiB, chunked=True)

    def test_upload_in_tiny_chunks(self):
        self.upload(100_000, chunked=True, chunk=7)

    def test_bodies_back_to_back_on_one_connection(self):
        for n in (0, 1, 4095, 65537):
            self.upload(n, chunked=False)
            self.download(n, chunked=True)
            self.upload(n, chunked=True)
            self.download(n, chunked=False)
        self.assertEqual(len({rec["conn"] for rec in self.up.requests}), 1)

    def test_expect_100_continue(self):
        body = b"".join(bytes(p) for p in pattern_chunks(300_000))
        self.c.request("POST", "/upload", headers=[("Content-Length", str(len(body))),
                                                    ("Expect", "100-continue")])
        interim = self.c.read_head()
        self.assertEqual(interim.status, 100, interim)
        self.c.send(body)
        resp = self.c.read_response()
        self.assertEqual(resp.status, 200, resp)
        rec = resp.json()
        self.assertEqual((rec["body_length"], rec["body_sha256"]), (len(body), hashlib.sha256(body).hexdigest()))
        # The connection is still in sync for a following request.
        self.assertEqual(self.c.roundtrip("GET", "/echo?next").json()["target"], "/echo?next")

    def test_expect_100_continue_chunked(self):
        self.c.request("POST", "/upload", headers=[("Transfer-Encoding", "chunked"),
                                                    ("Expect", "100-continue")])
        interim = self.c.read_head()
        self.assertEqual(interim.status, 100, interim)
        self.c.send(b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
        resp = self.c.read_response()
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["body"], "abcdefg")


if __name__ == "__main__":
    unittest.main()
