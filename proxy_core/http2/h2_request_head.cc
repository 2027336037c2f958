#include "proxy_core/http2/h2_request_head.h"

#include <llhttp.h>

#include <cstring>
#include <utility>

#include "proxy_core/base/ascii.h"

namespace sg {

namespace {

// RFC 9110 §5.6.2 tchar, lowercase letters only (RFC 9113 §8.2.1: uppercase is malformed).
bool is_lower_tchar(char c) {
  return is_tchar(c) && !(c >= 'A' && c <= 'Z');
}

bool is_valid_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!is_lower_tchar(c)) return false;
  return true;
}

// RFC 9113 §8.2.1: no NUL, CR or LF anywhere, no leading or trailing space or tab.
bool is_valid_value(std::string_view value) {
  if (value.empty()) return true;
  // memchr scans a word or a vector at a time: cookies and user agents are long.
  for (char c : {'\0', '\r', '\n'})
    if (std::memchr(value.data(), c, value.size()) != nullptr) return false;
  auto ws = [](char c) { return c == ' ' || c == '\t'; };
  return !ws(value.front()) && !ws(value.back());
}

bool is_method_token(std::string_view m) {
  if (m.empty()) return false;
  for (char c : m) {
    bool upper = c >= 'A' && c <= 'Z';
    if (!upper && !is_lower_tchar(c)) return false;
  }
  return true;
}

// llhttp's id for `method`, or -1: the rest of the gateway switches on method_id.
int llhttp_method_id(std::string_view method) {
#define SG_H2_METHOD(num, name, string) \
  if (method == #string) return num;
  HTTP_METHOD_MAP(SG_H2_METHOD)
#undef SG_H2_METHOD
  return -1;
}

bool parse_content_length(std::string_view v, uint64_t& out) {
  if (v.empty() || v.size() > 19) return false;
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  out = n;
  return true;
}

// Into the next entry, reusing the strings a previous request left there (header_count, not
// headers.size(), is the number of fields: http_message.h).
HeaderField& next_field(MessageHead& head) {
  if (head.headers.size() <= head.header_count) head.headers.emplace_back();
  return head.headers[head.header_count++];
}

HeaderField& next_field(MessageHead& head, std::string_view name) {
  HeaderField& f = next_field(head);
  f.name.assign(name);
  return f;
}

void push_field(MessageHead& head, std::string_view name, std::string_view value) {
  next_field(head, name).value.assign(value);
}

}  // namespace

bool is_connection_specific_field(std::string_view name) {
  return iequals(name, "connection") || iequals(name, "keep-alive") ||
         iequals(name, "proxy-connection") || iequals(name, "transfer-encoding") ||
         iequals(name, "upgrade");
}

void H2RequestHeadBuilder::reset() {
  list_bytes_ = 0;
  fields_seen_ = 0;
  verdict_ = H2HeadVerdict::kOk;
  regular_seen_ = has_method_ = has_scheme_ = has_path_ = has_authority_ = false;
  method_.clear();
  path_.clear();
  authority_.clear();
  cookie_.clear();
  has_cookie_ = false;
  fields_.clear();
}

H2HeadVerdict H2RequestHeadBuilder::add(std::string_view name, std::string_view value) {
  if (verdict_ != H2HeadVerdict::kOk) return verdict_;
  // RFC 9113 §6.5.2: the size of a field is its name and value lengths plus 32.
  list_bytes_ += name.size() + value.size() + 32;
  if (list_bytes_ > max_bytes_) return fail(H2HeadVerdict::kTooLarge);
  if (!name.empty() && name[0] == ':') return add_pseudo(name, value);
  if (++fields_seen_ > max_fields_) return fail(H2HeadVerdict::kTooLarge);
  return add_regular(name, value);
}

H2HeadVerdict H2RequestHeadBuilder::add_pseudo(std::string_view name, std::string_view value) {
  // §8.3: every pseudo-header before the first regular field, each at most once, none unknown.
  if (regular_seen_) return fail(H2HeadVerdict::kMalformed);
  bool* seen = nullptr;
  std::string* into = nullptr;
  if (name == ":method") {
    seen = &has_method_, into = &method_;
  } else if (name == ":path") {
    seen = &has_path_, into = &path_;
  } else if (name == ":authority") {
    seen = &has_authority_, into = &authority_;
  } else if (name == ":scheme") {
    seen = &has_scheme_;
  } else {
    return fail(H2HeadVerdict::kMalformed);  // unknown, or :protocol (not offered), or :status
  }
  if (*seen) return fail(H2HeadVerdict::kMalformed);
  *seen = true;
  // Pseudo-header values are stricter than field values: no whitespace or controls at all.
  for (char c : value)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return fail(H2HeadVerdict::kMalformed);
  if (into != nullptr) into->assign(value);
  return verdict_;
}

H2HeadVerdict H2RequestHeadBuilder::add_regular(std::string_view name, std::string_view value) {
  regular_seen_ = true;
  if (!is_valid_name(name) || !is_valid_value(value)) return fail(H2HeadVerdict::kMalformed);
  if (is_connection_specific_field(name)) return fail(H2HeadVerdict::kMalformed);
  // §8.2.2: te may appear, with "trailers" as its only value.
  if (name == "te" && value != "trailers") return fail(H2HeadVerdict::kMalformed);
  if (name == "cookie") {
    // §8.2.3: crumbs are joined with "; " before anything else sees them.
    if (has_cookie_) cookie_ += "; ";
    cookie_.append(value);
    has_cookie_ = true;
    return verdict_;
  }
  push_field(fields_, name, value);
  return verdict_;
}

H2HeadVerdict H2RequestHeadBuilder::finish(MessageHead& head) {
  if (verdict_ != H2HeadVerdict::kOk) return verdict_;
  if (!has_method_) return fail(H2HeadVerdict::kMalformed);
  bool connect = method_ == "CONNECT";
  if (connect) {
    // §8.5: CONNECT has :method and :authority only.
    if (has_scheme_ || has_path_ || !has_authority_) return fail(H2HeadVerdict::kMalformed);
  } else {
    if (!has_scheme_ || !has_path_) return fail(H2HeadVerdict::kMalformed);
    // §8.3.1: a non-empty :path, origin-form, or "*" for OPTIONS.
    bool asterisk = path_ == "*" && method_ == "OPTIONS";
    if (!asterisk && (path_.empty() || path_[0] != '/')) return fail(H2HeadVerdict::kMalformed);
    // Path and query only: a '#' would put a fragment in the HTTP/1.1 request line, where the
    // gateway's path (target_path stops at '#') and the application's could differ; bytes above
    // 0x7e are no request-target's (RFC 3986 asks for percent-encoding).
    for (char c : path_)
      if (c == '#' || static_cast<unsigned char>(c) >= 0x80) return fail(H2HeadVerdict::kMalformed);
  }
  if (!is_method_token(method_)) return fail(H2HeadVerdict::kMalformed);
  int method_id = llhttp_method_id(method_);
  if (method_id < 0) return fail(H2HeadVerdict::kBadMethod);

  // §8.3.1: :authority and Host both present must agree; :authority alone becomes Host.
  const HeaderField* host = nullptr;
  for (size_t i = 0; i < fields_.header_count; ++i) {
    const HeaderField& f = fields_.headers[i];
    if (f.name == "host") {
      if (host != nullptr) return fail(H2HeadVerdict::kMalformed);
      host = &f;
    }
    if (f.name == "content-length") {
      uint64_t n = 0;
      if (!parse_content_length(f.value, n)) return fail(H2HeadVerdict::kMalformed);
      if (fields_.has_content_length && n != fields_.content_length)
        return fail(H2HeadVerdict::kMalformed);
      fields_.has_content_length = true;
      fields_.content_length = n;
    }
  }
  if (host != nullptr && has_authority_ && host->value != authority_)
    return fail(H2HeadVerdict::kMalformed);

  // The strings move (swapped: the builder gets the head's old buffers back for its next block),
  // so the builder is spent: reset() before another block.
  head.clear();
  head.method.swap(method_);
  head.method_id = method_id;
  head.target.swap(connect ? authority_ : path_);
  head.version_major = 2;
  head.version_minor = 0;
  head.http2 = true;
  if (host == nullptr && has_authority_) push_field(head, "host", authority_);
  for (size_t i = 0; i < fields_.header_count; ++i) {
    HeaderField& f = next_field(head);
    f.name.swap(fields_.headers[i].name);
    f.value.swap(fields_.headers[i].value);
  }
  if (has_cookie_) next_field(head, "cookie").value.swap(cookie_);
  head.has_content_length = fields_.has_content_length;
  head.content_length = fields_.content_length;
  head.keep_alive = true;
  H2HeadVerdict v = verdict_;
  verdict_ = H2HeadVerdict::kMalformed;  // spent: a second finish() without reset() fails
  return v;
}

}  // namespace sg
