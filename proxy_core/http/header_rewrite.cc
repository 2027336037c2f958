#include "proxy_core/http/header_rewrite.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>

#include "proxy_core/base/ascii.h"
#include "proxy_core/http/request_validation.h"
#include "proxy_core/http/set_cookie.h"

namespace sg {

namespace {

char fold(char c) {
  return c == '_' ? '-' : ascii_lower(c);
}

// Appends a head to a string through a cursor: one room check per field, ": " and CRLF as two
// stores, the name and value one memcpy each. Four std::string::append calls per field (each a
// length check, a capacity check, a memcpy call and a terminator) cost ~125 instructions; this
// ~50, on the two heads of every proxied request. The string is grown (zero-filled: C++20 has no
// resize_and_overwrite) a block at a time ahead of the cursor, and cut to it by finish().
class HeadWriter {
 public:
  explicit HeadWriter(std::string& out) : out_(out), used_(out.size()) { grow(kBlock); }
  HeadWriter(const HeadWriter&) = delete;
  HeadWriter& operator=(const HeadWriter&) = delete;
  ~HeadWriter() { finish(); }

  void text(std::string_view s) {
    room(s.size());
    copy(s);
  }
  void text(char c) {
    room(1);
    *p_++ = c;
  }
  void field(std::string_view name, std::string_view value) {
    room(name.size() + value.size() + 4);
    copy(name);
    p_[0] = ':';
    p_[1] = ' ';
    p_ += 2;
    copy(value);
    p_[0] = '\r';
    p_[1] = '\n';
    p_ += 2;
  }
  void number(uint64_t n) {
    room(20);
    p_ = std::to_chars(p_, p_ + 20, n).ptr;
  }
  // Cuts the string to what was written (idempotent; the destructor calls it).
  void finish() {
    if (p_ == nullptr) return;
    out_.resize(static_cast<size_t>(p_ - out_.data()));
    p_ = end_ = nullptr;
  }

 private:
  static constexpr size_t kBlock = 512;  // most heads fit in one
  void room(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) grow(n);
  }
  void grow(size_t n) {
    if (p_ != nullptr) used_ = static_cast<size_t>(p_ - out_.data());
    out_.resize(used_ + std::max(n, std::max(kBlock, used_)));
    p_ = out_.data() + used_;
    end_ = out_.data() + out_.size();
  }
  void copy(std::string_view s) {
    if (s.empty()) return;
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }

  std::string& out_;
  size_t used_;
  char* p_ = nullptr;
  char* end_ = nullptr;
};

// The field names the rewriters act on. Each field's name is recognised once (FieldName): a
// switch on its length and first letter, then at most one case-insensitive comparison, instead of
// the dozen comparisons per field the rewriters would make otherwise (~300 instructions per
// proxied request).
enum class FieldName : uint8_t {
  kOther,
  // hop by hop (is_hop_by_hop)
  kConnection,
  kKeepAlive,
  kProxyAny,  // Proxy-*
  kTe,
  kTrailer,
  kTransferEncoding,
  kUpgrade,
  // end to end, rewritten or dropped by one of the rewriters
  kCacheControl,
  kContentLength,
  kCookie,
  kExpect,
  kHost,
  kHttp2Settings,
  kSetCookie,
  kXForwardedFor,
  kXForwardedHost,
  kXForwardedProto,
  kXRequestId,
};

constexpr bool is_hop_by_hop(FieldName n) {
  return n >= FieldName::kConnection && n <= FieldName::kUpgrade;
}

// The bytes of `x` with the ASCII capitals lowered, all at once (SWAR): for each byte, bit 7
// of `ge_a` says its low 7 bits are >= 'A', of `gt_z` that they are > 'Z' (no carry crosses a
// byte: at most 0x7f + 0x3f); bytes >= 0x80 are left alone, as ascii_lower leaves them.
uint64_t lowered(uint64_t x) {
  constexpr uint64_t kOnes = 0x0101010101010101, kHigh = 0x8080808080808080;
  const uint64_t low = x & ~kHigh;
  const uint64_t ge_a = low + kOnes * (0x80 - 'A');
  const uint64_t gt_z = low + kOnes * (0x80 - 'Z' - 1);
  const uint64_t capitals = ge_a & ~gt_z & ~x & kHigh;
  return x | (capitals >> 2);
}
template <typename Word>
uint64_t load(const char* at) {
  Word x;
  std::memcpy(&x, at, sizeof x);
  return x;
}

// iequals(name, lower) for a `lower` in lower case and as long as `name`, a word at a time (the
// last word overlapping the one before): a matching Content-Length costs ~20 instructions instead
// of ~100.
bool equals_lowered(std::string_view name, std::string_view lower) {
  const size_t n = name.size();
  if (lower.size() != n) return false;  // every load below stays inside both
  const char* a = name.data();
  const char* b = lower.data();
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8)
      if (lowered(load<uint64_t>(a + i)) != load<uint64_t>(b + i)) return false;
    return lowered(load<uint64_t>(a + n - 8)) == load<uint64_t>(b + n - 8);
  }
  if (n >= 4) {
    return lowered(load<uint32_t>(a)) == load<uint32_t>(b) &&
           lowered(load<uint32_t>(a + n - 4)) == load<uint32_t>(b + n - 4);
  }
  for (size_t i = 0; i < n; ++i)
    if (ascii_lower(a[i]) != b[i]) return false;
  return true;
}

// `expected` if `name` is `spelled` (lower case, as long as `name`), case-insensitively; else
// kOther.
// The first letters first: most names that differ, differ there (`spelled` starts with a letter,
// and only a letter ORed with 0x20 gives one).
FieldName match(std::string_view name, std::string_view spelled, FieldName expected) {
  if (static_cast<char>(name[0] | 0x20) != spelled[0]) return FieldName::kOther;
  return equals_lowered(name, spelled) ? expected : FieldName::kOther;
}

FieldName named_field(std::string_view name) {
  // Lower case for letters; other bytes only pick a case that the full comparison then refuses.
  const char first = static_cast<char>(name[0] | 0x20);
  switch (name.size()) {
    case 2:
      return match(name, "te", FieldName::kTe);
    case 4:
      return match(name, "host", FieldName::kHost);
    case 6:
      return first == 'c' ? match(name, "cookie", FieldName::kCookie)
                          : match(name, "expect", FieldName::kExpect);
    case 7:
      return first == 't' ? match(name, "trailer", FieldName::kTrailer)
                          : match(name, "upgrade", FieldName::kUpgrade);
    case 10:
      return first == 'c'   ? match(name, "connection", FieldName::kConnection)
             : first == 'k' ? match(name, "keep-alive", FieldName::kKeepAlive)
                            : match(name, "set-cookie", FieldName::kSetCookie);
    case 12:
      return match(name, "x-request-id", FieldName::kXRequestId);
    case 13:
      return match(name, "cache-control", FieldName::kCacheControl);
    case 14:
      return first == 'c' ? match(name, "content-length", FieldName::kContentLength)
                          : match(name, "http2-settings", FieldName::kHttp2Settings);
    case 15:
      return match(name, "x-forwarded-for", FieldName::kXForwardedFor);
    case 16:
      return match(name, "x-forwarded-host", FieldName::kXForwardedHost);
    case 17:
      return first == 't' ? match(name, "transfer-encoding", FieldName::kTransferEncoding)
                          : match(name, "x-forwarded-proto", FieldName::kXForwardedProto);
    default:
      return FieldName::kOther;
  }
}

FieldName classify(std::string_view name) {
  if (name.empty()) return FieldName::kOther;
  const FieldName named = named_field(name);
  if (named != FieldName::kOther) return named;
  // Proxy-Authorization, Proxy-Connection, ...: meant for us, never for the application, whatever
  // their length ("Proxy-Foo-Bar-Baz" has as many characters as Transfer-Encoding).
  if (name.size() > 6 && iequals(name.substr(0, 6), "proxy-")) return FieldName::kProxyAny;
  return FieldName::kOther;
}

// The names the message's Connection header(s) list: those fields are hop-by-hop too (RFC 9110
// §7.6.1). Collected once per message, as trimmed tokens, leaving out the names that are hop by
// hop anyway: "Connection: keep-alive" (most responses) then leaves none, and the rewriters ask
// names() for every field without splitting a list each time (~290 instructions per request with
// nginx as the origin). A message listing more names than fit is rare (and suspect): it falls back
// to scanning the whole head.
class ConnectionTokens {
 public:
  explicit ConnectionTokens(const MessageHead& head) : head_(head) {
    for (size_t i = 0; i < head.header_count && !overflow_; ++i)
      if (is_connection(head.headers[i].name)) collect(head.headers[i].value);
  }
  // Does a Connection field list `name`? Only for a name that is not hop by hop itself (the
  // rewriters drop those before asking).
  bool names(std::string_view name) const {
    if (overflow_) {
      for (size_t i = 0; i < head_.header_count; ++i)
        if (iequals(head_.headers[i].name, "connection") &&
            list_contains_token(head_.headers[i].value, name))
          return true;
      return false;
    }
    for (size_t i = 0; i < count_; ++i)
      if (iequals(tokens_[i], name)) return true;
    return false;
  }

 private:
  // Split as list_contains_token splits: on ',', each element trimmed of OWS.
  void collect(std::string_view list) {
    while (!list.empty()) {
      const size_t comma = list.find(',');
      const std::string_view token = trim_ows(list.substr(0, comma));
      if (!is_hop_by_hop(classify(token))) {
        if (count_ == kMax) {
          overflow_ = true;
          return;
        }
        tokens_[count_++] = token;
      }
      if (comma == std::string_view::npos) return;
      list.remove_prefix(comma + 1);
    }
  }

  static bool is_connection(std::string_view name) {
    return name.size() == 10 && equals_lowered(name, "connection");
  }

  static constexpr size_t kMax = 16;
  const MessageHead& head_;
  std::string_view tokens_[kMax];
  size_t count_ = 0;
  bool overflow_ = false;
};

}  // namespace

bool is_forwarding_header(std::string_view name) {
  // Every name below starts with x, f or t: most headers are out after one comparison.
  if (name.empty()) return false;
  const char first = static_cast<char>(name[0] | 0x20);
  if (first != 'x' && first != 'f' && first != 't') return false;
  static constexpr std::string_view kXForwarded = "x-forwarded-";
  if (name.size() >= kXForwarded.size() && iequals(name.substr(0, kXForwarded.size()), kXForwarded))
    return true;
  switch (name.size()) {
    case 9:
      return iequals(name, "forwarded") || iequals(name, "x-real-ip");
    case 11:
      return iequals(name, "x-client-ip");
    case 12:
      return iequals(name, "x-url-scheme");
    case 14:
      return iequals(name, "true-client-ip");
    case 15:
      return iequals(name, "front-end-https");
    default:
      return false;
  }
}

bool is_hop_by_hop(std::string_view name) {
  return is_hop_by_hop(classify(name));
}

bool under_prefix(std::string_view name, std::string_view prefix) {
  if (name.size() < prefix.size() || prefix.empty()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (fold(name[i]) != fold(prefix[i])) return false;
  return true;
}

void append_chunk_header(size_t length, std::string& out) {
  char buf[20];
  auto r = std::to_chars(buf, buf + sizeof buf, length, 16);
  out.append(buf, r.ptr);
  out.append("\r\n");
}

namespace {

// The upstream request's framing and the gateway's own fields, after the client's.
void append_gateway_fields(const UpstreamRequestOptions& o, HeadWriter& out) {
  switch (o.framing) {
    case BodyFraming::kContentLength:
      out.text("Content-Length: ");
      out.number(o.content_length);
      out.text("\r\n");
      break;
    case BodyFraming::kChunked:
      out.text("Transfer-Encoding: chunked\r\n");
      break;
    default:
      break;
  }
  if (o.tunnel_websocket) {
    out.text("Connection: upgrade\r\nUpgrade: websocket\r\n");
  }
  if (!o.request_id.empty()) out.field("X-Request-Id", o.request_id);
  // Injected last, after hop-by-hop removal, so a client cannot name them in Connection.
  if (o.injected != nullptr) {
    size_t n = std::min(o.injected_count, o.injected->size());
    for (size_t i = 0; i < n; ++i)
      out.field((*o.injected)[i].first, (*o.injected)[i].second);
  }
  if (o.appended != nullptr)
    for (const auto& [name, value] : *o.appended)
      out.field(name, value);
}

}  // namespace

void build_upstream_request(const MessageHead& request, const UpstreamRequestOptions& o,
                            std::string& head) {
  HeadWriter out(head);
  out.text(request.method);
  out.text(' ');
  out.text(request.target);
  out.text(" HTTP/1.1\r\n");

  const ConnectionTokens connection(request);
  std::string forwarded_for;
  std::string_view forwarded_proto, forwarded_host, host;
  bool cookie_written = false;
  for (size_t i = 0; i < request.header_count; ++i) {
    const HeaderField& f = request.headers[i];
    std::string_view name = f.name;
    const FieldName kind = classify(name);
    // Host is end-to-end whatever Connection says: an upstream request without it is invalid
    // (RFC 9112 §3.2), and the application routes by it.
    if (is_hop_by_hop(kind) || (kind != FieldName::kHost && connection.names(name))) continue;
    // Our trusted headers: whatever the client sent under the prefix never reaches the app.
    if (under_prefix(name, o.header_prefix)) {
      if (o.removed_reserved != nullptr) ++*o.removed_reserved;
      continue;
    }
    switch (kind) {
      case FieldName::kXForwardedFor:
        if (o.peer_trusted) {
          if (!forwarded_for.empty()) forwarded_for.append(", ");
          forwarded_for.append(trim_ows(f.value));
        }
        continue;
      case FieldName::kXForwardedProto:
        if (o.peer_trusted && forwarded_proto.empty()) forwarded_proto = trim_ows(f.value);
        continue;
      case FieldName::kXForwardedHost:
        // Only ever a validated host: an application builds links and redirects from it.
        if (o.peer_trusted && forwarded_host.empty() && is_valid_host(trim_ows(f.value)))
          forwarded_host = trim_ows(f.value);
        continue;
      // We answer Expect: 100-continue ourselves; HTTP2-Settings belongs to an h2c upgrade we
      // never forward; Content-Length is rewritten from the framing we chose; X-Request-Id is ours.
      case FieldName::kExpect:
      case FieldName::kHttp2Settings:
      case FieldName::kContentLength:
      case FieldName::kXRequestId:
        continue;
      case FieldName::kHost:
        host = trim_ows(f.value);
        break;
      case FieldName::kCookie:
        if (o.replace_cookie) {
          if (!cookie_written && !o.cookie_value.empty()) out.field("Cookie", o.cookie_value);
          cookie_written = true;
          continue;
        }
        break;
      default:
        // Forwarded (RFC 7239), X-Real-IP, X-Forwarded-Port/-Prefix, ...: an application believes
        // them about the client's address, scheme and URL. Only a trusted proxy may set them.
        if (!o.peer_trusted && is_forwarding_header(name)) continue;
        break;
    }
    out.field(name, f.value);
  }

  if (!forwarded_for.empty()) forwarded_for.append(", ");
  forwarded_for.append(o.client_address);
  out.field("X-Forwarded-For", forwarded_for);
  out.field("X-Forwarded-Proto", forwarded_proto.empty() ? o.scheme : forwarded_proto);
  if (!forwarded_host.empty()) {
    out.field("X-Forwarded-Host", forwarded_host);
  } else if (!host.empty()) {
    out.field("X-Forwarded-Host", host);
  }

  append_gateway_fields(o, out);
  out.text("\r\n");
}

void client_response_fields(const MessageHead& response, const ClientResponseOptions& o,
                            FieldSink& sink) {
  const ConnectionTokens connection(response);
  bool cache_control_private = false;
  for (size_t i = 0; i < response.header_count; ++i) {
    const HeaderField& f = response.headers[i];
    std::string_view name = f.name;
    const FieldName kind = classify(name);
    if (o.upgrade && (kind == FieldName::kConnection || kind == FieldName::kUpgrade)) {
      sink.field(name, f.value);
      continue;
    }
    if (is_hop_by_hop(kind) || connection.names(name)) continue;
    // Session directives and anything else under our prefix are for the gateway only.
    if (under_prefix(name, o.header_prefix)) continue;
    switch (kind) {
      case FieldName::kContentLength:
        if (o.framing != BodyFraming::kContentLength && o.framing != BodyFraming::kNone) continue;
        break;
      case FieldName::kSetCookie:
        // The application may not set (or overwrite) the gateway's cookie. (A browser trims SP
        // and HTAB around the name: "session_id\t=x" sets session_id too.)
        if (!o.cookie_name.empty() && set_cookie_names_cookie(f.value, o.cookie_name)) continue;
        break;
      case FieldName::kCacheControl:
        if (o.force_no_store) {
          if (list_contains_token(f.value, "no-store") || list_contains_token(f.value, "private")) {
            cache_control_private = true;
          } else {
            continue;  // replaced by no-store below
          }
        }
        break;
      default:
        break;
    }
    sink.field(name, f.value);
  }
  if (o.force_no_store && !cache_control_private) sink.field("Cache-Control", "no-store");
}

void build_client_response(const MessageHead& response, const ClientResponseOptions& o,
                           std::string& head) {
  HeadWriter out(head);
  out.text("HTTP/1.1 ");
  out.number(static_cast<uint64_t>(response.status));
  out.text(' ');
  out.text(response.reason.empty() ? status_reason(response.status)
                                   : std::string_view(response.reason));
  out.text("\r\n");
  struct Http11Fields final : FieldSink {
    explicit Http11Fields(HeadWriter& out) : out(out) {}
    void field(std::string_view name, std::string_view value) override { out.field(name, value); }
    HeadWriter& out;
  } fields(out);
  client_response_fields(response, o, fields);
  if (o.framing == BodyFraming::kChunked) out.text("Transfer-Encoding: chunked\r\n");
  if (o.close && !o.upgrade) {
    out.text("Connection: close\r\n");
  } else if (!o.client_http11 && !o.upgrade) {
    out.text("Connection: keep-alive\r\n");
  }
  if (o.added != nullptr)
    for (const auto& [name, value] : *o.added)
      out.field(name, value);
  out.text("\r\n");
}

std::string_view status_reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

void build_local_response(int status, std::string_view body, bool close, std::string_view date,
                          std::string& head, const HeaderList* extra, bool head_only,
                          std::string_view content_type) {
  HeadWriter out(head);
  out.text("HTTP/1.1 ");
  out.number(static_cast<uint64_t>(status));
  out.text(' ');
  out.text(status_reason(status));
  out.text("\r\nDate: ");
  out.text(date);
  out.text("\r\nContent-Type: ");
  out.text(content_type);
  out.text("\r\nCache-Control: no-store\r\n");
  out.text("Content-Length: ");
  out.number(body.size());
  out.text("\r\n");
  if (close) out.text("Connection: close\r\n");
  if (extra != nullptr)
    for (const auto& [name, value] : *extra)
      out.field(name, value);
  out.text("\r\n");
  if (!head_only) out.text(body);
}

}  // namespace sg
