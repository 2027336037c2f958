#!/usr/bin/env python3
"""Writes the hand-written seed inputs of the client_side and upstream_response fuzz targets
(and the request-smuggling seeds of request_parser) into tests/fuzz/corpus/<target>/.

The seeds are committed; this script is how they were made and how to remake them after a change
of input layout. Run it from anywhere: python3 tests/fuzz/make_seeds.py. Existing files with the
same name are overwritten, others are left alone (crash reproducers stay).

Input layouts (see each target's header comment):
  client_side:       [options][cut][cut][cut] stream
  upstream_response: [options][cut] stream
  request_parser:    [cut][options] stream
  snapshot:          [flags][max_attributes][max_bytes/4] file (tests/integration/snapshot_util.py)
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LIVE = "A" * 43
STALE = "B" * 42 + "A"
EXPIRED = "C" * 42 + "A"
UNKNOWN = "D" * 42 + "A"
GRACE = "E" * 42 + "A"      # rotated to ROTATED, inside the grace window (fuzz_session.h)
ROTATED = "F" * 42 + "A"
REPLAY = "G" * 42 + "A"     # rotated with no grace: a replay
FIRST_VISIT = "I" * 42 + "A"  # replaced by a first-visit token by the harness


def req(line, *headers, body=""):
    return line + "\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n" + body


GET = "GET /app HTTP/1.1"
HOST = "Host: example.com"

# Client streams: name -> bytes. Smuggling and framing cases first, then session cases.
CLIENT = {
    "cl_then_te": req("POST /a HTTP/1.1", HOST, "Content-Length: 5", "Transfer-Encoding: chunked",
                      body="0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
    "te_then_cl": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding: chunked", "Content-Length: 5",
                      body="0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
    "duplicate_cl_same": req("POST /a HTTP/1.1", HOST, "Content-Length: 5", "Content-Length: 5",
                             body="hello"),
    "duplicate_cl_differ": req("POST /a HTTP/1.1", HOST, "Content-Length: 5", "Content-Length: 6",
                               body="hello!"),
    "cl_list": req("POST /a HTTP/1.1", HOST, "Content-Length: 5, 5", body="hello"),
    "cl_plus": req("POST /a HTTP/1.1", HOST, "Content-Length: +5", body="hello"),
    "cl_negative": req("POST /a HTTP/1.1", HOST, "Content-Length: -1", body="hello"),
    "cl_hex": req("POST /a HTTP/1.1", HOST, "Content-Length: 0x5", body="hello"),
    "cl_huge": req("POST /a HTTP/1.1", HOST, "Content-Length: 99999999999999999999999", body="x"),
    "te_chunked_comma_x": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding: chunked , x",
                              body="5\r\nhello\r\n0\r\n\r\n"),
    "te_xchunked": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding: xchunked",
                       body="5\r\nhello\r\n0\r\n\r\n"),
    "te_space_before_colon": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding : chunked",
                                 body="5\r\nhello\r\n0\r\n\r\n"),
    "te_tab": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding:\tchunked",
                  body="5\r\nhello\r\n0\r\n\r\n"),
    "te_obs_fold": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding:\r\n chunked",
                       body="5\r\nhello\r\n0\r\n\r\n"),
    "te_gzip_chunked": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding: gzip, chunked",
                           body="5\r\nhello\r\n0\r\n\r\n"),
    "te_chunked_gzip": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding: chunked, gzip",
                           body="5\r\nhello\r\n0\r\n\r\n"),
    "te_twice": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding: chunked",
                    "Transfer-Encoding: chunked", body="5\r\nhello\r\n0\r\n\r\n"),
    "te_uppercase": req("POST /a HTTP/1.1", HOST, "TRANSFER-ENCODING: CHUNKED",
                        body="5\r\nhello\r\n0\r\n\r\n"),
    "bare_lf": "GET /a HTTP/1.1\nHost: example.com\n\n",
    "bare_cr": "GET /a HTTP/1.1\rHost: example.com\r\r",
    "cr_lf_cr_x": "GET /a HTTP/1.1\r\nHost: example.com\r\n\rX\r\n\r\n",
    "lf_in_value": "GET /a HTTP/1.1\r\nHost: example.com\r\nX-A: a\nX-Session-Id: forged\r\n\r\n",
    "chunk_size_overflow": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding: chunked",
                               body="fffffffffffffffff1\r\nhello\r\n0\r\n\r\n"),
    "chunk_size_negative": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding: chunked",
                               body="-5\r\nhello\r\n0\r\n\r\n"),
    "chunk_size_space": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding: chunked",
                            body="5 \r\nhello\r\n0\r\n\r\n"),
    "chunk_size_0x": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding: chunked",
                         body="0x5\r\nhello\r\n0\r\n\r\n"),
    "chunk_missing_crlf": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding: chunked",
                              body="5\r\nhelloXX0\r\n\r\n"),
    "chunk_extension_huge": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding: chunked",
                                body="5;" + "e" * 5000 + "\r\nhello\r\n0\r\n\r\n"),
    "chunk_extension_quoted": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding: chunked",
                                  body='5;a="b\\"c";d=e\r\nhello\r\n0\r\n\r\n'),
    "chunk_trailer": req("POST /a HTTP/1.1", HOST, "Transfer-Encoding: chunked",
                         body="5\r\nhello\r\n0\r\nX-Session-Id: forged\r\nTrailer-A: b\r\n\r\n"),
    "nul_in_value": "GET /a HTTP/1.1\r\nHost: example.com\r\nX-A: a\x00b\r\n\r\n",
    "nul_in_name": "GET /a HTTP/1.1\r\nHost: example.com\r\nX-\x00A: ab\r\n\r\n",
    "nul_in_target": "GET /a\x00b HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "http09": "GET /a\r\n\r\n",
    "http20": req("GET /a HTTP/2.0", HOST),
    "http2_preface": "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "http12": req("GET /a HTTP/1.2", HOST),
    "http10_te": req("POST /a HTTP/1.0", HOST, "Transfer-Encoding: chunked",
                     body="5\r\nhello\r\n0\r\n\r\n"),
    "http10_keepalive": req("GET /a HTTP/1.0", HOST, "Connection: keep-alive") + req(GET, HOST),
    "duplicate_host": req(GET, HOST, "Host: evil.example"),
    "no_host": req(GET),
    "absolute_form": req("GET http://example.com/app?q=1 HTTP/1.1", HOST),
    "absolute_form_other_host": req("GET http://evil.example/app HTTP/1.1", HOST),
    "connect": req("CONNECT example.com:443 HTTP/1.1", "Host: example.com:443"),
    "connect_slash": req("CONNECT /a HTTP/1.1", HOST),
    "options_star": req("OPTIONS * HTTP/1.1", HOST),
    "h2c_upgrade": req(GET, HOST, "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
                       "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"),
    "websocket": req(GET, HOST, "Connection: Upgrade", "Upgrade: websocket",
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
                     "Cookie: session_id=" + LIVE) + "\x81\x05hello",
    "websocket_post": req("POST /ws HTTP/1.1", HOST, "Connection: upgrade", "Upgrade: websocket",
                          "Content-Length: 3", body="abc"),
    "pipelined_after_rejected": req("GET /a HTTP/1.1", HOST, "Bad_Name: x") + req(GET, HOST),
    "pipelined_three": req(GET, HOST) + req("POST /b HTTP/1.1", HOST, "Content-Length: 3",
                                            body="abc") + req("HEAD /c HTTP/1.1", HOST),
    "data_after_close": req(GET, HOST, "Connection: close") + req("GET /after HTTP/1.1", HOST),
    "expect_continue": req("POST /a HTTP/1.1", HOST, "Expect: 100-continue", "Content-Length: 5",
                           body="hello"),
    "space_in_name": req(GET, HOST, "X A: b"),
    "empty_name": req(GET, HOST, ": b"),
    "long_target": req("GET /" + "a" * 3000 + " HTTP/1.1", HOST),
    "many_headers": req(GET, HOST, *["X-H%d: v" % i for i in range(120)]),
    "obs_text": req(GET, HOST, "X-A: caf\xc3\xa9"),
    # Session and header sanitising.
    "cookie_live": req(GET, HOST, "Cookie: theme=dark; session_id=" + LIVE + "; lang=en"),
    "cookie_stale_refresh": req(GET, HOST, "Cookie: session_id=" + STALE),
    "cookie_expired": req(GET, HOST, "Cookie: session_id=" + EXPIRED),
    "cookie_unknown": req(GET, HOST, "Cookie: session_id=" + UNKNOWN),
    "cookie_two_live": req(GET, HOST, "Cookie: session_id=" + LIVE + "; session_id=" + STALE),
    "cookie_live_and_unknown": req(GET, HOST, "Cookie: session_id=" + UNKNOWN,
                                   "Cookie: session_id=" + LIVE),
    "cookie_five_candidates": req(GET, HOST, "Cookie: " + "; ".join(
        "session_id=" + c * 42 + "A" for c in "ABCDE")),
    "cookie_quoted": req(GET, HOST, 'Cookie: session_id="' + LIVE + '"'),
    "cookie_spaces": req(GET, HOST, "Cookie:  session_id = " + LIVE + " ;;; a=b"),
    "cookie_only_ours": req(GET, HOST, "Cookie: session_id=" + LIVE),
    "cookie_case": req(GET, HOST, "Cookie: Session_ID=" + LIVE + "; SESSION_ID=x"),
    "cookie_named_in_connection": req(GET, HOST, "Connection: cookie",
                                      "Cookie: a=b; session_id=" + LIVE),
    "token_elsewhere": req(GET + "?t=" + LIVE, HOST, "Referer: /x?s=" + LIVE,
                           "Cookie: session_id=" + LIVE),
    "token_in_body": req("POST /a HTTP/1.1", HOST, "Cookie: session_id=" + LIVE,
                         "Content-Length: 43", body=LIVE),
    "token_in_chunked_body": req("POST /a HTTP/1.1", HOST, "Cookie: session_id=" + STALE,
                                 "Transfer-Encoding: chunked",
                                 body="20\r\n" + STALE[:32] + "\r\nb\r\n" + STALE[32:] +
                                 "\r\n0\r\n\r\n"),
    "forged_reserved": req(GET, HOST, "X-Session-Id: forged", "x-session-user: root",
                           "X_Session_Role: admin", "X-SESSION_ID: forged", "X-Gw_Id: forged",
                           "x-gw-id: forged", "Cookie: session_id=" + LIVE),
    "connection_names_reserved": req(GET, HOST, "Connection: X-Session-Id, x-forwarded-for, host",
                                     "X-Forwarded-For: 10.0.0.1", "Cookie: session_id=" + LIVE),
    "connection_names_many": req(GET, HOST, *["Connection: x-h%d" % i for i in range(10)],
                                 *["X-H%d: v" % i for i in range(10)]),
    "proxy_headers": req(GET, HOST, "Proxy-Authorization: Basic eA==", "Proxy-Foo-Bar-Baz: x",
                         "Proxy-Connection: keep-alive", "Keep-Alive: 5", "TE: trailers",
                         "Trailer: X"),
    "forwarded_headers": req(GET, HOST, "X-Forwarded-For: 10.0.0.1, 10.0.0.2",
                             "X-Forwarded-Proto: https", "X-Forwarded-Host: a.example",
                             "X-Request-Id: abc"),
    "logout": req("GET /logout HTTP/1.1", HOST, "Cookie: session_id=" + LIVE) +
    req(GET, HOST, "Cookie: session_id=" + LIVE),
    "logout_no_session": req("POST /logout?next=/ HTTP/1.1", HOST, "Content-Length: 2", body="ab"),
    "static_excluded": req("GET /static/app.js HTTP/1.1", HOST, "Cookie: a=1; session_id=" + LIVE),
    "healthz": req("GET /healthz HTTP/1.1", HOST) + req(GET, HOST),
    "underscore": req(GET, HOST, "X_Custom: a", "Cookie: session_id=" + LIVE),
    "body_over_limit": req("POST /a HTTP/1.1", HOST, "Content-Length: 100", body="x" * 100),
    "rotated_grace": req(GET, HOST, "Cookie: session_id=" + GRACE) +
    req(GET, HOST, "Cookie: session_id=" + GRACE + "; session_id=" + ROTATED),
    "rotated_replay": req(GET, HOST, "Cookie: session_id=" + REPLAY) +
    req("GET /logout HTTP/1.1", HOST, "Cookie: session_id=" + GRACE),
    "first_visit_return": req(GET, HOST, "Cookie: session_id=" + FIRST_VISIT) +
    req(GET, HOST, "Cookie: session_id=" + FIRST_VISIT) + req(GET, HOST),
}

# Upstream streams for the response path.
def resp(status_line, *headers, body=""):
    return status_line + "\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n" + body


OK = "HTTP/1.1 200 OK"
UPSTREAM = {
    "plain": resp(OK, "Content-Length: 2", body="hi"),
    "rotate": resp(OK, "X-Session-Control: rotate", "Content-Length: 2", body="hi"),
    "destroy": resp(OK, "X-Session-Control:  Destroy ", "Content-Length: 0"),
    "rotate_and_destroy": resp(OK, "X-Session-Control: rotate", "x-session-control: destroy",
                               "Content-Length: 0"),
    "unknown_control": resp(OK, "X-Session-Control: keep", "Content-Length: 0"),
    "set_attributes": resp(OK, "X-Session-Set-User: bob", "X-Session-Set-Tenant_Id: 42",
                           "x-session-set-role:", "Content-Length: 0"),
    "set_bad_attributes": resp(OK, "X-Session-Set-Id: forged", "X-Session-Set-A: x\x01y",
                               "X-Session-Set-B: " + "v" * 200, "X-Session-Set-: empty",
                               "X-Session-Set-C: caf\xc3\xa9", "Content-Length: 0"),
    "set_too_many": resp(OK, *["X-Session-Set-K%d: v" % i for i in range(8)], "Content-Length: 0"),
    "directives_alt_prefix": resp(OK, "X-Gw_Control: rotate", "X-Gw_Set-User: eve",
                                  "X-Gw-Set-Role: x", "Content-Length: 0"),
    "directive_underscore": resp(OK, "X_Session_Control: destroy", "X_Session_Set_User: eve",
                                 "Content-Length: 0"),
    "set_cookie_ours": resp(OK, "Set-Cookie: session_id=evil; Path=/", "Set-Cookie: a=b",
                            "Set-Cookie: session_id =evil", "Set-Cookie: \tsession_id=evil",
                            "Set-Cookie: Session_ID=ok", "Set-Cookie: session_id", "Content-Length: 0"),
    "set_cookie_ours_rotate": resp(OK, "X-Session-Control: rotate",
                                   "Set-Cookie: session_id=" + LIVE, "Content-Length: 0"),
    "chunked": resp(OK, "Transfer-Encoding: chunked", "X-Session-Set-User: carol",
                    body="5\r\nhello\r\n0\r\nX-Session-Control: destroy\r\n\r\n"),
    "cl_and_te": resp(OK, "Content-Length: 3", "Transfer-Encoding: chunked",
                      body="5\r\nhello\r\n0\r\n\r\n"),
    "te_gzip": resp(OK, "Transfer-Encoding: gzip", body="abc"),
    "close_delimited": resp(OK, "X-Session-Control: rotate", body="until close"),
    "interim_then_final": resp("HTTP/1.1 100 Continue", "X-Session-Control: destroy") +
    resp("HTTP/1.1 103 Early Hints", "Link: </a>") + resp(OK, "Content-Length: 0"),
    "no_content": resp("HTTP/1.1 204 No Content", "X-Session-Control: rotate"),
    "not_modified": resp("HTTP/1.1 304 Not Modified", "Content-Length: 10", "ETag: x"),
    "switching": resp("HTTP/1.1 101 Switching Protocols", "Connection: upgrade",
                      "Upgrade: websocket"),
    "pipeline_rotate_then_set": resp(OK, "X-Session-Control: rotate", "Content-Length: 0") +
    resp(OK, "X-Session-Set-User: dave", "Content-Length: 1", body="x") +
    resp(OK, "X-Session-Control: destroy", "Content-Length: 0") + resp(OK, "Content-Length: 0"),
    "connection_names_directive": resp(OK, "Connection: X-Session-Control, Cache-Control",
                                       "X-Session-Control: rotate", "Cache-Control: public",
                                       "Content-Length: 0"),
    "cache_public": resp(OK, "Cache-Control: public, max-age=60", "X-Session-Control: rotate",
                         "Content-Length: 0"),
    "hop_by_hop": resp(OK, "Keep-Alive: timeout=5", "Proxy-Authenticate: x", "TE: trailers",
                       "Trailer: X", "Content-Length: 0"),
    "nul_in_value": resp(OK, "X-A: a\x00b", "Content-Length: 0"),
    "obs_fold_directive": resp(OK, "X-Session-Control:\r\n rotate", "Content-Length: 0"),
    "bad_status": resp("HTTP/1.1 2000 OK", "Content-Length: 0"),
    "reason_control_bytes": resp("HTTP/1.1 200 O\x01K", "Content-Length: 0"),
    "http10_response": resp("HTTP/1.0 200 OK", "X-Session-Set-User: f", body="until close"),
    "hsts_from_app": resp(OK, "Strict-Transport-Security: max-age=1", "Content-Length: 0"),
}


def snapshot_seeds():
    """Snapshot files: name -> bytes. Genuine records around the fuzz target's fixed clock, and the
    crafted ones the record check must refuse."""
    sys.path.insert(0, os.path.join(HERE, "..", "integration"))
    from snapshot_util import session_record, snapshot  # noqa: E402 (path set just above)
    now = 1_700_000_000_000
    good = session_record("a", b"\x01" * 16, now - 5000, now - 10, [("role", "admin"), ("user", "alice")])
    bare = session_record("b", b"\x02" * 16, now - 5000, now - 5000, [])
    return {
        "empty": snapshot([]),
        "two_sessions": snapshot([good, bare]),
        "injection": snapshot([good, session_record("c", b"\x03" * 16, now, now,
                                                    [("user", "x\r\nX-Injected: 1")])]),
        "future_and_min": snapshot([session_record("d", b"\x04" * 16, now + 86_400_000, now + 86_400_000, []),
                                    session_record("e", b"\x05" * 16, -(1 << 63), now, []), bare]),
        "unsorted_dup_id": snapshot([session_record("f", b"\x06" * 16, now, now, [("b", "1"), ("a", "2")]),
                                     session_record("g", b"\x07" * 16, now, now, [("a", "1"), ("a", "2")]),
                                     session_record("h", b"\x08" * 16, now, now, [("id", "x")])]),
        "truncated": snapshot([good, bare])[:-30],
    }


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    # client_side: default options and cuts at 1/4, 1/2, 3/4; a second variant of the session
    # cases with logout on, TLS, underscore "drop", the alternate prefix and a 64-byte body limit.
    for name, text in CLIENT.items():
        data = text.encode("latin-1")
        write("client_side", name, bytes([0x00, 0x40, 0x80, 0xC0]) + data)
        write("client_side", name + "_opts", bytes([0x40 | 0x20 | 0x04 | 0x01 | 0x80 | 0x08,
                                                    0x10, 0x11, 0xF0]) + data)
    # create = "on_return" (low bit of the first cut byte) for the session cases of this round.
    for name in ("rotated_grace", "rotated_replay", "first_visit_return", "cookie_live"):
        write("client_side", name + "_on_return", bytes([0x40, 0x41, 0x80, 0xC0]) +
              CLIENT[name].encode("latin-1"))
    for name in [n for n in CLIENT if n.startswith(("cl_", "te_", "chunk_", "http", "bare_",
                                                    "cr_", "nul_", "duplicate_", "connect",
                                                    "pipelined_", "data_after", "h2c"))]:
        write("request_parser", "seed_" + name, bytes([0x80, 0x00]) + CLIENT[name].encode("latin-1"))
    # upstream_response: each jar state once (options bits 0-1), with a mix of the other bits.
    for i, (name, text) in enumerate(UPSTREAM.items()):
        data = text.encode("latin-1")
        write("upstream_response", name, bytes([i % 4, 0x80]) + data)
        write("upstream_response", name + "_opts", bytes([(i + 1) % 4 | 0x04 | 0x10 | 0x20 | 0x80,
                                                          0x33]) + data)
    # snapshot: each file unbounded with checksums as written, and bounded with checksum repair.
    for name, data in snapshot_seeds().items():
        write("snapshot", name, bytes([0x00, 0x00, 0x00]) + data)
        write("snapshot", name + "_bounded", bytes([0x01, 0x02, 0x08]) + data)


if __name__ == "__main__":
    main()
