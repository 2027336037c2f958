#include "proxy_core/tls/tls_engine.h"

#include <doctest/doctest.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "tests/unit/tls_test_pki.h"

using sg::TlsEngine;
using sg::TlsStatus;
using sg::testing::Pipe;
using sg::testing::TestPki;

namespace {

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

std::shared_ptr<sg::TlsServerContext> server_context(sg::TlsConfig config = {}) {
  if (config.certificate.empty()) config = sg::testing::server_config();
  std::string error;
  auto ctx = sg::TlsServerContext::load(config, error);
  REQUIRE_MESSAGE(ctx != nullptr, error);
  return ctx;
}

std::shared_ptr<sg::TlsClientContext> client_context(sg::UpstreamConfig config = {}) {
  if (!config.tls) config = sg::testing::upstream_config();
  std::string error;
  auto ctx = sg::TlsClientContext::load(config, error);
  REQUIRE_MESSAGE(ctx != nullptr, error);
  return ctx;
}

// A raw client SSL_CTX for what the gateway never does itself (old versions, other ALPN).
struct RawClient {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ~RawClient() { SSL_CTX_free(ctx); }
};

std::string pattern(size_t size, unsigned seed) {
  std::string out(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (char& c : out) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  return out;
}

}  // namespace

TEST_CASE("TLS handshake, 1 MiB each way and close_notify between two engines") {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  TlsEngine server(*server_ctx);
  TlsEngine client(*client_ctx, "default.test");
  Pipe pipe(server, client);
  REQUIRE(pipe.handshake());
  CHECK(pipe.server_status == TlsStatus::kOk);
  CHECK(pipe.client_status == TlsStatus::kOk);
  CHECK(server.protocol() == "TLSv1.3");
  CHECK(client.protocol() == "TLSv1.3");
  CHECK_FALSE(server.session_reused());

  const std::string up = pattern(1 << 20, 1);
  const std::string down = pattern(1 << 20, 2);
  CHECK(client.encrypt(up, pipe.to_server) == TlsStatus::kOk);
  CHECK(server.encrypt(down, pipe.to_client) == TlsStatus::kOk);
  // Ciphertext is the plaintext plus per-record overhead (16 KiB records, ~22 bytes each).
  CHECK(pipe.to_server.size() < up.size() + up.size() / 256);
  pipe.pump();
  CHECK(pipe.server_plain == up);
  CHECK(pipe.client_plain == down);

  // The client closes; the server sees kClosed like an EOF and can still answer, then close.
  CHECK(client.shutdown(pipe.to_server) == TlsStatus::kOk);
  CHECK_FALSE(pipe.to_server.empty());
  CHECK(client.encrypt("late", pipe.to_server) == TlsStatus::kError);
  pipe.server_plain.clear();
  pipe.pump();
  CHECK(pipe.server_status == TlsStatus::kClosed);
  CHECK(server.peer_closed());
  CHECK(pipe.server_plain.empty());
  pipe.client_plain.clear();
  CHECK(server.encrypt("bye", pipe.to_client) == TlsStatus::kOk);
  CHECK(server.shutdown(pipe.to_client) == TlsStatus::kOk);
  pipe.pump();
  CHECK(pipe.client_plain == "bye");
  CHECK(pipe.client_status == TlsStatus::kClosed);
}

TEST_CASE("TLS bytes fed in tiny pieces: the handshake and records survive every split") {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  for (size_t chunk : {1, 2, 3, 7, 100, 1000, 16389}) {
    CAPTURE(chunk);
    TlsEngine server(*server_ctx);
    TlsEngine client(*client_ctx, "default.test");
    Pipe pipe(server, client);
    pipe.chunk = chunk;
    REQUIRE(pipe.handshake());
    const std::string up = pattern(40000, 3);
    REQUIRE(client.encrypt(up, pipe.to_server) == TlsStatus::kOk);
    REQUIRE(server.encrypt(up, pipe.to_client) == TlsStatus::kOk);
    pipe.pump();
    CHECK(pipe.server_plain == up);
    CHECK(pipe.client_plain == up);
  }
}

TEST_CASE("TLS plaintext before the handshake is refused, not buffered") {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  TlsEngine server(*server_ctx);
  TlsEngine client(*client_ctx, "default.test");
  std::string out;
  CHECK(client.encrypt("GET / HTTP/1.1\r\n\r\n", out) == TlsStatus::kWantMore);
  CHECK(out.empty());
  CHECK(server.start_handshake(out) == TlsStatus::kWantMore);  // the server waits
  CHECK(out.empty());
  Pipe pipe(server, client);
  REQUIRE(pipe.handshake());
  CHECK(client.encrypt("GET / HTTP/1.1\r\n\r\n", pipe.to_server) == TlsStatus::kOk);
  pipe.pump();
  CHECK(pipe.server_plain == "GET / HTTP/1.1\r\n\r\n");
}

TEST_CASE("TLS SNI picks the certificate for the asked name, else the default") {
  auto server_ctx = server_context();
  auto verifying = client_context();
  sg::UpstreamConfig lax = sg::testing::upstream_config();
  lax.verify = false;
  auto non_verifying = client_context(lax);
  struct Case {
    const char* host;
    const char* expected_cn;
    bool verifies;
  };
  for (Case c :
       {Case{"alpha.test", "alpha.test", true}, Case{"ALPHA.Test", "alpha.test", true},
        Case{"beta.test", "beta.test", true}, Case{"x.wild.test", "alpha.test", true},
        Case{"a.b.wild.test", "default.test", false}, Case{"wild.test", "default.test", false},
        Case{"unknown.test", "default.test", false}, Case{"default.test", "default.test", true}}) {
    CAPTURE(c.host);
    TlsEngine server(*server_ctx);
    TlsEngine client(c.verifies ? *verifying : *non_verifying, c.host);
    Pipe pipe(server, client);
    REQUIRE(pipe.handshake());
    CHECK(sg::testing::peer_common_name(client.native_handle()) == c.expected_cn);
    CHECK(sg::testing::own_common_name(server.native_handle()) == c.expected_cn);
    CHECK(server.server_name() == c.host);
  }
  // No SNI at all (an IP literal is never sent as SNI): the default certificate.
  TlsEngine server(*server_ctx);
  TlsEngine client(*non_verifying, "127.0.0.1");
  Pipe pipe(server, client);
  REQUIRE(pipe.handshake());
  CHECK(server.server_name().empty());
  CHECK(sg::testing::peer_common_name(client.native_handle()) == "default.test");
}

TEST_CASE("TLS 1.1 is refused") {
  auto server_ctx = server_context();
  RawClient old;
  SSL_CTX_set_security_level(old.ctx, 0);  // OpenSSL 3 will not even offer 1.1 above level 0
  SSL_CTX_set_cipher_list(old.ctx, "DEFAULT:@SECLEVEL=0");
  SSL_CTX_set_min_proto_version(old.ctx, TLS1_VERSION);
  SSL_CTX_set_max_proto_version(old.ctx, TLS1_1_VERSION);
  TlsEngine server(*server_ctx);
  TlsEngine client(old.ctx, sg::TlsRole::kClient, "default.test");
  Pipe pipe(server, client);
  CHECK_FALSE(pipe.handshake());
  CHECK(pipe.server_status == TlsStatus::kError);
  CAPTURE(server.error_text());
  CHECK(contains(server.error_text(), "unsupported protocol"));
  CHECK(pipe.client_status == TlsStatus::kError);  // it got the protocol_version alert
}

TEST_CASE("TLS min_version 1.3 refuses a client that stops at 1.2") {
  sg::TlsConfig config = sg::testing::server_config();
  config.min_version = "1.3";
  auto server_ctx = server_context(config);
  auto client_ctx = client_context();
  SSL_CTX_set_max_proto_version(client_ctx->native(), TLS1_2_VERSION);
  {
    TlsEngine server(*server_ctx);
    TlsEngine client(*client_ctx, "default.test");
    Pipe pipe(server, client);
    CHECK_FALSE(pipe.handshake());
    CAPTURE(server.error_text());
    CHECK(contains(server.error_text(), "unsupported protocol"));
    CHECK(client.failed());
  }
  // The same 1.2 client is welcome with the default min_version, on an ECDHE+AEAD suite.
  auto default_ctx = server_context();
  TlsEngine server(*default_ctx);
  TlsEngine client(*client_ctx, "default.test");
  Pipe pipe(server, client);
  REQUIRE(pipe.handshake());
  CHECK(server.protocol() == "TLSv1.2");
  std::string cipher(server.cipher());
  CAPTURE(cipher);
  CHECK(cipher.rfind("ECDHE-ECDSA-", 0) == 0);
  CHECK((contains(cipher, "-GCM-") || contains(cipher, "CHACHA20-POLY1305")));
}

TEST_CASE("TLS configured ciphers replace the default TLS 1.2 list") {
  sg::TlsConfig config = sg::testing::server_config();
  config.ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305";
  auto server_ctx = server_context(config);
  auto client_ctx = client_context();
  SSL_CTX_set_max_proto_version(client_ctx->native(), TLS1_2_VERSION);
  TlsEngine server(*server_ctx);
  TlsEngine client(*client_ctx, "default.test");
  Pipe pipe(server, client);
  REQUIRE(pipe.handshake());
  CHECK(server.cipher() == "ECDHE-ECDSA-CHACHA20-POLY1305");
}

TEST_CASE("TLS ALPN agrees on http/1.1 and never on h2") {
  auto server_ctx = server_context();
  {
    auto client_ctx = client_context();  // offers http/1.1
    TlsEngine server(*server_ctx);
    TlsEngine client(*client_ctx, "default.test");
    Pipe pipe(server, client);
    REQUIRE(pipe.handshake());
    CHECK(server.alpn() == "http/1.1");
    CHECK(client.alpn() == "http/1.1");
  }
  struct Case {
    std::string offer;
    const char* expected;
  };
  for (const Case& c : {Case{std::string("\x02h2\x08http/1.1", 12), "http/1.1"},
                        Case{std::string("\x02h2", 3), ""}}) {
    RawClient browser;
    SSL_CTX_set_verify(browser.ctx, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_alpn_protos(browser.ctx, reinterpret_cast<const unsigned char*>(c.offer.data()),
                            static_cast<unsigned>(c.offer.size()));
    TlsEngine server(*server_ctx);
    TlsEngine client(browser.ctx, sg::TlsRole::kClient, "default.test");
    Pipe pipe(server, client);
    REQUIRE(pipe.handshake());  // an h2-only client still gets a handshake, without ALPN
    CHECK(server.alpn() == c.expected);
    CHECK(client.alpn() == c.expected);
  }
}

TEST_CASE("ALPN selects h2 when offered and allowed, else http/1.1") {
  std::string error;
  auto h2_ctx = sg::TlsServerContext::load(sg::testing::server_config(), error, nullptr,
                                           sg::AlpnPolicy::kH2AndHttp11);
  REQUIRE_MESSAGE(h2_ctx != nullptr, error);
  auto http11_ctx = server_context();
  struct Case {
    std::string offer;
    bool h2_allowed;
    const char* expected;
  };
  const std::string h2_first("\x02h2\x08http/1.1", 12);
  const std::string h2_last("\x08http/1.1\x02h2", 12);
  for (const Case& c :
       {Case{h2_first, true, "h2"}, Case{h2_last, true, "h2"},
        Case{std::string("\x02h2", 3), true, "h2"},
        Case{std::string("\x08http/1.1", 9), true, "http/1.1"},
        Case{std::string("\x06spdy/3", 7), true, ""}, Case{h2_first, false, "http/1.1"}}) {
    CAPTURE(c.expected);
    RawClient browser;
    SSL_CTX_set_verify(browser.ctx, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_alpn_protos(browser.ctx, reinterpret_cast<const unsigned char*>(c.offer.data()),
                            static_cast<unsigned>(c.offer.size()));
    TlsEngine server(c.h2_allowed ? *h2_ctx : *http11_ctx);
    TlsEngine client(browser.ctx, sg::TlsRole::kClient, "default.test");
    Pipe pipe(server, client);
    REQUIRE(pipe.handshake());
    CHECK(server.alpn() == c.expected);
    CHECK(client.alpn() == c.expected);
    CHECK(server.negotiated_h2() == (std::string_view(c.expected) == "h2"));
  }
}

TEST_CASE("TLS sessions resume with tickets, across key rotation and reload, and by ID") {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  auto connect = [&](const sg::TlsServerContext& sctx, sg::TlsClientContext& cctx,
                     SSL_SESSION* resume, bool& reused) {
    TlsEngine server(sctx);
    TlsEngine client(cctx, "alpha.test");
    if (resume != nullptr) REQUIRE(client.set_session(resume));
    Pipe pipe(server, client);
    REQUIRE(pipe.handshake());
    CHECK(server.session_reused() == client.session_reused());
    reused = server.session_reused();
    // The answer carries the TLS 1.3 tickets to the client before it asks for its session.
    REQUIRE(server.encrypt("hello", pipe.to_client) == TlsStatus::kOk);
    pipe.pump();
    CHECK(pipe.client_plain == "hello");
    CHECK(sg::testing::peer_common_name(client.native_handle()) == "alpha.test");
    return client.session();
  };

  for (int max_version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    CAPTURE(max_version);
    SSL_CTX_set_max_proto_version(client_ctx->native(), max_version);
    bool reused = true;
    sg::TlsSession first = connect(*server_ctx, *client_ctx, nullptr, reused);
    CHECK_FALSE(reused);
    REQUIRE(first != nullptr);
    sg::TlsSession second = connect(*server_ctx, *client_ctx, first.get(), reused);
    CHECK(reused);

    // A rotated-out key still opens its tickets (for kTlsSessionLifetime).
    server_ctx->rotate_ticket_keys();
    connect(*server_ctx, *client_ctx, second.get(), reused);
    CHECK(reused);

    // Reload: the new context inherits the ticket keys; a context without them does not resume.
    std::string error;
    auto reloaded =
        sg::TlsServerContext::load(sg::testing::server_config(), error, server_ctx.get());
    REQUIRE(reloaded != nullptr);
    connect(*reloaded, *client_ctx, second.get(), reused);
    CHECK(reused);
    auto fresh = server_context();
    connect(*fresh, *client_ctx, second.get(), reused);
    CHECK_FALSE(reused);
  }

  // A TLS 1.2 client without tickets resumes from the server's session cache, by session ID.
  SSL_CTX_set_max_proto_version(client_ctx->native(), TLS1_2_VERSION);
  SSL_CTX_set_options(client_ctx->native(), SSL_OP_NO_TICKET);
  bool reused = true;
  sg::TlsSession first = connect(*server_ctx, *client_ctx, nullptr, reused);
  REQUIRE(first != nullptr);
  CHECK(SSL_SESSION_has_ticket(first.get()) == 0);
  connect(*server_ctx, *client_ctx, first.get(), reused);
  CHECK(reused);
}

TEST_CASE("TLS upstream verification: wrong CA and wrong name are errors") {
  auto server_ctx = server_context();
  SUBCASE("a certificate from another CA") {
    sg::UpstreamConfig config = sg::testing::upstream_config();
    config.ca_file = TestPki::get().other_ca_file;
    auto client_ctx = client_context(config);
    TlsEngine server(*server_ctx);
    TlsEngine client(*client_ctx, "default.test");
    Pipe pipe(server, client);
    CHECK_FALSE(pipe.handshake());
    CHECK(pipe.client_status == TlsStatus::kError);
    CAPTURE(client.error_text());
    CHECK(contains(client.error_text(), "certificate verify failed"));
    CHECK(contains(client.error_text(), "unable to get local issuer certificate"));
    CHECK(server.failed());  // it got the alert
  }
  SUBCASE("a certificate for another name") {
    auto client_ctx = client_context();
    TlsEngine server(*server_ctx);
    TlsEngine client(*client_ctx, "nothere.test");  // no SNI match: default.test's certificate
    Pipe pipe(server, client);
    CHECK_FALSE(pipe.handshake());
    CAPTURE(client.error_text());
    CHECK(contains(client.error_text(), "hostname mismatch"));
  }
  SUBCASE("no name to check against") {
    auto client_ctx = client_context();
    TlsEngine client(*client_ctx, "");
    std::string out;
    CHECK(client.start_handshake(out) == TlsStatus::kError);
    CHECK(out.empty());
    CHECK(contains(client.error_text(), "no server name"));
  }
  SUBCASE("verification off accepts anything (testing only)") {
    sg::UpstreamConfig config = sg::testing::upstream_config();
    config.ca_file = TestPki::get().other_ca_file;
    config.verify = false;
    auto client_ctx = client_context(config);
    TlsEngine server(*server_ctx);
    TlsEngine client(*client_ctx, "nothere.test");
    Pipe pipe(server, client);
    CHECK(pipe.handshake());
  }
}

TEST_CASE("TLS upstream addressed by IP is verified against the IP SAN") {
  sg::TlsConfig config;
  config.certificate = TestPki::get().upstream.certificate;
  config.private_key = TestPki::get().upstream.private_key;
  auto upstream_ctx = server_context(config);
  auto client_ctx = client_context();
  {
    TlsEngine server(*upstream_ctx);
    TlsEngine client(*client_ctx, "127.0.0.1");
    Pipe pipe(server, client);
    CHECK(pipe.handshake());
  }
  TlsEngine server(*upstream_ctx);
  TlsEngine client(*client_ctx, "127.0.0.2");
  Pipe pipe(server, client);
  CHECK_FALSE(pipe.handshake());
  CAPTURE(client.error_text());
  CHECK(contains(client.error_text(), "IP address mismatch"));
}

TEST_CASE("TLS mutual authentication: the upstream sees the gateway's client certificate") {
  // The application's side: requires a client certificate from our CA.
  sg::TlsConfig app;
  app.certificate = TestPki::get().upstream.certificate;
  app.private_key = TestPki::get().upstream.private_key;
  auto app_ctx = server_context(app);
  SSL_CTX_set_verify(app_ctx->native(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  REQUIRE(SSL_CTX_load_verify_file(app_ctx->native(), TestPki::get().ca_file.c_str()) == 1);

  sg::UpstreamConfig config = sg::testing::upstream_config();
  config.certificate = TestPki::get().client.certificate;
  config.private_key = TestPki::get().client.private_key;
  auto gateway_ctx = client_context(config);
  {
    TlsEngine server(*app_ctx);
    TlsEngine client(*gateway_ctx, "upstream.test");
    Pipe pipe(server, client);
    REQUIRE(pipe.handshake());
    CHECK(sg::testing::peer_common_name(server.native_handle()) == "gateway-client");
    CHECK(SSL_get_verify_result(server.native_handle()) == X509_V_OK);
  }
  // Without a client certificate the application refuses the connection.
  auto anonymous_ctx = client_context();
  TlsEngine server(*app_ctx);
  TlsEngine client(*anonymous_ctx, "upstream.test");
  Pipe pipe(server, client);
  client.start_handshake(pipe.to_server);
  pipe.pump();
  CHECK(server.failed());
  CAPTURE(server.error_text());
  CHECK(contains(server.error_text(), "certificate"));
  // TLS 1.3: the client finished first and learns of the refusal from the alert.
  CHECK(client.failed());
}

TEST_CASE("TLS garbage and plain HTTP on a TLS port are errors with an alert to send") {
  auto server_ctx = server_context();
  TlsEngine server(*server_ctx);
  std::string plain, out;
  const std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  CHECK(server.feed(request.data(), request.size(), plain, out) == TlsStatus::kError);
  CAPTURE(server.error_text());
  CHECK(contains(server.error_text(), "http request"));
  CHECK(plain.empty());
  // Dead from here on, whatever comes.
  CHECK(server.feed("x", 1, plain, out) == TlsStatus::kError);
  CHECK(server.encrypt("x", out) == TlsStatus::kError);
  CHECK(server.shutdown(out) == TlsStatus::kError);
}

TEST_CASE("TLS engine after the peer's close_notify ignores further input") {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  TlsEngine server(*server_ctx);
  TlsEngine client(*client_ctx, "default.test");
  Pipe pipe(server, client);
  REQUIRE(pipe.handshake());
  // Data and close_notify in one read: the data arrives, then kClosed.
  REQUIRE(client.encrypt("last words", pipe.to_server) == TlsStatus::kOk);
  REQUIRE(client.shutdown(pipe.to_server) == TlsStatus::kOk);
  pipe.pump();
  CHECK(pipe.server_status == TlsStatus::kClosed);
  CHECK(pipe.server_plain == "last words");
  std::string plain, out;
  CHECK(server.feed("junk", 4, plain, out) == TlsStatus::kClosed);
  CHECK(plain.empty());
}

namespace {
// What OpenSSL has not consumed yet (TlsBio::readable) and what it wrote with no call to carry it
// (TlsBio::unsent): both are zero whenever the engine is idle.
size_t unread_input(const TlsEngine& e) {
  return BIO_ctrl_pending(SSL_get_rbio(e.native_handle()));
}
size_t unsent_output(const TlsEngine& e) {
  return BIO_wpending(SSL_get_wbio(e.native_handle()));
}

// A server and a client engine that finished their handshake.
struct Connected {
  std::shared_ptr<sg::TlsServerContext> server_ctx = server_context();
  std::shared_ptr<sg::TlsClientContext> client_ctx = client_context();
  TlsEngine server{*server_ctx};
  TlsEngine client{*client_ctx, "default.test"};
  Pipe pipe{server, client};
  Connected() { REQUIRE(pipe.handshake()); }
};
}  // namespace

TEST_CASE("TLS record fed byte by byte is delivered whole at its last byte") {
  Connected c;
  TlsEngine& server = c.server;
  TlsEngine& client = c.client;
  const std::string request = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  std::string wire, plain, out;
  REQUIRE(client.encrypt(request, wire) == TlsStatus::kOk);
  for (size_t i = 0; i + 1 < wire.size(); ++i) {
    CAPTURE(i);
    REQUIRE(server.feed(wire.data() + i, 1, plain, out) == TlsStatus::kOk);
    CHECK(plain.empty());
  }
  CHECK(server.feed(wire.data() + wire.size() - 1, 1, plain, out) == TlsStatus::kOk);
  CHECK(plain == request);
  CHECK(out.empty());
  CHECK(unread_input(server) == 0);
  CHECK(unsent_output(server) == 0);
}

TEST_CASE("TLS records of several writes in one feed are all decrypted, in order") {
  Connected c;
  TlsEngine& server = c.server;
  TlsEngine& client = c.client;
  const std::string big = pattern(40000, 4);  // three records
  std::string wire, plain, out;
  for (std::string_view part : {std::string_view("one,"), std::string_view("two,"),
                                std::string_view(big), std::string_view("three")}) {
    REQUIRE(client.encrypt(part, wire) == TlsStatus::kOk);
  }
  CHECK(server.feed(wire.data(), wire.size(), plain, out) == TlsStatus::kOk);
  CHECK(plain == "one,two," + big + "three");
  CHECK(unread_input(server) == 0);
}

TEST_CASE("TLS client Finished and the first request in one read, split at every byte") {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  const std::string request = "GET / HTTP/1.1\r\n\r\n";
  for (size_t split = 0;; ++split) {
    CAPTURE(split);
    TlsEngine server(*server_ctx);
    TlsEngine client(*client_ctx, "default.test");
    std::string hello, flight, finished, plain, tickets;
    REQUIRE(client.start_handshake(hello) == TlsStatus::kWantMore);
    // The ClientHello in two pieces too.
    REQUIRE(server.feed(hello.data(), 10, plain, flight) == TlsStatus::kWantMore);
    CHECK(flight.empty());
    REQUIRE(server.feed(hello.data() + 10, hello.size() - 10, plain, flight) ==
            TlsStatus::kWantMore);
    REQUIRE(client.feed(flight.data(), flight.size(), plain, finished) == TlsStatus::kOk);
    const size_t finished_len = finished.size();  // then the request's record
    REQUIRE(client.encrypt(request, finished) == TlsStatus::kOk);
    if (split > finished.size()) break;
    TlsStatus first = server.feed(finished.data(), split, plain, tickets);
    CHECK(first == (split < finished_len ? TlsStatus::kWantMore : TlsStatus::kOk));
    TlsStatus second =
        server.feed(finished.data() + split, finished.size() - split, plain, tickets);
    REQUIRE(second == TlsStatus::kOk);
    CHECK(plain == request);
    CHECK(unread_input(server) == 0);
    // The session tickets the server sent once the handshake was done reach the client.
    std::string client_plain, none;
    CHECK(client.feed(tickets.data(), tickets.size(), client_plain, none) == TlsStatus::kOk);
    CHECK(client.session() != nullptr);
  }
}

namespace {
int tickets_received = 0;
int count_ticket(SSL*, SSL_SESSION*) {
  ++tickets_received;
  return 0;  // not kept
}
}  // namespace

TEST_CASE("TLS output OpenSSL makes between calls is carried by the next call") {
  auto server_ctx = server_context();
  RawClient raw;
  SSL_CTX_set_session_cache_mode(raw.ctx, SSL_SESS_CACHE_CLIENT);
  SSL_CTX_sess_set_new_cb(raw.ctx, count_ticket);
  tickets_received = 0;
  TlsEngine server(*server_ctx);
  TlsEngine client(raw.ctx, sg::TlsRole::kClient, "default.test");
  Pipe pipe(server, client);
  REQUIRE(pipe.handshake());
  const int after_handshake = tickets_received;
  CHECK(after_handshake > 0);
  // One more ticket, written while no engine call is running (nowhere to put it yet).
  REQUIRE(SSL_new_session_ticket(server.native_handle()) == 1);
  REQUIRE(SSL_do_handshake(server.native_handle()) == 1);
  CHECK(unsent_output(server) > 0);
  CHECK(pipe.to_client.empty());
  REQUIRE(server.encrypt("hello", pipe.to_client) == TlsStatus::kOk);
  CHECK(unsent_output(server) == 0);
  pipe.pump();
  CHECK(pipe.client_status == TlsStatus::kOk);
  CHECK(pipe.client_plain == "hello");
  CHECK(tickets_received == after_handshake + 1);
}

TEST_CASE("TLS data, close_notify and trailing bytes in one read: the data, then kClosed") {
  Connected c;
  TlsEngine& server = c.server;
  TlsEngine& client = c.client;
  std::string wire, plain, out;
  REQUIRE(client.encrypt("last words", wire) == TlsStatus::kOk);
  REQUIRE(client.shutdown(wire) == TlsStatus::kOk);
  wire += "trailing bytes after close_notify";
  CHECK(server.feed(wire.data(), wire.size(), plain, out) == TlsStatus::kClosed);
  CHECK(plain == "last words");
  CHECK(unread_input(server) == 0);  // nothing is kept for a read that will never come
  CHECK(server.shutdown(out) == TlsStatus::kOk);
  CHECK_FALSE(out.empty());
  std::string client_plain, none;
  CHECK(client.feed(out.data(), out.size(), client_plain, none) == TlsStatus::kClosed);
}
