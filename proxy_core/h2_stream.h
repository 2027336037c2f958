// H2Stream: one HTTP/2 stream as the client side (Downstream, downstream.h) of one Exchange.
// It turns the exchange's semantic calls into codec calls on its H2Connection's session
// (submit_response, send_body, end_body, reset_stream) and feeds the exchange the request's head,
// body and end as the codec reports them.
//
// Contract
// - Owned by its H2Connection, keyed by stream id, from the request head until the codec closes
//   the stream (or the connection goes); then kept as a spare (reset()) for a later stream. Its
//   Exchange is borrowed from the pool at start() and given back at finish() or when the stream
//   closes first (downstream_closed, then release).
// - The request head lives here (head_) while the exchange runs, as exchange.h requires.
// - Request body: held (not consumed, so it holds the stream's window) until the exchange asks
//   for it (deliver_request_body); then handed over and consumed as soon as the exchange's
//   upstream can take more (wants_request_body), else when request_flow_changed says so.
// - No write happens inside these calls (h2_connection.h): frames go out on the next flush.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy_core/downstream.h"
#include "proxy_core/exchange.h"
#include "proxy_core/http/http_message.h"

namespace sg {

class H2Connection;

class H2Stream final : public Downstream {
 public:
  explicit H2Stream(H2Connection& connection) : conn_(connection) {}
  ~H2Stream();

  // From the codec, through H2Connection. start takes the head (swapped with `head`, which gets
  // this object's previous head back: its buffers serve the next request).
  void start(int32_t id, MessageHead& head, bool has_body);
  void on_body(std::string_view data);
  void on_end();
  void on_pause();
  void on_resume();
  // The codec closed the stream, or the connection goes: an exchange still running is told that
  // its client went away and given back.
  void closed();
  // After closed(), for a next stream (H2StreamTable::recycle): the head's buffers are kept.
  void reset();

  // Downstream.
  const ClientFacts& client() const override;
  bool draining() const override;
  void start_response(const ResponseHead& head) override;
  void send_body(const char* data, size_t len, bool stable) override;
  void end_response() override;
  void send_local(const LocalResponse& response) override;
  void send_continue() override {}  // HTTP/2 clients send the body without waiting for 100
  void abort() override;
  void cancel() override;  // RST_STREAM(CANCEL) on this stream only
  void deliver_request_body() override;
  void request_flow_changed() override;
  void set_client_timer(ClientTimer timer) override;
  void touch_client_timer() override;
  void cork() override {}  // every write waits for the connection's flush anyway
  void uncork() override {}
  void finish(bool keep_alive) override;
  void start_tunnel() override { abort(); }  // never asked: client().can_tunnel is false

 private:
  void give_back();
  void consume_if_upstream_ready();
  void hand_over(std::string_view data);

  H2Connection& conn_;
  int32_t id_ = 0;
  Exchange* ex_ = nullptr;
  MessageHead head_;
  std::string held_;       // request body received before deliver_request_body
  size_t unconsumed_ = 0;  // handed to the exchange, window not yet given back
  ClientTimer timer_ = ClientTimer::kNone;
  bool delivering_ = false;     // deliver_request_body was called
  bool request_ended_ = false;  // the codec saw the request's end
  bool end_told_ = false;       // the exchange was told (on_request_end)
};

}  // namespace sg
