#include "tests/unit/http2/h2_test_support.h"

#include <cstring>

namespace sg::h2test {

void FakeOwner::on_request_head(int32_t id, MessageHead& head, bool has_body) {
  Request& r = requests[id];
  r.head = head;
  r.has_body = has_body;
  r.ended = !has_body;
  if (answer_on_end && !has_body) answer(id);
}

void FakeOwner::on_request_body(int32_t id, std::string_view data) {
  requests[id].body.append(data);
  if (consume_at_once) {
    session->consume(id, data.size());
  } else {
    held[id] += data.size();
    unconsumed += data.size();
  }
}

void FakeOwner::on_request_end(int32_t id) {
  requests[id].ended = true;
  if (answer_on_end) answer(id);
}

void FakeOwner::on_stream_closed(int32_t id, uint32_t code) {
  Request& r = requests[id];
  r.closed = true;
  r.close_code = code;
  unconsumed -= held[id];
  held.erase(id);
}

void FakeOwner::answer(int32_t id) {
  session->submit_response(id, 200, {{"Content-Type", "text/plain"}}, true);
  session->send_body(id, "ok");
  session->end_body(id);
}

void FakeOwner::consume_all() {
  for (auto& [id, n] : held) {
    session->consume(id, n);
    unconsumed -= n;
    n = 0;
  }
}

namespace {

H2Client& client_of(void* user_data) {
  return *static_cast<H2Client*>(user_data);
}

int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
              const uint8_t* value, size_t valuelen, uint8_t, void* user_data) {
  H2Client::Response& r = client_of(user_data).responses[frame->hd.stream_id];
  std::string n(reinterpret_cast<const char*>(name), namelen);
  std::string v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":status") r.status = std::stoi(v);
  r.headers.emplace_back(std::move(n), std::move(v));
  return 0;
}

int on_data(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
            void* user_data) {
  client_of(user_data).responses[id].body.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int on_close(nghttp2_session*, int32_t id, uint32_t code, void* user_data) {
  H2Client::Response& r = client_of(user_data).responses[id];
  r.closed = true;
  r.close_code = code;
  return 0;
}

int on_frame(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    client_of(user_data).goaway = true;
    client_of(user_data).goaway_code = frame->goaway.error_code;
  }
  return 0;
}

ssize_t read_body(nghttp2_session*, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                  nghttp2_data_source* source, void* user_data) {
  std::string& body = client_of(user_data).bodies[id];
  size_t& offset = *static_cast<size_t*>(source->ptr);
  size_t n = std::min(length, body.size() - offset);
  std::memcpy(buf, body.data() + offset, n);
  offset += n;
  if (offset == body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

}  // namespace

H2Client::H2Client(bool auto_window_update, uint32_t initial_window) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, auto_window_update ? 0 : 1);
  nghttp2_session_client_new2(&session_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  nghttp2_settings_entry entry{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, initial_window};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, &entry, 1);
}

H2Client::~H2Client() {
  nghttp2_session_del(session_);
}

int32_t H2Client::request(const Fields& fields, const std::string* body) {
  std::vector<nghttp2_nv> nva;
  for (const auto& [n, v] : fields) {
    nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                   reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                   NGHTTP2_NV_FLAG_NONE});
  }
  if (body == nullptr)
    return nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), nullptr, nullptr);
  body_offsets_.push_back(std::make_unique<size_t>(0));
  nghttp2_data_provider provider{};
  provider.source.ptr = body_offsets_.back().get();
  provider.read_callback = read_body;
  int32_t id =
      nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &provider, nullptr);
  bodies[id] = *body;
  return id;
}

void H2Client::pump(H2Session& server, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    bool moved = false;
    const uint8_t* data = nullptr;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(session_, &data)) > 0) {
      moved = true;
      server.receive({reinterpret_cast<const char*>(data), static_cast<size_t>(n)});
    }
    std::string out;
    if (server.produce(out) > 0) {
      moved = true;
      nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(out.data()), out.size());
    }
    if (!moved) return;
  }
}

std::string raw_frame(uint8_t type, uint8_t flags, int32_t stream_id, const std::string& payload) {
  std::string f;
  size_t len = payload.size();
  f += static_cast<char>((len >> 16) & 0xff);
  f += static_cast<char>((len >> 8) & 0xff);
  f += static_cast<char>(len & 0xff);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  for (int shift = 24; shift >= 0; shift -= 8)
    f += static_cast<char>((static_cast<uint32_t>(stream_id) >> shift) & 0xff);
  return f + payload;
}

std::string raw_preface() {
  return std::string(NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN) +
         raw_frame(NGHTTP2_SETTINGS, 0, 0, "");
}

std::string raw_header_block(const Fields& fields) {
  // Literal field without indexing, new name (RFC 7541 §6.2.2), lengths under 127.
  std::string block;
  for (const auto& [n, v] : fields) {
    block += '\0';
    block += static_cast<char>(n.size());
    block += n;
    block += static_cast<char>(v.size());
    block += v;
  }
  return block;
}

std::string raw_headers(int32_t stream_id, const Fields& fields, bool end_stream) {
  uint8_t flags = NGHTTP2_FLAG_END_HEADERS | (end_stream ? NGHTTP2_FLAG_END_STREAM : 0);
  return raw_frame(NGHTTP2_HEADERS, flags, stream_id, raw_header_block(fields));
}

ServerFrames parse_server_output(const std::string& bytes) {
  ServerFrames out;
  nghttp2_hd_inflater* inflater = nullptr;
  nghttp2_hd_inflate_new(&inflater);
  size_t pos = 0;
  auto u32 = [&](size_t at) {
    return (static_cast<uint32_t>(static_cast<uint8_t>(bytes[at])) << 24) |
           (static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 1])) << 16) |
           (static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 2])) << 8) |
           static_cast<uint8_t>(bytes[at + 3]);
  };
  while (pos + 9 <= bytes.size()) {
    size_t len = (u32(pos) >> 8);
    uint8_t type = static_cast<uint8_t>(bytes[pos + 3]);
    int32_t id = static_cast<int32_t>(u32(pos + 5) & 0x7fffffff);
    size_t payload = pos + 9;
    if (payload + len > bytes.size()) break;
    if (type == NGHTTP2_GOAWAY) {
      out.goaway = true;
      out.goaway_code = u32(payload + 4);
    } else if (type == NGHTTP2_RST_STREAM) {
      out.resets[id] = u32(payload);
    } else if (type == NGHTTP2_DATA) {
      out.data_bytes += len;
    } else if (type == NGHTTP2_HEADERS) {
      const uint8_t* in = reinterpret_cast<const uint8_t*>(bytes.data()) + payload;
      size_t left = len;
      for (;;) {
        nghttp2_nv nv;
        int flags = 0;
        ssize_t used = nghttp2_hd_inflate_hd2(inflater, &nv, &flags, in, left, 1);
        if (used < 0) break;
        in += used;
        left -= static_cast<size_t>(used);
        if (flags & NGHTTP2_HD_INFLATE_EMIT) {
          std::string name(reinterpret_cast<char*>(nv.name), nv.namelen);
          if (name == ":status")
            out.statuses[id] =
                std::stoi(std::string(reinterpret_cast<char*>(nv.value), nv.valuelen));
        }
        if (flags & NGHTTP2_HD_INFLATE_FINAL) {
          nghttp2_hd_inflate_end_headers(inflater);
          break;
        }
        if (used == 0 && left == 0) break;
      }
    }
    pos = payload + len;
  }
  nghttp2_hd_inflate_del(inflater);
  return out;
}

Fields get_request(const std::string& path) {
  return {{":method", "GET"}, {":scheme", "https"}, {":authority", "example.com"}, {":path", path}};
}

}  // namespace sg::h2test
