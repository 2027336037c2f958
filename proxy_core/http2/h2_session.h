// The server side of one HTTP/2 connection, as a codec: bytes in, events and bytes out. No socket,
// no libuv, no TLS: the connection that owns it reads, writes and runs the timers. nghttp2 does the
// framing, HPACK and flow-control bookkeeping; this class adds request validation (RFC 9113 §8,
// h2_request_head.h), response header translation, bounded response buffers with backpressure,
// request-side flow control driven by the owner, and the flood defences of H2Settings.
//
// Contract
// - Threading: one event loop thread. Every method and every owner callback runs on it. Owner
//   callbacks run synchronously inside receive() or produce(); from a callback the owner may call
//   any method of this session (submit_response, send_body, reset_stream, consume...), but must not
//   destroy the session.
// - Ownership: the connection owns the H2Session and implements H2SessionOwner (it outlives the
//   session). The session owns its per-stream state (request head builder, response buffer),
//   keyed by stream id and reused from one stream to the next (h2_stream_table.h); the owner
//   keeps its own per-stream object (the exchange with upstream), keyed by the same id.
// - Stream lifetime, from the owner's point of view: a stream begins with on_request_head and
//   ends with on_stream_closed, called exactly once for every stream that had on_request_head,
//   whatever the cause (response complete, reset by either side, connection torn down in the
//   destructor excepted: the owner tears down its own streams with the connection). After
//   on_stream_closed, calls naming that id are ignored (they return false). Streams that fail
//   validation are answered or reset here and never reach the owner.
// - Events, and what the owner must do:
//   on_request_head(id, head, has_body): a validated HTTP/2 head (version 2.0); the owner may
//     swap it out (and should: with a head it no longer needs, whose buffers are reused). Run it
//     through the same path as an HTTP/1.1 request (validate_request, session gate...), then answer
//     with submit_response (or reset_stream). If has_body, body events follow.
//   on_request_body(id, data): `data` is valid during the call only: copy or forward it. Call
//     consume(id, n) once those n bytes have left (written upstream): until then they hold the
//     stream's receive window, so a slow upstream stalls this stream at stream_window_bytes.
//   on_request_end(id): the request body is complete (Content-Length, when sent, matched).
//   on_response_pause(id) / on_response_resume(id): the stream's response buffer went above the
//     high-water mark (stop reading the source, e.g. the upstream socket) / drained below half of
//     it (read again). A source that ignores the pause grows the buffer: bounded by the owner.
//   on_stream_closed(id, error_code): forget the stream. error_code is 0 (NO_ERROR) when the
//     response went out completely, else the RST_STREAM code (from the peer or from us).
// - Driving it: feed every byte read to receive(); after receive() and after any submit/send
//   call, call produce() and write its bytes. wants_read() false: stop reading. done(): nothing
//   more to read or write, close the socket (after GOAWAY, once produce() returned everything).
//   blocked_on_peer_window(): response bytes are waiting for the peer's WINDOW_UPDATE and nothing
//   else is to be written; the connection arms a timeout while it stays true (zero-window stall).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/http/http_message.h"
#include "proxy_core/http2/h2_response_fields.h"
#include "proxy_core/http2/h2_settings.h"
#include "proxy_core/http2/h2_stream_table.h"

struct nghttp2_session;

namespace sg {

// h2c with prior knowledge (RFC 9113 §3.3; server.http2_cleartext): do the first bytes of a plain
// connection start the HTTP/2 client preface? kNeedMore while they are a strict prefix of it. A
// request line never matches ("PRI * HTTP/2.0" is refused by llhttp), so kNo means HTTP/1.1.
enum class H2Preface { kYes, kNo, kNeedMore };
H2Preface match_h2_preface(std::string_view received);

class H2SessionOwner {
 public:
  virtual ~H2SessionOwner() = default;
  virtual void on_request_head(int32_t stream_id, MessageHead& head, bool has_body) = 0;
  virtual void on_request_body(int32_t stream_id, std::string_view data) = 0;
  virtual void on_request_end(int32_t stream_id) = 0;
  virtual void on_response_pause(int32_t stream_id) = 0;
  virtual void on_response_resume(int32_t stream_id) = 0;
  virtual void on_stream_closed(int32_t stream_id, uint32_t error_code) = 0;
};

// RFC 9113 §7 error codes used by the session (the numbers are the protocol's).
enum H2ErrorCode : uint32_t {
  kH2NoError = 0x0,
  kH2ProtocolError = 0x1,
  kH2InternalError = 0x2,
  kH2FlowControlError = 0x3,
  kH2RefusedStream = 0x7,
  kH2Cancel = 0x8,
  kH2EnhanceYourCalm = 0xb,
};

class H2Session {
 public:
  using Clock = std::function<uint64_t()>;  // milliseconds, monotonic
  // Queues the server preface (SETTINGS, connection WINDOW_UPDATE): call produce() next.
  H2Session(H2SessionOwner& owner, const H2Settings& settings, Clock clock = {});
  ~H2Session();
  H2Session(const H2Session&) = delete;
  H2Session& operator=(const H2Session&) = delete;

  // Bytes from the client. False: the connection is broken (bad preface, flood, protocol error);
  // a GOAWAY is queued when possible: produce(), write, then close.
  bool receive(std::string_view bytes);
  // Appends frames to send to `out`, at least one frame and about max_bytes at most when there
  // is output. Returns the number of bytes appended.
  size_t produce(std::string& out, size_t max_bytes = 64 * 1024);
  // The last produce() took everything nghttp2 had to send (it did not stop at max_bytes, and no
  // stream resumed meanwhile): no need to ask again before the next event.
  bool produced_all() const { return produced_all_; }

  // Response side. Header names are lowercased; connection-specific fields (Connection and the
  // fields it names, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, TE) are dropped.
  // has_body false: the HEADERS frame ends the stream.
  bool submit_response(int32_t stream_id, int status, const std::vector<HeaderField>& headers,
                       bool has_body);
  // The same from fields collected in response_fields() (or any H2ResponseFields): no copy of
  // the fields on our side, nghttp2 copies them once. The fields may be reused after the call.
  bool submit_response(int32_t stream_id, int status, H2ResponseFields& fields, bool has_body);
  // A reused collector for the next submit_response (call clear() first).
  H2ResponseFields& response_fields() { return response_fields_; }
  // Copies `data` into the stream's buffer (the view may die after the call). Returns false for
  // an unknown stream. Calls on_response_pause once the buffer is over the high-water mark.
  bool send_body(int32_t stream_id, std::string_view data);
  bool end_body(int32_t stream_id);
  bool reset_stream(int32_t stream_id, uint32_t error_code);
  // The owner took `bytes` of the stream's request body: they may be sent again (WINDOW_UPDATE).
  void consume(int32_t stream_id, size_t bytes);
  // GOAWAY NO_ERROR: no new streams, open ones finish.
  void shutdown_gracefully();
  // GOAWAY with `error_code`, then done() once flushed.
  void terminate(uint32_t error_code);

  bool wants_read() const;
  bool wants_write() const;
  bool done() const { return !wants_read() && !wants_write(); }
  bool blocked_on_peer_window() const;
  // Bytes buffered for the stream's response body, not yet framed (for tests and metrics).
  size_t buffered(int32_t stream_id) const;
  const H2Stats& stats() const { return stats_; }

  struct Stream;
  struct Callbacks;  // nghttp2's C callbacks (h2_session_callbacks.cc)

 private:
  friend struct Callbacks;
  Stream* find(int32_t stream_id) const;
  bool count_flood(uint32_t& count, uint64_t& window_start, uint32_t limit, uint64_t& stat);
  void answer_locally(int32_t stream_id, int status);
  void flush_resumes();

  H2SessionOwner& owner_;
  H2Settings settings_;
  Clock clock_;
  nghttp2_session* session_ = nullptr;
  H2StreamTable<Stream> streams_;
  std::vector<int32_t> pending_resumes_;  // found inside nghttp2's send loop, told after it
  H2ResponseFields response_fields_;
  MessageHead request_head_;  // handed to on_request_head, buffers reused
  H2Stats stats_;
  // The connection is over (fatal error, flood, terminate()): nothing more is read or answered,
  // the queued GOAWAY is flushed.
  bool broken_ = false;
  bool produced_all_ = true;
  // Flood counters: resets, control frames, empty DATA frames, small WINDOW_UPDATEs.
  uint64_t flood_window_start_[4] = {0, 0, 0, 0};
  uint32_t flood_count_[4] = {0, 0, 0, 0};
};

}  // namespace sg
