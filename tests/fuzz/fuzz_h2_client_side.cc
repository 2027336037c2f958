// Fuzz target: client bytes (after the HTTP/2 connection preface, which the harness sends) into an
// H2Connection (proxy_core/h2_connection.h) whose streams run real Exchanges on the fakes of
// tests/unit/exchange_fakes.h: nghttp2, our codec, the per-stream Downstream, the session gate
// (fake store) and the upstream request, all in one process, on a private libuv loop.
//
// Input: the layout of the h2_frames target (its seeds serve here too): byte 0 options (bit 0:
// the application also answers requests whose body it is receiving, else only bodiless ones;
// bits 2-3: response body size 0, 100, 20000 or 200000 bytes; bit 4: the upstream's write queue
// stays full, so request bodies wait on their window); byte 1: where to cut the rest into two
// receive() calls.
//
// Invariants:
// - every upstream request head re-parses with the strict HTTP/1.1 parser, as HTTP/1.1, with
//   exactly one framing when the stream had a body (Content-Length or chunked, never both);
// - no field under the session prefix reaches the application but the ones the gateway adds;
// - once the connection is released, every upstream channel is given back or closed: none is
//   left to an exchange whose stream is gone.
#include <string>
#include <string_view>

#include "proxy_core/h2_connection.h"
#include "proxy_core/http/header_rewrite.h"
#include "proxy_core/http/http_parser.h"
#include "tests/fuzz/fuzz_session.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/unit/exchange_fakes.h"

namespace {

constexpr size_t kBodySizes[] = {0, 100, 20000, 200000};

struct Transport final : sg::H2Transport {
  bool h2_write(std::string_view bytes) override {
    written += bytes.size();
    return true;
  }
  size_t h2_write_queued() const override { return 0; }
  void h2_set_reading(bool) override {}
  void h2_finished() override { finished = true; }
  size_t written = 0;
  bool finished = false;
};

// The request head the exchange wrote upstream, checked with the strict parser.
void check_upstream_head(const std::string& written) {
  sg::HttpParser parser(sg::HttpParser::Kind::kRequest, {64 * 1024, 300, 4096});
  const char* data = written.data();
  size_t len = written.size();
  sg::HttpParser::Event ev = parser.step(data, len);
  SG_FUZZ_CHECK(ev == sg::HttpParser::Event::kHead || ev == sg::HttpParser::Event::kHeadDone);
  const sg::MessageHead& head = parser.head();
  SG_FUZZ_CHECK(head.version_major == 1 && head.version_minor == 1);
  SG_FUZZ_CHECK(!(head.chunked && head.has_content_length));
  SG_FUZZ_CHECK(head.count("content-length") <= 1 && head.count("transfer-encoding") <= 1);
  for (size_t i = 0; i < head.header_count; ++i) {
    const sg::HeaderField& f = head.headers[i];
    if (!sg::under_prefix(f.name, "X-Session-")) continue;
    SG_FUZZ_CHECK(f.name == "X-Session-Id");  // the only one the default configuration adds
  }
}

// Plays the application for every channel the exchanges opened.
void serve(sg::testing::FakeUpstreams& ups, uint8_t options, size_t& served) {
  for (; served < ups.channels.size(); ++served) {
    sg::testing::FakeChannel* c = ups.channels[served].get();
    c->queued_bytes = (options & 0x10) != 0 ? 1u << 30 : 0;
    if (c->user() == nullptr || c->closed) continue;
    c->connected();
    if (c->closed || c->user() == nullptr || c->written.empty()) continue;
    check_upstream_head(c->written);
    if ((options & 1) == 0 && c->written.find("\r\n\r\n") + 4 < c->written.size()) continue;
    std::string body(kBodySizes[(options >> 2) & 3], 'r');
    c->respond(200, {{"Content-Type", "text/plain"}, {"X-Session-Other", "x"}}, std::move(body),
               true);
  }
}

}  // namespace

SG_FUZZ_ENTRY(h2_client_side) {
  sg_fuzz::quiet_logs();
  if (size < 2) return 0;
  const uint8_t options = data[0];
  sg::Config config;
  config.http2.max_concurrent_streams = 16;
  config.http2.stream_window_bytes = 16 * 1024;
  config.http2.connection_window_bytes = 64 * 1024;
  config.http2.response_buffer_bytes = 16 * 1024;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    sg::testing::FakeSessionStore store;
    sg::testing::FakeServices services(config);
    services.set_store(&store);
    sg::ExchangePool pool(&services, 1024);
    sg::ClientFacts facts;
    facts.peer_ip = "192.0.2.1";
    Transport transport;
    auto* conn = new sg::H2Connection(transport, &loop, services, pool, facts);
    std::string_view input = sg_fuzz::as_text(data + 2, size - 2);
    size_t cut = input.empty() ? 0 : data[1] % (input.size() + 1);
    size_t served = 0;
    conn->receive("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    for (std::string_view piece : {input.substr(0, cut), input.substr(cut)}) {
      conn->receive(piece.data(), piece.size());
      serve(services.upstreams_, options, served);
      uv_run(&loop, UV_RUN_NOWAIT);  // the deferred flush
      serve(services.upstreams_, options, served);
    }
    conn->release();
    uv_run(&loop, UV_RUN_DEFAULT);  // the connection's handles close, then it is deleted
    for (const auto& c : services.upstreams_.channels) {
      bool returned = false;
      for (const auto* r : services.upstreams_.returned)
        returned = returned || r == c.get();
      SG_FUZZ_CHECK(returned || c->closed);
    }
  }
  uv_loop_close(&loop);
  return 0;
}
