// The header fields of one HTTP/2 response, collected for H2Session::submit_response in buffers
// that are reused from one response to the next (no allocation per response once warm).
//
// Contract
// - A FieldSink (http/header_rewrite.h): client_response_fields and a local answer write into it
//   directly. Names are lowercased; connection-specific fields (RFC 9113 §8.2.2: Connection and
//   the fields it names, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, TE) are
//   dropped, those named by Connection when nv() builds the list.
// - Names and values are copied in at field(): the views passed in may die right after the call.
// - nv() returns nghttp2_nv entries pointing into this object's buffers, valid until the next
//   clear() or field(). nghttp2_submit_response copies names and values at submit time (the
//   NO_COPY flags are never set), so the buffers may be reused as soon as the submit returns.
// - One per H2Session, reused: clear() keeps the capacity.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/http/header_rewrite.h"

namespace sg {

class H2ResponseFields final : public FieldSink {
 public:
  void clear();
  void field(std::string_view name, std::string_view value) override;
  // ":status" first, then the fields kept, in order. `status` is 100..999.
  const std::vector<nghttp2_nv>& nv(int status);

 private:
  struct Entry {
    uint32_t name_at, name_len, value_at, value_len;
    bool connection;  // a Connection field: never sent, its tokens name fields to drop
  };
  std::string_view name_of(const Entry& e) const { return {bytes_.data() + e.name_at, e.name_len}; }
  std::string_view value_of(const Entry& e) const {
    return {bytes_.data() + e.value_at, e.value_len};
  }
  bool named_by_connection(std::string_view name) const;

  std::string bytes_;  // every name and value, back to back
  std::vector<Entry> entries_;
  std::vector<nghttp2_nv> nv_;
  char status_[3] = {'0', '0', '0'};
  bool has_connection_ = false;
};

}  // namespace sg
