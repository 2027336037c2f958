// H2Connection: the HTTP/2 side of one client connection. It owns the codec (http2/h2_session.h),
// implements its H2SessionOwner contract, and runs each stream as an Exchange (exchange.h) whose
// client side is that stream's H2Stream (h2_stream.h, a Downstream): the session gate, policy,
// upstream request, directives and access log are the exchange's, exactly as on HTTP/1.1.
//
// Contract
// - Threading: the worker's loop thread only.
// - Ownership: the transport (ClientConnection: socket, TLS, writes) creates it with `new` once
//   the protocol is known (ALPN "h2", or the h2c preface on a listener with http2_cleartext) and
//   gives it up with release(): from then on it touches no transport, tells every exchange still
//   running that its client went away, closes its own libuv handles and deletes itself. It
//   owns its H2Streams; each stream borrows one Exchange from the worker's ExchangePool.
// - Writes never happen inside a Downstream call: stream calls queue frames in the codec and
//   schedule a flush (a uv_check handle) that runs after the I/O callbacks of this loop turn,
//   outside any exchange call. So on_stream_closed (which deletes the stream and gives its exchange
//   back) only runs from receive() and the flush, never under an exchange's own stack.
// - Flow control: request body bytes are consume()d once the exchange has written them upstream
//   and the upstream's write queue is under its high water (Exchange::wants_request_body), so a
//   slow application holds at most http2.stream_window_bytes per stream. The codec's
//   on_response_pause/resume stop and restart reading the stream's upstream.
// - Timers: with no stream open, the connection ends (GOAWAY) after limits.client_idle_timeout;
//   while a stream waits for the client (its body) or the response waits for the client's
//   window (zero-window stall), the client must make progress within the same timeout.
// - Drain: drain() sends GOAWAY; open streams finish, then the connection closes.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/downstream.h"
#include "proxy_core/exchange.h"
#include "proxy_core/http2/h2_session.h"
#include "proxy_core/http2/h2_stream_table.h"
#include "proxy_core/net/lazy_deadline.h"

namespace sg {

class H2Stream;

// What the HTTP/2 connection needs of the client transport.
class H2Transport {
 public:
  // Queues bytes for the client (encrypted with TLS). False: the transport failed and closes
  // (it calls H2Connection::release()).
  virtual bool h2_write(std::string_view bytes) = 0;
  virtual size_t h2_write_queued() const = 0;  // bytes written and not yet sent
  virtual void h2_set_reading(bool on) = 0;
  // The session is over (everything said, GOAWAY flushed): close after what is queued.
  virtual void h2_finished() = 0;

 protected:
  ~H2Transport() = default;
};

class H2Connection final : public H2SessionOwner {
 public:
  // `facts`: the client as every stream reports it (can_tunnel is forced off: no WebSocket over
  // HTTP/2, SETTINGS_ENABLE_CONNECT_PROTOCOL is never sent).
  H2Connection(H2Transport& transport, uv_loop_t* loop, ExchangeServices& services,
               ExchangePool& pool, const ClientFacts& facts);

  // Plaintext bytes from the client.
  void receive(const char* data, size_t len);
  // The transport's write queue went under its low water mark: produce more.
  void on_write_drained();
  // Graceful: GOAWAY, open streams finish, then h2_finished().
  void drain();
  // The transport closes (client gone, drain deadline, error): see the contract above.
  void release();

  // For H2Stream.
  H2Session& session() { return session_; }
  ExchangeServices& services() { return services_; }
  ExchangePool& pool() { return pool_; }
  const ClientFacts& facts() const { return facts_; }
  bool draining() const { return draining_; }
  void schedule_flush();
  void stream_timer_changed(ClientTimer before, ClientTimer after);
  void touch() { last_progress_ = uv_now(loop_); }

 private:
  ~H2Connection() override;

  // H2SessionOwner.
  void on_request_head(int32_t stream_id, MessageHead& head, bool has_body) override;
  void on_request_body(int32_t stream_id, std::string_view data) override;
  void on_request_end(int32_t stream_id) override;
  void on_response_pause(int32_t stream_id) override;
  void on_response_resume(int32_t stream_id) override;
  void on_stream_closed(int32_t stream_id, uint32_t error_code) override;

  H2Stream* find(int32_t stream_id);
  void flush();
  void after_io();
  void update_timer();
  void teardown_streams();
  static void on_flush(uv_check_t* check);
  static void on_timer(uv_timer_t* timer);
  static void destroy(H2Connection* c);  // the last handle closed

  H2Transport* transport_;  // null once released
  uv_loop_t* loop_;
  ExchangeServices& services_;
  ExchangePool& pool_;
  ClientFacts facts_;
  H2Session session_;
  H2Stats reported_;                 // what report_h2_stats already added to the worker's metrics
  H2StreamTable<H2Stream> streams_;  // open streams, and spares for the next ones
  std::string out_;                  // frames produced, handed to the transport
  // The flush runs in the check phase, right after the I/O callbacks of the same loop turn; the
  // idle handle only keeps that turn's poll from blocking when it was scheduled before the poll.
  uv_check_t flush_check_;
  uv_idle_t flush_idle_;
  uv_timer_t timer_;
  LazyDeadline deadline_;
  int handles_open_ = 3;
  int activity_streams_ = 0;    // streams whose exchange waits for the client (ClientTimer)
  uint64_t last_progress_ = 0;  // loop time of the client's last bytes
  uint64_t stalled_since_ = 0;  // loop time the response started waiting on the peer's window
  bool flush_scheduled_ = false;
  bool draining_ = false;
  bool finished_ = false;  // h2_finished() was called
};

}  // namespace sg
