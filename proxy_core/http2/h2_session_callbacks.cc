// nghttp2's callbacks of H2Session: request heads, bodies, stream ends and the flood counters.
//
// What nghttp2 1.52 (Debian 1.52.0-1+deb12u3) enforces by itself with HTTP messaging on (the
// default, which we keep), before our on_header sees a field, as a stream error (RST_STREAM
// PROTOCOL_ERROR) unless noted: pseudo-header order, duplicates, unknown pseudo-headers, missing
// :method/:scheme/:path (CONNECT: :authority only), :path form, neither :authority nor host,
// uppercase field names, connection-specific fields, te other than "trailers", invalid or
// conflicting content-length and a DATA total that does not match it; CONTINUATION beyond
// max_continuations (connection error); RST_STREAM beyond its own token bucket; unread SETTINGS
// and PING ACKs beyond max_outbound_ack (NGHTTP2_ERR_FLOODED). Field values with NUL/CR/LF or
// leading/trailing whitespace would be dropped silently: on_invalid_header turns them into a
// stream error. Not enforced by nghttp2: the header list size, :authority vs host, cookie
// crumbs, and the rate floods (resets, SETTINGS/PING/PRIORITY, empty DATA, small WINDOW_UPDATEs):
// those are ours.
#include <nghttp2/nghttp2.h>

#include <cstring>

#include "proxy_core/http2/h2_stream.h"

namespace sg {

struct H2Session::Callbacks {
  static H2Session& self(void* user_data) { return *static_cast<H2Session*>(user_data); }

  static int on_begin_headers(nghttp2_session* s, const nghttp2_frame* frame, void* user_data) {
    H2Session& h = self(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    std::unique_ptr<Stream> st = h.streams_.spare();  // a closed stream's, buffers kept
    if (st == nullptr) st = std::make_unique<Stream>(h.settings_);
    h.streams_.insert(frame->hd.stream_id, std::move(st));
    (void)s;
    return 0;
  }

  static int on_header(nghttp2_session* s, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                       void* user_data) {
    H2Session& h = self(user_data);
    Stream* st = h.find(frame->hd.stream_id);
    if (st == nullptr || st->delivered) return 0;  // trailers: not forwarded
    H2HeadVerdict before = st->builder.verdict();
    H2HeadVerdict v = st->builder.add({reinterpret_cast<const char*>(name), namelen},
                                      {reinterpret_cast<const char*>(value), valuelen});
    if (v == H2HeadVerdict::kMalformed && before != v) {
      ++h.stats_.malformed_requests;
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_PROTOCOL_ERROR);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;  // kTooLarge: the rest of the block is skipped, the stream answered 431 at its end
  }

  static int on_invalid_header(nghttp2_session* s, const nghttp2_frame* frame, const uint8_t*,
                               size_t, const uint8_t*, size_t, uint8_t, void* user_data) {
    ++self(user_data).stats_.malformed_requests;
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_PROTOCOL_ERROR);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }

  static void on_request_headers(H2Session& h, const nghttp2_frame* frame) {
    int32_t id = frame->hd.stream_id;
    Stream* st = h.find(id);
    if (st == nullptr) return;
    bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (st->delivered) {  // trailers (nghttp2 requires END_STREAM on them)
      if (end_stream && !st->request_ended) {
        st->request_ended = true;
        h.owner_.on_request_end(id);
      }
      return;
    }
    // Reused: the owner swaps it with its stream's previous head (h2_session.h), so a warm
    // connection builds request heads in buffers that served earlier requests.
    MessageHead& head = h.request_head_;
    switch (st->builder.finish(head)) {
      case H2HeadVerdict::kOk:
        break;
      case H2HeadVerdict::kMalformed:
        ++h.stats_.malformed_requests;
        nghttp2_submit_rst_stream(h.session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_PROTOCOL_ERROR);
        return;
      case H2HeadVerdict::kTooLarge:
        ++h.stats_.header_lists_too_large;
        h.answer_locally(id, 431);
        return;
      case H2HeadVerdict::kBadMethod:
        ++h.stats_.malformed_requests;
        h.answer_locally(id, 400);
        return;
    }
    st->delivered = true;
    st->request_ended = end_stream;
    ++h.stats_.streams;
    h.owner_.on_request_head(id, head, !end_stream);
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    H2Session& h = self(user_data);
    const H2Settings& cfg = h.settings_;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS:
        on_request_headers(h, frame);
        break;
      case NGHTTP2_DATA: {
        bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        if (frame->hd.length == 0 && !end_stream &&
            !h.count_flood(h.flood_count_[2], h.flood_window_start_[2],
                           cfg.max_empty_frames_per_window, h.stats_.goaway_empty_frame_flood))
          return 0;
        Stream* st = h.find(frame->hd.stream_id);
        if (end_stream && st != nullptr && st->delivered && !st->request_ended) {
          st->request_ended = true;
          h.owner_.on_request_end(frame->hd.stream_id);
        }
        break;
      }
      case NGHTTP2_RST_STREAM:
        ++h.stats_.peer_resets;
        if (Stream* st = h.find(frame->hd.stream_id)) st->peer_reset = true;
        h.count_flood(h.flood_count_[0], h.flood_window_start_[0], cfg.max_resets_per_window,
                      h.stats_.goaway_rapid_reset);
        break;
      case NGHTTP2_SETTINGS:
      case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) break;
        [[fallthrough]];
      case NGHTTP2_PRIORITY:
        h.count_flood(h.flood_count_[1], h.flood_window_start_[1],
                      cfg.max_control_frames_per_window, h.stats_.goaway_control_flood);
        break;
      case NGHTTP2_WINDOW_UPDATE:
        if (frame->window_update.window_size_increment <
            static_cast<int32_t>(cfg.small_window_update_bytes))
          h.count_flood(h.flood_count_[3], h.flood_window_start_[3],
                        cfg.max_control_frames_per_window, h.stats_.goaway_window_update_flood);
        break;
      default:
        break;
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* s, uint8_t, int32_t id, const uint8_t* data, size_t len,
                           void* user_data) {
    H2Session& h = self(user_data);
    Stream* st = h.find(id);
    if (st == nullptr || !st->delivered || st->request_ended) {
      nghttp2_session_consume(s, id, len);  // nobody takes these bytes: free the window now
      return 0;
    }
    st->unconsumed += len;
    h.owner_.on_request_body(id, {reinterpret_cast<const char*>(data), len});
    return 0;
  }

  static int on_stream_close(nghttp2_session* s, int32_t id, uint32_t error_code, void* user_data) {
    H2Session& h = self(user_data);
    std::unique_ptr<Stream> st = h.streams_.take(id);
    if (st == nullptr) return 0;
    // Bytes the owner will no longer consume still count against the connection window.
    if (st->unconsumed > 0) nghttp2_session_consume_connection(s, st->unconsumed);
    // MadeYouReset (CVE-2025-8671): a stream error the client provoked (DATA past its
    // Content-Length, a bad header...) costs us what its RST_STREAM would: count it the same.
    if (error_code != NGHTTP2_NO_ERROR && !st->peer_reset && !st->owner_reset)
      h.count_flood(h.flood_count_[0], h.flood_window_start_[0], h.settings_.max_resets_per_window,
                    h.stats_.goaway_rapid_reset);
    if (st->delivered) h.owner_.on_stream_closed(id, error_code);
    h.streams_.recycle(std::move(st));
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, int32_t id, uint8_t* buf, size_t length,
                           uint32_t* data_flags, nghttp2_data_source*, void* user_data) {
    H2Session& h = self(user_data);
    Stream* st = h.find(id);
    if (st == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = std::min(length, st->pending());
    if (n > 0) std::memcpy(buf, st->out.data() + st->out_offset, n);
    st->out_offset += n;
    if (st->pending() == 0) {
      st->out.clear();
      st->out_offset = 0;
    } else if (st->out_offset > st->out.size() / 2) {
      st->out.erase(0, st->out_offset);
      st->out_offset = 0;
    }
    if (st->paused && st->pending() <= h.settings_.response_buffer_bytes / 2) {
      st->paused = false;
      h.pending_resumes_.push_back(id);
    }
    if (st->pending() == 0 && st->body_ended) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    } else if (n == 0) {
      st->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
  }

  static void install(nghttp2_session_callbacks* cb) {
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_invalid_header_callback(cb, on_invalid_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  }
};

void install_h2_callbacks(nghttp2_session_callbacks* callbacks) {
  H2Session::Callbacks::install(callbacks);
}

ssize_t read_h2_body(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                     uint32_t* data_flags, nghttp2_data_source* source, void* user_data) {
  return H2Session::Callbacks::read_body(session, stream_id, buf, length, data_flags, source,
                                         user_data);
}

}  // namespace sg
