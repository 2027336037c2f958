#include "proxy_core/http/http_message.h"

namespace sg {

void MessageHead::clear() {
  method.clear();
  method_id = 0;
  target.clear();
  status = 0;
  reason.clear();
  version_major = version_minor = 1;
  http2 = false;
  header_count = 0;
  chunked = has_content_length = has_transfer_encoding = upgrade = false;
  content_length = 0;
  keep_alive = true;
}

const HeaderField* MessageHead::find(std::string_view name) const {
  for (size_t i = 0; i < header_count; ++i)
    if (iequals(headers[i].name, name)) return &headers[i];
  return nullptr;
}

size_t MessageHead::count(std::string_view name) const {
  size_t n = 0;
  for (size_t i = 0; i < header_count; ++i)
    if (iequals(headers[i].name, name)) ++n;
  return n;
}

bool list_contains_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = trim_ows(list.substr(0, comma));
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

TransferCodings transfer_codings(const MessageHead& head) {
  for (size_t i = 0; i < head.header_count; ++i) {
    if (!iequals(head.headers[i].name, "transfer-encoding")) continue;
    std::string_view list = head.headers[i].value;
    bool any = false;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view coding = trim_ows(list.substr(0, comma));
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      if (coding.empty()) continue;
      if (!iequals(coding, "chunked")) return TransferCodings::kOther;
      any = true;
    }
    if (!any) return TransferCodings::kEmpty;
  }
  return TransferCodings::kChunkedOnly;
}

}  // namespace sg
