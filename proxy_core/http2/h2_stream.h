// Per-stream state of an H2Session (internal to proxy_core/http2).
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>

#include "proxy_core/http2/h2_request_head.h"
#include "proxy_core/http2/h2_session.h"

namespace sg {

struct H2Session::Stream {
  explicit Stream(const H2Settings& s) : builder(s.max_header_list_bytes, s.max_header_fields) {}

  size_t pending() const { return out.size() - out_offset; }
  // For the next stream (H2StreamTable::recycle): as constructed, buffers kept unless large.
  void reset() {
    builder.reset();
    delivered = request_ended = false;
    unconsumed = 0;
    out.clear();
    // A spare holds no body buffer beyond a small response's: up to 16 spares per connection.
    if (out.capacity() > 4096) std::string().swap(out);
    out_offset = 0;
    response_submitted = body_ended = deferred = paused = false;
    peer_reset = owner_reset = false;
  }

  H2RequestHeadBuilder builder;
  bool delivered = false;  // on_request_head was called: on_stream_closed is owed
  bool request_ended = false;
  uint64_t unconsumed = 0;  // request body bytes delivered and not yet consumed by the owner
  // Response body, framed by the data provider from out_offset on.
  std::string out;
  size_t out_offset = 0;
  bool response_submitted = false;
  bool body_ended = false;
  bool deferred = false;  // the data provider returned NGHTTP2_ERR_DEFERRED
  bool paused = false;    // the owner was told to pause its source
  // Who asked for a reset: a stream the server resets for neither (the client broke a rule on
  // it) counts against max_resets_per_window like the client's own RST_STREAM (MadeYouReset).
  bool peer_reset = false;
  bool owner_reset = false;
};

// h2_session_callbacks.cc
void install_h2_callbacks(nghttp2_session_callbacks* callbacks);
ssize_t read_h2_body(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                     uint32_t* data_flags, nghttp2_data_source* source, void* user_data);

}  // namespace sg
