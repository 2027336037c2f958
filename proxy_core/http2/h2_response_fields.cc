#include "proxy_core/http2/h2_response_fields.h"

#include "proxy_core/base/ascii.h"
#include "proxy_core/http2/h2_request_head.h"

namespace sg {

namespace {

uint8_t* bytes_at(const std::string& s, uint32_t at) {
  return reinterpret_cast<uint8_t*>(const_cast<char*>(s.data()) + at);
}

}  // namespace

void H2ResponseFields::clear() {
  bytes_.clear();
  entries_.clear();
  has_connection_ = false;
}

void H2ResponseFields::field(std::string_view name, std::string_view value) {
  bool connection = iequals(name, "connection");
  if (!connection && (is_connection_specific_field(name) || iequals(name, "te"))) return;
  has_connection_ = has_connection_ || connection;
  Entry e{static_cast<uint32_t>(bytes_.size()), static_cast<uint32_t>(name.size()), 0,
          static_cast<uint32_t>(value.size()), connection};
  bytes_.append(name);
  // HTTP/2 field names are lowercase (RFC 9113 §8.2.1); ours come from an HTTP/1.1 head.
  for (char* c = bytes_.data() + e.name_at; c != bytes_.data() + bytes_.size(); ++c)
    *c = ascii_lower(*c);
  e.value_at = static_cast<uint32_t>(bytes_.size());
  bytes_.append(value);
  entries_.push_back(e);
}

bool H2ResponseFields::named_by_connection(std::string_view name) const {
  for (const Entry& e : entries_)
    if (e.connection && list_contains_token(value_of(e), name)) return true;
  return false;
}

const std::vector<nghttp2_nv>& H2ResponseFields::nv(int status) {
  status_[0] = static_cast<char>('0' + status / 100 % 10);
  status_[1] = static_cast<char>('0' + status / 10 % 10);
  status_[2] = static_cast<char>('0' + status % 10);
  nv_.clear();
  // The pointers are taken now that bytes_ no longer grows.
  nv_.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(":status")),
                 reinterpret_cast<uint8_t*>(status_), 7, 3, NGHTTP2_NV_FLAG_NONE});
  for (const Entry& e : entries_) {
    if (e.connection) continue;
    if (has_connection_ && named_by_connection(name_of(e))) continue;
    nv_.push_back({bytes_at(bytes_, e.name_at), bytes_at(bytes_, e.value_at), e.name_len,
                   e.value_len, NGHTTP2_NV_FLAG_NONE});
  }
  return nv_;
}

}  // namespace sg
