#include "proxy_core/http/request_validation.h"

#include <arpa/inet.h>

#include <llhttp.h>
#include <array>

namespace sg {

namespace {

// Removes every header whose name contains '_', keeping order. CGI-style applications map '_' and
// '-' to the same variable, so such a name could shadow a trusted header.
void drop_underscore_headers(MessageHead& head) {
  size_t kept = 0;
  for (size_t i = 0; i < head.header_count; ++i) {
    if (head.headers[i].name.find('_') != std::string::npos) continue;
    if (kept != i) std::swap(head.headers[kept], head.headers[i]);
    ++kept;
  }
  head.header_count = kept;
}

// The characters of a host name we accept, one table lookup per character (a chain of range
// tests costs ~10 instructions a character, on the Host of every request).
constexpr bool is_reg_name_char_slow(char c) {
  return is_ascii_alpha(c) || is_ascii_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}
constexpr auto kRegNameChars = [] {
  std::array<bool, 256> table{};
  for (int c = 0; c < 256; ++c)
    table[static_cast<size_t>(c)] = is_reg_name_char_slow(static_cast<char>(c));
  return table;
}();
bool is_reg_name_char(char c) {
  return kRegNameChars[static_cast<unsigned char>(c)];
}

bool is_valid_port(std::string_view port) {
  if (port.empty() || port.size() > 5) return false;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value <= 65535;
}

// Replaces the value of the Host field (there is at most one by now), or adds one.
void set_host(MessageHead& head, std::string_view value) {
  for (size_t i = 0; i < head.header_count; ++i) {
    if (iequals(head.headers[i].name, "host")) {
      head.headers[i].value.assign(value);
      return;
    }
  }
  if (head.header_count < head.headers.size()) {
    head.headers[head.header_count] = {"Host", std::string(value)};
  } else {
    head.headers.push_back({"Host", std::string(value)});
  }
  ++head.header_count;
}

// Kept at 255 bytes: a DNS name is at most 253, and the value lands in headers and redirects.
constexpr size_t kMaxHostBytes = 255;

}  // namespace

bool is_valid_host(std::string_view authority) {
  if (authority.empty() || authority.size() > kMaxHostBytes) return false;
  std::string_view rest;
  if (authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    // IP-literal: only an IPv6address; inet_pton refuses zones ("%25eth0") and IPvFuture ("v1.x").
    std::string v6(authority.substr(1, close - 1));
    in6_addr addr{};
    if (v6.empty() || inet_pton(AF_INET6, v6.c_str(), &addr) != 1) return false;
    rest = authority.substr(close + 1);
  } else {
    size_t colon = authority.find(':');
    std::string_view host = authority.substr(0, colon);
    if (colon != std::string_view::npos) rest = authority.substr(colon);
    if (host.empty()) return false;
    for (char c : host)
      if (!is_reg_name_char(c)) return false;
  }
  if (rest.empty()) return true;
  return rest[0] == ':' && is_valid_port(rest.substr(1));
}

std::string_view target_path(std::string_view target) {
  size_t q = target.find_first_of("?#");
  return q == std::string_view::npos ? target : target.substr(0, q);
}

RequestVerdict validate_request(MessageHead& head, UnderscorePolicy underscore_policy) {
  // 2.0 only from the HTTP/2 codec (http2/h2_request_head.h): llhttp parses an HTTP/1.x request
  // line saying "HTTP/2.0", which stays a 400.
  bool http2 = head.http2 && head.version_major == 2 && head.version_minor == 0;
  if (head.version_major != 1 && !http2) {
    return {head.version_major == 0 || head.version_major == 2 ? 400 : 505,
            "unsupported HTTP version"};
  }
  if (head.version_minor > 1) return {505, "unsupported HTTP version"};
  // A tunnel through the gateway would bypass every session rule.
  if (head.method_id == HTTP_CONNECT) return {400, "CONNECT is not supported"};
  // RFC 9112 §6.1: Transfer-Encoding in a 1.0 message cannot be trusted (smuggling vector).
  if (head.version_minor == 0 && head.has_transfer_encoding)
    return {400, "Transfer-Encoding in an HTTP/1.0 request"};

  // RFC 9112 §6.1: we re-chunk the body and send only "chunked" upstream, so any other coding
  // in the list ("x, chunked") would silently change the body the application gets, and an empty
  // field is read as "no body" here but may not be by another hop. 501 like nginx; 400 for empty.
  switch (transfer_codings(head)) {
    case TransferCodings::kChunkedOnly:
      break;
    case TransferCodings::kEmpty:
      return {400, "empty Transfer-Encoding"};
    case TransferCodings::kOther:
      return {501, "transfer coding other than chunked"};
  }

  for (size_t i = 0; i < head.header_count; ++i) {
    if (head.headers[i].name.find('_') != std::string::npos) {
      if (underscore_policy == UnderscorePolicy::kReject)
        return {400, "header name with underscore"};
      drop_underscore_headers(head);
      break;
    }
  }

  // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host, with more than
  // one, or with an invalid one. (HTTP/1.0 may omit it; when sent, it must be valid too.)
  const HeaderField* host = nullptr;
  for (size_t i = 0; i < head.header_count; ++i) {
    if (!iequals(head.headers[i].name, "host")) continue;
    if (host != nullptr) return {400, "duplicate Host"};
    host = &head.headers[i];
  }
  if (host == nullptr && (head.is_http11() || http2)) return {400, "missing Host"};
  if (host != nullptr && !is_valid_host(trim_ows(host->value))) return {400, "invalid Host"};

  std::string& target = head.target;
  if (!target.empty() && target[0] == '/') return {};
  if (target == "*") {
    if (head.method_id == HTTP_OPTIONS) return {};
    return {400, "asterisk-form target outside OPTIONS"};
  }
  size_t scheme_len = istarts_with(target, "http://")    ? 7
                      : istarts_with(target, "https://") ? 8
                                                         : 0;
  if (scheme_len == 0) return {400, "malformed request target"};
  // RFC 9112 §3.2.2: with an absolute-form target the server MUST ignore Host and use the
  // target's authority. It replaces Host, so that the application, X-Forwarded-Host and every
  // later hop see one host only (two views of the host are a smuggling vector).
  size_t end = target.find_first_of("/?#", scheme_len);
  std::string_view authority = std::string_view(target).substr(
      scheme_len, end == std::string::npos ? end : end - scheme_len);
  if (!is_valid_host(authority)) return {400, "malformed absolute-form authority"};
  std::string new_host(authority);
  std::string origin = end == std::string::npos ? "/" : target.substr(end);
  if (origin[0] != '/') origin.insert(origin.begin(), '/');
  target = std::move(origin);
  set_host(head, new_host);
  return {};
}

}  // namespace sg
