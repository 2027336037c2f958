// A parsed HTTP/1.x message head: what llhttp saw, copied out of the read buffers so that it
// outlives them. The strings keep their capacity across clear(), so a keep-alive connection does
// not reallocate for every request.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/base/ascii.h"  // iequals, used with every header name

namespace sg {

struct HeaderField {
  std::string name;
  std::string value;
};

struct MessageHead {
  // Request line (requests only).
  std::string method;
  int method_id = 0;  // llhttp_method_t
  std::string target;
  // Status line (responses only).
  int status = 0;
  std::string reason;

  int version_major = 1;
  int version_minor = 1;
  bool http2 = false;  // built by the HTTP/2 codec (version 2.0), never by llhttp
  std::vector<HeaderField> headers;
  size_t header_count = 0;  // valid entries in `headers` (the vector is reused, not shrunk)

  // Framing, from llhttp's flags at the end of the head.
  bool chunked = false;
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool has_transfer_encoding = false;
  bool keep_alive = true;  // llhttp_should_keep_alive
  bool upgrade = false;    // llhttp saw Connection: upgrade + Upgrade (or CONNECT)

  void clear();
  // The first header named `name` (ASCII case-insensitive), or nullptr.
  const HeaderField* find(std::string_view name) const;
  size_t count(std::string_view name) const;
  bool is_http11() const { return version_major == 1 && version_minor == 1; }
};

// RFC 9110 §5.6.1 list element: does the comma-separated `list` contain `token` (case-insensitive)?
bool list_contains_token(std::string_view list, std::string_view token);
// Without the optional whitespace (SP, HTAB) around it. Inline: called for most field values of
// every message, which mostly have none (one test each end, no call).
inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// RFC 9112 §6.1: what the Transfer-Encoding fields of `head` ask for, as far as we implement it.
// We decode only chunked and re-frame bodies, so any other coding would be silently dropped.
enum class TransferCodings {
  kChunkedOnly,  // no field, or every listed coding is "chunked"
  kEmpty,        // a field that lists no coding at all
  kOther,        // some coding other than chunked
};
TransferCodings transfer_codings(const MessageHead& head);

}  // namespace sg
