#include "proxy_core/http/header_rewrite.h"

#include <algorithm>
#include <charconv>
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

// The values of the message's Connection header(s): the names they list are hop-by-hop too
// (RFC 9110 §7.6.1). Collected once per message; most messages have none. A message with more
// Connection fields than fit is rare (and suspect): it falls back to scanning the whole head.
struct ConnectionTokens {
  explicit ConnectionTokens(const MessageHead& head) : head(head) {
    for (size_t i = 0; i < head.header_count; ++i) {
      if (!iequals(head.headers[i].name, "connection")) continue;
      if (count == kMax) {
        overflow = true;
        break;
      }
      values[count++] = head.headers[i].value;
    }
  }
  bool names(std::string_view name) const {
    if (overflow) {
      for (size_t i = 0; i < head.header_count; ++i)
        if (iequals(head.headers[i].name, "connection") &&
            list_contains_token(head.headers[i].value, name))
          return true;
      return false;
    }
    for (size_t i = 0; i < count; ++i)
      if (list_contains_token(values[i], name)) return true;
    return false;
  }
  static constexpr size_t kMax = 8;
  const MessageHead& head;
  std::string_view values[kMax];
  size_t count = 0;
  bool overflow = false;
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
  bool named = false;
  switch (name.size()) {
    case 2:
      named = iequals(name, "te");
      break;
    case 7:
      named = iequals(name, "trailer") || iequals(name, "upgrade");
      break;
    case 10:
      named = iequals(name, "connection") || iequals(name, "keep-alive");
      break;
    case 17:
      named = iequals(name, "transfer-encoding");
      break;
    default:
      break;
  }
  // Proxy-Authorization, Proxy-Connection, ...: meant for us, never for the application, whatever
  // their length ("Proxy-Foo-Bar-Baz" has as many characters as Transfer-Encoding).
  return named || (name.size() > 6 && iequals(name.substr(0, 6), "proxy-"));
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
    // Host is end-to-end whatever Connection says: an upstream request without it is invalid
    // (RFC 9112 §3.2), and the application routes by it.
    if (is_hop_by_hop(name) || (!iequals(name, "host") && connection.names(name))) continue;
    // Our trusted headers: whatever the client sent under the prefix never reaches the app.
    if (under_prefix(name, o.header_prefix)) {
      if (o.removed_reserved != nullptr) ++*o.removed_reserved;
      continue;
    }
    if (iequals(name, "x-forwarded-for")) {
      if (o.peer_trusted) {
        if (!forwarded_for.empty()) forwarded_for.append(", ");
        forwarded_for.append(trim_ows(f.value));
      }
      continue;
    }
    if (iequals(name, "x-forwarded-proto")) {
      if (o.peer_trusted && forwarded_proto.empty()) forwarded_proto = trim_ows(f.value);
      continue;
    }
    if (iequals(name, "x-forwarded-host")) {
      // Only ever a validated host: an application builds links and redirects from it.
      if (o.peer_trusted && forwarded_host.empty() && is_valid_host(trim_ows(f.value)))
        forwarded_host = trim_ows(f.value);
      continue;
    }
    // Forwarded (RFC 7239), X-Real-IP, X-Forwarded-Port/-Prefix, ...: an application believes
    // them about the client's address, scheme and URL. Only a trusted proxy may set them.
    if (!o.peer_trusted && is_forwarding_header(name)) continue;
    // We answer Expect: 100-continue ourselves; HTTP2-Settings belongs to an h2c upgrade we never
    // forward; Content-Length is rewritten from the framing we chose.
    if (iequals(name, "expect") || iequals(name, "http2-settings") ||
        iequals(name, "content-length"))
      continue;
    if (iequals(name, "x-request-id")) continue;
    if (iequals(name, "host")) host = trim_ows(f.value);
    if (iequals(name, "cookie") && o.replace_cookie) {
      if (!cookie_written && !o.cookie_value.empty()) out.field("Cookie", o.cookie_value);
      cookie_written = true;
      continue;
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
  out.text("\r\n");
}

void client_response_fields(const MessageHead& response, const ClientResponseOptions& o,
                            FieldSink& sink) {
  const ConnectionTokens connection(response);
  bool cache_control_private = false;
  for (size_t i = 0; i < response.header_count; ++i) {
    const HeaderField& f = response.headers[i];
    std::string_view name = f.name;
    if (o.upgrade && (iequals(name, "connection") || iequals(name, "upgrade"))) {
      sink.field(name, f.value);
      continue;
    }
    if (is_hop_by_hop(name) || connection.names(name)) continue;
    // Session directives and anything else under our prefix are for the gateway only.
    if (under_prefix(name, o.header_prefix)) continue;
    if (iequals(name, "content-length") && o.framing != BodyFraming::kContentLength &&
        o.framing != BodyFraming::kNone)
      continue;
    // The application may not set (or overwrite) the gateway's cookie. (A browser trims SP and
    // HTAB around the name: "session_id\t=x" sets session_id too.)
    if (!o.cookie_name.empty() && iequals(name, "set-cookie") &&
        set_cookie_names_cookie(f.value, o.cookie_name))
      continue;
    if (iequals(name, "cache-control")) {
      if (o.force_no_store) {
        if (list_contains_token(f.value, "no-store") || list_contains_token(f.value, "private")) {
          cache_control_private = true;
        } else {
          continue;  // replaced by no-store below
        }
      }
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
