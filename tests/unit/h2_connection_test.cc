// H2Connection and H2Stream without sockets: an nghttp2 client (h2_test_support.h) talks to an
// H2Connection through a fake transport on a private libuv loop (for the connection's flush and
// timer handles), and each stream's Exchange runs on the fakes of exchange_fakes.h. What reaches
// the application, what the client gets, when the request window is given back, and how the
// exchanges of a connection that ends are torn down.
#include "proxy_core/h2_connection.h"

#include <doctest/doctest.h>
#include <nghttp2/nghttp2.h>
#include <uv.h>

#include <string>

#include "tests/unit/exchange_fakes.h"
#include "tests/unit/http2/h2_test_support.h"

namespace sg {
namespace {

using testing::FakeChannel;
using testing::FakeServices;
using testing::FakeSessionStore;

struct FakeTransport final : H2Transport {
  bool h2_write(std::string_view bytes) override {
    out.append(bytes);
    return true;
  }
  size_t h2_write_queued() const override { return 0; }
  void h2_set_reading(bool on) override { reading = on; }
  void h2_finished() override { finished = true; }

  std::string out;
  bool reading = false;
  bool finished = false;
};

// One H2Connection on a private loop, driven by an nghttp2 client.
struct Rig {
  Rig() : pool(&services) {
    uv_loop_init(&loop);
    services.set_store(&store);
    facts.peer_ip = "192.0.2.9";
    facts.tls = true;
    conn = new H2Connection(transport, &loop, services, pool, facts);
  }
  ~Rig() {
    if (conn != nullptr) conn->release();  // deletes itself once its handles closed
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  // Moves bytes both ways, running the loop turns that flush the connection, until quiet.
  void pump() {
    for (int round = 0; round < 100; ++round) {
      bool moved = false;
      const uint8_t* data = nullptr;
      ssize_t n;
      while ((n = nghttp2_session_mem_send(client.raw(), &data)) > 0) {
        conn->receive(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
        moved = true;
      }
      uv_run(&loop, UV_RUN_NOWAIT);
      if (!transport.out.empty()) {
        std::string bytes;
        bytes.swap(transport.out);
        nghttp2_session_mem_recv(client.raw(), reinterpret_cast<const uint8_t*>(bytes.data()),
                                 bytes.size());
        moved = true;
      }
      if (!moved) return;
    }
  }
  FakeChannel* upstream() { return services.upstreams_.last(); }

  uv_loop_t loop;
  FakeSessionStore store;
  FakeServices services;
  ExchangePool pool;
  ClientFacts facts;
  FakeTransport transport;
  H2Connection* conn = nullptr;
  h2test::H2Client client;
};

h2test::Fields post(const std::string& path) {
  return {{":method", "POST"}, {":scheme", "https"}, {":authority", "app"}, {":path", path}};
}

TEST_CASE("h2 connection: a stream is an exchange, forwarded as HTTP/1.1 and answered") {
  Rig rig;
  int32_t id = rig.client.request(h2test::get_request("/page?x=1"));
  rig.pump();
  FakeChannel* up = rig.upstream();
  REQUIRE(up != nullptr);
  up->connected();
  const std::string& w = up->written;
  CHECK(w.rfind("GET /page?x=1 HTTP/1.1\r\n", 0) == 0);
  CHECK(w.find("X-Forwarded-Proto: https\r\n") != std::string::npos);
  CHECK(w.find("X-Forwarded-For: 192.0.2.9\r\n") != std::string::npos);
  up->respond(200, {{"Content-Type", "text/plain"}, {"X-Session-Other", "v"}}, "hello", true);
  rig.pump();
  const h2test::H2Client::Response& r = rig.client.responses[id];
  CHECK(r.status == 200);
  CHECK(r.body == "hello");
  CHECK(r.closed);
  for (const auto& field : r.headers)
    CHECK(field.first.rfind("x-session", 0) == std::string::npos);
  CHECK(rig.pool.free_count() == 1);  // finished and given back
  CHECK(rig.services.metrics_.h2.connections.get() == 1);
  CHECK(rig.services.metrics_.h2.streams.get() == 1);
}

TEST_CASE("h2 connection: a body without content-length goes upstream chunked") {
  Rig rig;
  std::string body = "0123456789";
  rig.client.request(post("/upload"), &body);
  rig.pump();
  FakeChannel* up = rig.upstream();
  REQUIRE(up != nullptr);
  up->connected();
  rig.pump();
  const std::string& w = up->written;
  CHECK(w.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(w.find("Content-Length") == std::string::npos);
  CHECK(w.find("\r\n\r\na\r\n0123456789\r\n0\r\n\r\n") != std::string::npos);
}

TEST_CASE("h2 connection: the request window is given back only when the upstream takes more") {
  Rig rig;
  std::string body(200 * 1024, 'b');
  int32_t id = rig.client.request(post("/upload"), &body);
  rig.pump();
  FakeChannel* up = rig.upstream();
  REQUIRE(up != nullptr);
  up->queued_bytes = 10 * 1024 * 1024;  // a slow application: its socket queue is full
  up->connected();
  rig.pump();
  // The stream's window (64 KiB) was sent and is not given back while the upstream is full.
  size_t sent_before = up->written.size();
  CHECK(nghttp2_session_get_stream_remote_window_size(rig.client.raw(), id) == 0);
  up->queued_bytes = 0;
  up->user()->on_upstream_drained(up);
  rig.pump();
  CHECK(up->written.size() > sent_before);
  CHECK(up->written.find("\r\n0\r\n\r\n") != std::string::npos);  // the whole body went up
}

TEST_CASE("h2 connection: a later stream carries nothing of an earlier one (reused objects)") {
  Rig rig;
  std::string body = "0123456789";
  h2test::Fields first = post("/upload");
  first.push_back({"cookie", "theme=dark"});
  first.push_back({"x-first", "1"});
  int32_t a = rig.client.request(first, &body);
  rig.pump();
  FakeChannel* up = rig.upstream();
  REQUIRE(up != nullptr);
  up->connected();
  rig.pump();
  CHECK(up->written.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  up->respond(201, {{"X-Only-First", "yes"}, {"Content-Type", "text/plain"}}, "made", true);
  rig.pump();
  REQUIRE(rig.client.responses[a].closed);
  CHECK(rig.client.responses[a].status == 201);

  for (int i = 0; i < 3; ++i) {
    int32_t b = rig.client.request(h2test::get_request("/next"));
    rig.pump();
    FakeChannel* up2 = rig.upstream();
    REQUIRE(up2 != nullptr);
    up2->connected();
    const std::string& w = up2->written;
    std::string head = w.substr(w.rfind("GET /next HTTP/1.1\r\n"));
    CHECK(head.find("Transfer-Encoding") == std::string::npos);
    CHECK(head.find("Content-Length") == std::string::npos);
    CHECK(head.find("x-first") == std::string::npos);
    CHECK(head.find("theme=dark") == std::string::npos);
    up2->respond(200, {{"Content-Type", "text/html"}}, "page", true);
    rig.pump();
    const h2test::H2Client::Response& r = rig.client.responses[b];
    CHECK(r.status == 200);
    CHECK(r.body == "page");
    CHECK(r.closed);
    for (const auto& field : r.headers)
      CHECK(field.first != "x-only-first");
  }
  CHECK(rig.services.metrics_.h2.streams.get() == 4);
}

TEST_CASE("h2 connection: streams open when the connection ends are torn down") {
  Rig rig;
  rig.client.request(h2test::get_request("/slow"));
  rig.pump();
  FakeChannel* up = rig.upstream();
  REQUIRE(up != nullptr);
  up->connected();
  SUBCASE("a protocol error from the client (GOAWAY, no on_stream_closed)") {
    rig.conn->receive("\x00\x00\x01\x00\x00\x00\x00\x00\x00x", 10);  // DATA on stream 0
    uv_run(&rig.loop, UV_RUN_NOWAIT);
    CHECK(rig.transport.finished);
  }
  SUBCASE("the transport closes") {
    rig.conn->release();
    rig.conn = nullptr;
  }
  CHECK(up->closed);  // the exchange gave its upstream up
  CHECK(rig.pool.free_count() == 1);
}

TEST_CASE("h2 connection: drain sends GOAWAY and the open stream still finishes") {
  Rig rig;
  int32_t id = rig.client.request(h2test::get_request("/slow"));
  rig.pump();
  FakeChannel* up = rig.upstream();
  REQUIRE(up != nullptr);
  up->connected();
  rig.conn->drain();
  rig.pump();
  CHECK(rig.client.goaway);
  CHECK(rig.client.goaway_code == 0);
  CHECK_FALSE(rig.transport.finished);
  up->respond(200, {}, "late", true);
  rig.pump();
  CHECK(rig.client.responses[id].body == "late");
  CHECK(rig.transport.finished);  // the last stream ended: the connection closes
}

}  // namespace
}  // namespace sg
