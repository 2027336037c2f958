#include "proxy_core/request_validation.h"

#include <llhttp.h>

namespace sg {

namespace {

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

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

}  // namespace

std::string_view target_path(std::string_view target) {
  size_t q = target.find_first_of("?#");
  return q == std::string_view::npos ? target : target.substr(0, q);
}

RequestVerdict validate_request(MessageHead& head, UnderscorePolicy underscore_policy) {
  if (head.version_major != 1) {
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

  size_t hosts = head.count("host");
  if (hosts > 1) return {400, "duplicate Host"};
  if (hosts == 0 && head.is_http11()) return {400, "missing Host"};  // RFC 9112 §3.2

  for (size_t i = 0; i < head.header_count; ++i) {
    if (head.headers[i].name.find('_') != std::string::npos) {
      if (underscore_policy == UnderscorePolicy::kReject)
        return {400, "header name with underscore"};
      drop_underscore_headers(head);
      break;
    }
  }

  std::string& target = head.target;
  if (!target.empty() && target[0] == '/') return {};
  if (target == "*") {
    if (head.method_id == HTTP_OPTIONS) return {};
    return {400, "asterisk-form target outside OPTIONS"};
  }
  size_t scheme_len = starts_with_ci(target, "http://")    ? 7
                      : starts_with_ci(target, "https://") ? 8
                                                           : 0;
  if (scheme_len == 0) return {400, "malformed request target"};
  // RFC 9112 §3.2.2: with an absolute-form target the authority is the host. We insist that Host
  // agrees rather than silently preferring one: two views of the host are a smuggling vector.
  size_t end = target.find_first_of("/?#", scheme_len);
  std::string_view authority = std::string_view(target).substr(
      scheme_len, end == std::string::npos ? end : end - scheme_len);
  if (authority.empty() || authority.find('@') != std::string_view::npos)
    return {400, "malformed absolute-form authority"};
  const HeaderField* host = head.find("host");
  if (host == nullptr || !iequals(trim_ows(host->value), authority))
    return {400, "absolute-form authority disagrees with Host"};
  std::string origin = end == std::string::npos ? "/" : target.substr(end);
  if (origin[0] != '/') origin.insert(origin.begin(), '/');
  target = std::move(origin);
  return {};
}

}  // namespace sg
