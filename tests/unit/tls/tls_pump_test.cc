// tls_feed and tls_encrypt_all between two TlsEngines back to back, no sockets.
#include "proxy_core/tls/tls_pump.h"

#include <doctest/doctest.h>

#include <string>

#include "tests/unit/tls_test_pki.h"

using sg::TlsEngine;
using sg::TlsStatus;

namespace {

uv_buf_t buf_of(std::string& s) {
  return uv_buf_init(s.data(), static_cast<unsigned>(s.size()));
}

}  // namespace

TEST_CASE("TLS pump reports the handshake once and carries a batch of buffers in order") {
  std::string error;
  auto server_ctx = sg::TlsServerContext::load(sg::testing::server_config(), error);
  REQUIRE_MESSAGE(server_ctx != nullptr, error);
  auto client_ctx = sg::TlsClientContext::load(sg::testing::upstream_config(), error);
  REQUIRE_MESSAGE(client_ctx != nullptr, error);
  TlsEngine server(*server_ctx);
  TlsEngine client(*client_ctx, "default.test");

  std::string first = "GET / HTTP/1.1\r\n", second = "Host: a\r\n\r\n";
  uv_buf_t bufs[2] = {buf_of(first), buf_of(second)};
  std::string net;
  CHECK_FALSE(sg::tls_encrypt_all(client, bufs, 2, net));  // before the handshake: refused

  // Handshake by hand through tls_feed; the scratch strings are cleared by each call.
  std::string to_server, to_client, plain = "stale", out = "stale";
  REQUIRE(client.start_handshake(to_server) != TlsStatus::kError);
  int server_done = 0, client_done = 0;
  for (int round = 0; round < 10 && !(server.handshake_done() && client.handshake_done());
       ++round) {
    sg::TlsFed s = sg::tls_feed(server, to_server.data(), to_server.size(), plain, out);
    REQUIRE(s.status != TlsStatus::kError);
    CHECK(plain.empty());
    server_done += s.handshake_completed;
    to_server.clear();
    to_client += out;
    sg::TlsFed c = sg::tls_feed(client, to_client.data(), to_client.size(), plain, out);
    REQUIRE(c.status != TlsStatus::kError);
    client_done += c.handshake_completed;
    to_client.clear();
    to_server += out;
  }
  REQUIRE(server.handshake_done());
  REQUIRE(client.handshake_done());
  CHECK(server_done == 1);
  CHECK(client_done == 1);

  net = to_server;  // anything the client still owes the server goes first
  REQUIRE(sg::tls_encrypt_all(client, bufs, 2, net));
  sg::TlsFed s = sg::tls_feed(server, net.data(), net.size(), plain, out);
  CHECK(s.status == TlsStatus::kOk);
  CHECK_FALSE(s.handshake_completed);
  CHECK(plain == first + second);
}
