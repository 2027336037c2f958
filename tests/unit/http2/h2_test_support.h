// Test harness for proxy_core/http2: an H2Session driven in memory, with no socket, by either an
// nghttp2 client session (H2Client) or hand-written frames (raw_* helpers, for the attacks), and a
// fake owner that records every event and answers as the test tells it.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "proxy_core/http2/h2_session.h"

namespace sg::h2test {

using Fields = std::vector<std::pair<std::string, std::string>>;

// Records the session's events. By default it consumes request bodies at once and answers
// nothing: tests call session->submit_response themselves or set answer_on_end.
struct FakeOwner : H2SessionOwner {
  struct Request {
    MessageHead head;
    bool has_body = false;
    std::string body;
    bool ended = false;
    bool closed = false;
    uint32_t close_code = 0;
  };
  H2Session* session = nullptr;
  std::map<int32_t, Request> requests;
  std::vector<int32_t> paused, resumed;
  bool consume_at_once = true;
  bool answer_on_end = false;  // 200 "ok" once the request is complete
  size_t unconsumed = 0;

  void on_request_head(int32_t id, MessageHead& head, bool has_body) override;
  void on_request_body(int32_t id, std::string_view data) override;
  void on_request_end(int32_t id) override;
  void on_response_pause(int32_t id) override { paused.push_back(id); }
  void on_response_resume(int32_t id) override { resumed.push_back(id); }
  void on_stream_closed(int32_t id, uint32_t code) override;
  void answer(int32_t id);
  // Consumes what each stream holds.
  void consume_all();
  std::map<int32_t, size_t> held;
};

// An nghttp2 client session wired to an H2Session through strings.
class H2Client {
 public:
  struct Response {
    int status = 0;
    Fields headers;
    std::string body;
    bool closed = false;
    uint32_t close_code = 0;
  };
  // auto_window_update false: the client consumes response bytes only when told (slow client).
  explicit H2Client(bool auto_window_update = true, uint32_t initial_window = 65535);
  ~H2Client();
  int32_t request(const Fields& fields, const std::string* body = nullptr);
  // Moves bytes both ways until nothing moves (or `rounds` passes).
  void pump(H2Session& server, int rounds = 1000);
  void consume(int32_t id, size_t n) { nghttp2_session_consume(session_, id, n); }
  nghttp2_session* raw() { return session_; }

  std::map<int32_t, Response> responses;
  bool goaway = false;
  uint32_t goaway_code = 0;
  std::map<int32_t, std::string> bodies;  // request bodies being sent

 private:
  nghttp2_session* session_ = nullptr;
  std::vector<std::unique_ptr<size_t>> body_offsets_;  // read positions of request bodies
};

// Frames by hand (RFC 9113 §4.1).
std::string raw_frame(uint8_t type, uint8_t flags, int32_t stream_id, const std::string& payload);
std::string raw_preface();                           // client magic + empty SETTINGS
std::string raw_header_block(const Fields& fields);  // HPACK, no indexing
std::string raw_headers(int32_t stream_id, const Fields& fields, bool end_stream);

// What the server wrote, decoded frame by frame.
struct ServerFrames {
  bool goaway = false;
  uint32_t goaway_code = 0;
  std::map<int32_t, uint32_t> resets;  // stream -> RST_STREAM code
  std::map<int32_t, int> statuses;     // stream -> :status of its HEADERS
  size_t data_bytes = 0;
};
ServerFrames parse_server_output(const std::string& bytes);

// The usual GET.
Fields get_request(const std::string& path = "/");

}  // namespace sg::h2test
