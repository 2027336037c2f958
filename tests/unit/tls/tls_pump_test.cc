// tls_feed and tls_encrypt_all between two TlsEngines back to back, no sockets.
#include "proxy_core/tls/tls_pump.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/unit/tls_test_pki.h"

using sg::TlsEngine;
using sg::TlsStatus;

namespace {

uv_buf_t buf_of(std::string& s) {
  return uv_buf_init(s.data(), static_cast<unsigned>(s.size()));
}

// The records in a run of TLS output, by their 5-byte headers; -1 if the run is not whole records.
int count_records(const std::string& net) {
  size_t off = 0;
  int n = 0;
  while (off + 5 <= net.size()) {
    size_t len =
        (static_cast<unsigned char>(net[off + 3]) << 8) | static_cast<unsigned char>(net[off + 4]);
    off += 5 + len;
    ++n;
  }
  return off == net.size() ? n : -1;
}

struct EnginePair {
  std::shared_ptr<sg::TlsServerContext> server_ctx;
  std::shared_ptr<sg::TlsClientContext> client_ctx;
  std::unique_ptr<TlsEngine> server, client;
};

// Two engines with the handshake done and every handshake byte delivered.
EnginePair handshaken_pair() {
  EnginePair p;
  std::string error;
  p.server_ctx = sg::TlsServerContext::load(sg::testing::server_config(), error);
  REQUIRE_MESSAGE(p.server_ctx != nullptr, error);
  p.client_ctx = sg::TlsClientContext::load(sg::testing::upstream_config(), error);
  REQUIRE_MESSAGE(p.client_ctx != nullptr, error);
  p.server = std::make_unique<TlsEngine>(*p.server_ctx);
  p.client = std::make_unique<TlsEngine>(*p.client_ctx, "default.test");
  std::string to_server, to_client, plain, out;
  REQUIRE(p.client->start_handshake(to_server) != TlsStatus::kError);
  for (int round = 0; round < 10 && !(to_server.empty() && to_client.empty() &&
                                      p.server->handshake_done() && p.client->handshake_done());
       ++round) {
    REQUIRE(sg::tls_feed(*p.server, to_server.data(), to_server.size(), plain, out).status !=
            TlsStatus::kError);
    to_server.clear();
    to_client += out;
    REQUIRE(sg::tls_feed(*p.client, to_client.data(), to_client.size(), plain, out).status !=
            TlsStatus::kError);
    to_client.clear();
    to_server += out;
  }
  REQUIRE(p.server->handshake_done());
  REQUIRE(p.client->handshake_done());
  REQUIRE(to_server.empty());
  return p;
}

// Encrypts the pieces with tls_encrypt_all, checks the server reads them back joined, in order,
// and returns how many records they took.
int records_for(EnginePair& p, std::vector<std::string> pieces) {
  std::vector<uv_buf_t> bufs;
  std::string expected;
  for (std::string& piece : pieces) {
    bufs.push_back(buf_of(piece));
    expected += piece;
  }
  std::string net, plain, out;
  REQUIRE(sg::tls_encrypt_all(*p.client, bufs.data(), static_cast<unsigned>(bufs.size()), net));
  REQUIRE(sg::tls_feed(*p.server, net.data(), net.size(), plain, out).status == TlsStatus::kOk);
  CHECK(plain == expected);
  return count_records(net);
}

}  // namespace

TEST_CASE("TLS pump joins runs of small buffers into one record, never copying a big one") {
  EnginePair p = handshaken_pair();
  // A response head and a short body: one record, not two.
  CHECK(records_for(p, {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "hello"}) == 1);
  CHECK(records_for(p, {"a", "", "b", "c", "d"}) == 1);
  // Small pieces beyond one record's 16 KiB: as few full records as they fit in.
  CHECK(records_for(p, std::vector<std::string>(5, std::string(5000, 'x'))) == 2);
  // Exactly one record's worth joined, the next piece starts a new one.
  CHECK(records_for(p, {std::string(16000, 'a'), std::string(384, 'b'), "c"}) == 2);
  // A big piece goes alone (two records of its own), the small ones around it alone too.
  CHECK(records_for(p, {"head", std::string(20000, 'y'), "tail"}) == 4);
  CHECK(records_for(p, {std::string(20000, 'z')}) == 2);
}

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
