#!/usr/bin/env python3
"""Writes the seed inputs of the h2_frames and h2_client_side fuzz targets into
tests/fuzz/corpus/h2_frames/ and tests/fuzz/corpus/h2_client_side/.

Frames are written by hand (RFC 9113 §4.1, HPACK literals without indexing, RFC 7541 §6.2.2), so
no HTTP/2 library is needed. Input layout (tests/fuzz/fuzz_h2_frames.cc): [options][cut] then the
client's frames after the connection preface, which the harness sends itself.
Run it from anywhere: python3 tests/fuzz/make_h2_seeds.py.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
DATA, HEADERS, PRIORITY, RST, SETTINGS, PING, GOAWAY, WINDOW, CONT = 0, 1, 2, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def block(fields):
    out = b""
    for name, value in fields:
        n, v = name.encode("latin-1"), value.encode("latin-1")
        out += b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v
    return out


def headers(stream, fields, end_stream=True):
    return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream, block(fields))


GET = [(":method", "GET"), (":scheme", "https"), (":authority", "example.com"), (":path", "/")]
POST = [(":method", "POST"), (":scheme", "https"), (":authority", "example.com"), (":path", "/up")]
SETTINGS_EMPTY = frame(SETTINGS, 0, 0)

SEEDS = {
    "get": SETTINGS_EMPTY + headers(1, GET),
    "post_body": SETTINGS_EMPTY + headers(1, POST + [("content-length", "5")], False) +
                 frame(DATA, END_STREAM, 1, b"hello"),
    "post_length_mismatch": SETTINGS_EMPTY + headers(1, POST + [("content-length", "9")], False) +
                            frame(DATA, END_STREAM, 1, b"hello"),
    "cookie_crumbs": SETTINGS_EMPTY + headers(1, GET + [("cookie", "a=1"), ("cookie", "sid=T"),
                                                        ("cookie", "b=2")]),
    "authority_host_differ": SETTINGS_EMPTY + headers(1, GET + [("host", "other")]),
    "pseudo_after_regular": SETTINGS_EMPTY + headers(1, [(":method", "GET"), ("a", "b"),
                                                         (":path", "/"), (":scheme", "http")]),
    "connection_field": SETTINGS_EMPTY + headers(1, GET + [("connection", "close")]),
    "te_gzip": SETTINGS_EMPTY + headers(1, GET + [("te", "gzip")]),
    "uppercase": SETTINGS_EMPTY + headers(1, GET + [("Accept", "*/*")]),
    "options_star": SETTINGS_EMPTY + headers(1, [(":method", "OPTIONS"), (":scheme", "https"),
                                                 (":authority", "a"), (":path", "*")]),
    "connect": SETTINGS_EMPTY + headers(1, [(":method", "CONNECT"), (":authority", "a:443")]),
    "rapid_reset": SETTINGS_EMPTY + b"".join(headers(i, GET, False) + frame(RST, 0, i, struct.pack(">I", 8))
                                             for i in range(1, 80, 2)),
    "continuation": SETTINGS_EMPTY + frame(HEADERS, 0, 1, block(GET)) +
                    b"".join(frame(CONT, 0, 1, block([("x", "y")])) for _ in range(12)) +
                    frame(CONT, END_HEADERS, 1, b""),
    "ping_settings": SETTINGS_EMPTY + frame(PING, 0, 0, b"12345678") + frame(SETTINGS, ACK, 0) +
                     frame(PRIORITY, 0, 3, struct.pack(">I", 1) + b"\x10") + headers(5, GET),
    "window_and_trailers": SETTINGS_EMPTY + frame(WINDOW, 0, 0, struct.pack(">I", 1 << 20)) +
                           headers(1, POST, False) + frame(DATA, 0, 1, b"x" * 100) +
                           headers(1, [("x-trailer", "1")]),
    "two_streams_goaway": SETTINGS_EMPTY + headers(1, GET) + headers(3, POST, False) +
                          frame(DATA, END_STREAM, 3, b"abc") + frame(GOAWAY, 0, 0, bytes(8)),
}


def main():
    # h2_client_side (the same frames through the exchanges) reads the same input layout.
    for target in ("h2_frames", "h2_client_side"):
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for i, (name, data) in enumerate(SEEDS.items()):
            for options in (0x00, 0x0B | (i % 2) << 2):
                suffix = "" if options == 0 else "_opts"
                with open(os.path.join(d, name + suffix), "wb") as f:
                    f.write(bytes([options, (i * 37) & 0xFF]) + data)


if __name__ == "__main__":
    main()
