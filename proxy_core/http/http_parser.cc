#include "proxy_core/http/http_parser.h"

// llhttp 8.1 (Debian 12's node-llhttp) accepts request-smuggling patterns: refuse to build on it.
static_assert(LLHTTP_VERSION_MAJOR > 9 || (LLHTTP_VERSION_MAJOR == 9 && LLHTTP_VERSION_MINOR >= 2),
              "sessiongate needs llhttp 9.2 or newer");

namespace sg {

namespace {
HttpParser* self(llhttp_t* p) {
  return static_cast<HttpParser*>(p->data);
}
}  // namespace

const llhttp_settings_t* HttpParser::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t v;
    llhttp_settings_init(&v);
    v.on_message_begin = &HttpParser::on_message_begin;
    v.on_method = &HttpParser::on_method;
    v.on_url = &HttpParser::on_url;
    v.on_status = &HttpParser::on_status;
    v.on_header_field = &HttpParser::on_header_field;
    v.on_header_field_complete = [](llhttp_t* p) {
      self(p)->field_open_ = false;
      return 0;
    };
    v.on_header_value = &HttpParser::on_header_value;
    v.on_headers_complete = &HttpParser::on_headers_complete;
    v.on_body = &HttpParser::on_body;
    v.on_message_complete = &HttpParser::on_message_complete;
    v.on_chunk_header = &HttpParser::on_chunk_header;
    v.on_chunk_extension_name = &HttpParser::on_chunk_extension;
    v.on_chunk_extension_value = &HttpParser::on_chunk_extension;
    return v;
  }();
  return &s;
}

HttpParser::HttpParser(Kind kind, Limits limits) : kind_(kind), limits_(limits) {
  reset();
}

void HttpParser::reset() {
  // Strict parsing: no llhttp_set_lenient_* call anywhere, on purpose (request smuggling).
  llhttp_init(&parser_, kind_ == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, settings());
  parser_.data = this;
  head_.clear();
  in_message_ = false;
  head_reported_ = false;
  error_status_ = 0;
  error_reason_ = "";
}

int HttpParser::fail(int status, const char* reason) {
  error_status_ = status;
  error_reason_ = reason;
  return -1;
}

bool HttpParser::count_head_bytes(size_t len) {
  head_bytes_ += len;
  return head_bytes_ <= limits_.max_header_bytes;
}

int HttpParser::on_message_begin(llhttp_t* p) {
  HttpParser* h = self(p);
  h->head_.clear();
  h->head_bytes_ = 0;
  h->body_bytes_ = 0;
  h->chunk_extension_bytes_ = 0;
  h->field_open_ = false;
  h->head_reported_ = false;
  h->in_message_ = true;
  return 0;
}

int HttpParser::on_method(llhttp_t* p, const char* at, size_t len) {
  HttpParser* h = self(p);
  if (!h->count_head_bytes(len)) return h->fail(431, "request head too large");
  h->head_.method.append(at, len);
  return 0;
}

int HttpParser::on_url(llhttp_t* p, const char* at, size_t len) {
  HttpParser* h = self(p);
  // A request line over the head limit: RFC 9112 §3 suggests 414, but the head as a whole is
  // what we bound, so 431 keeps one rule for one limit.
  if (!h->count_head_bytes(len)) return h->fail(431, "request head too large");
  h->head_.target.append(at, len);
  return 0;
}

int HttpParser::on_status(llhttp_t* p, const char* at, size_t len) {
  HttpParser* h = self(p);
  if (!h->count_head_bytes(len)) return h->fail(502, "response head too large");
  // RFC 9112 §4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ). llhttp 9.2 checks that for
  // field values but lets NUL and other controls through here, and the phrase is forwarded to the
  // client as it came (found by tests/fuzz/fuzz_response_parser.cc).
  for (size_t i = 0; i < len; ++i) {
    const auto c = static_cast<unsigned char>(at[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return h->fail(502, "control byte in the reason phrase");
  }
  h->head_.reason.append(at, len);
  return 0;
}

int HttpParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  HttpParser* h = self(p);
  const bool request = h->kind_ == Kind::kRequest;
  // ": " and CRLF are charged once per field, not once per piece of a name split across reads.
  if (!h->count_head_bytes(h->field_open_ ? len : len + 4))
    return h->fail(request ? 431 : 502, "head too large");
  MessageHead& m = h->head_;
  if (!h->field_open_) {
    if (m.header_count >= h->limits_.max_headers)
      return h->fail(request ? 431 : 502, "too many header fields");
    if (m.headers.size() <= m.header_count) m.headers.emplace_back();
    HeaderField& f = m.headers[m.header_count++];
    f.name.clear();
    f.value.clear();
    h->field_open_ = true;
  }
  m.headers[m.header_count - 1].name.append(at, len);
  return 0;
}

int HttpParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  HttpParser* h = self(p);
  if (!h->count_head_bytes(len))
    return h->fail(h->kind_ == Kind::kRequest ? 431 : 502, "head too large");
  MessageHead& m = h->head_;
  if (m.header_count > 0) m.headers[m.header_count - 1].value.append(at, len);
  return 0;
}

int HttpParser::on_headers_complete(llhttp_t* p) {
  HttpParser* h = self(p);
  MessageHead& m = h->head_;
  m.version_major = p->http_major;
  m.version_minor = p->http_minor;
  m.method_id = p->method;
  m.status = p->status_code;
  m.chunked = (p->flags & F_CHUNKED) != 0;
  m.has_content_length = (p->flags & F_CONTENT_LENGTH) != 0;
  m.content_length = m.has_content_length ? p->content_length : 0;
  m.has_transfer_encoding = (p->flags & F_TRANSFER_ENCODING) != 0;
  m.keep_alive = llhttp_should_keep_alive(p) != 0;
  m.upgrade = p->upgrade != 0;
  // Pause after the head only when a body follows; a bodyless message is reported once, head
  // and end together (kHeadDone), when llhttp completes it without needing another byte.
  if (h->kind_ == Kind::kResponse) {
    // llhttp takes "HTTP/2.0 200" (and 0.9) status lines; an HTTP/1.1 upstream sending one is
    // broken, and we would relay its framing as HTTP/1.1 (RFC 9112 §2.3).
    if (m.version_major != 1) return h->fail(502, "response is not HTTP/1.x");
    // A coding besides chunked would reach the client undecoded under our re-framing (nginx
    // answers 502 for an unknown upstream Transfer-Encoding too).
    if (transfer_codings(m) != TransferCodings::kChunkedOnly)
      return h->fail(502, "upstream transfer coding other than chunked");
    // A response to HEAD has no body, whatever Content-Length says (RFC 9110 §9.3.2).
    if (h->expect_no_body_) return 1;
    int status = m.status;
    // RFC 9110 §15.2: a 1xx ends with its head. llhttp would read a body for a 1xx other than
    // 100-103 that carries framing headers; 1 (skip body) makes it stop (101 still upgrades).
    if (status < 200) return 1;
    if (status == 204 || status == 304) return 0;
    if (m.has_content_length && !m.chunked && m.content_length == 0) return 0;
  } else if (!m.chunked && !(m.has_content_length && m.content_length > 0)) {
    return 0;  // RFC 9112 §6.3: a request without framing headers has no body
  }
  h->head_reported_ = true;
  return HPE_PAUSED;
}

int HttpParser::on_body(llhttp_t* p, const char* at, size_t len) {
  HttpParser* h = self(p);
  h->body_bytes_ += len;
  if (h->body_sink_) h->body_sink_(at, len);
  return 0;
}

int HttpParser::on_message_complete(llhttp_t* p) {
  HttpParser* h = self(p);
  h->in_message_ = false;
  // An upgrade ends in HPE_PAUSED_UPGRADE right after this; pausing here would hide it.
  if (p->upgrade) return 0;
  return HPE_PAUSED;
}

int HttpParser::on_chunk_header(llhttp_t* p) {
  self(p)->chunk_extension_bytes_ = 0;
  return 0;
}

int HttpParser::on_chunk_extension(llhttp_t* p, const char*, size_t len) {
  HttpParser* h = self(p);
  h->chunk_extension_bytes_ += len;
  if (h->chunk_extension_bytes_ > h->limits_.max_chunk_extension_bytes)
    return h->fail(400, "chunk extension too long");
  return 0;
}

HttpParser::Event HttpParser::execute(const char* data, size_t len, size_t& consumed) {
  consumed = 0;
  if (error_status_ != 0) return Event::kError;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  switch (err) {
    case HPE_OK:
      consumed = len;
      return Event::kNeedMore;
    case HPE_PAUSED: {
      consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
      if (in_message_) return Event::kHead;
      return head_reported_ ? Event::kMessageDone : Event::kHeadDone;
    }
    case HPE_PAUSED_UPGRADE:
      consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
      return Event::kUpgrade;
    default:
      break;
  }
  if (error_status_ == 0) {
    if (err == HPE_INVALID_VERSION && kind_ == Kind::kRequest) {
      // RFC 9110 §15.6.6: 505 for a major version we do not speak; 0.9 and 2.0 lines are not
      // HTTP/1.x request lines at all and get 400 (a 2.0 preface is a client misconfiguration).
      // llhttp reports a bad end of line after a good 1.0/1.1 version ("HTTP/1.1 \r\n",
      // "HTTP/1.1\n") with the same error: that is a malformed line, 400.
      int major = parser_.http_major;
      bool http1x = major == 1 && parser_.http_minor <= 1;
      error_status_ = (major == 0 || major == 2 || http1x) ? 400 : 505;
    } else {
      error_status_ = kind_ == Kind::kRequest ? 400 : 502;
    }
    error_reason_ = llhttp_errno_name(err);
  }
  return Event::kError;
}

uint64_t HttpParser::content_left() const {
  // Only mid-body: llhttp then counts the bytes still expected down in `content_length`, and
  // executing with that count at zero ends the message (its body state needs no input for it).
  bool counted = (parser_.flags & F_CONTENT_LENGTH) != 0 && (parser_.flags & F_CHUNKED) == 0;
  if (!in_message_ || !head_reported_ || !counted || body_bytes_ == 0 ||
      llhttp_get_errno(&parser_) != HPE_OK)
    return 0;
  return parser_.content_length;
}

void HttpParser::skip_content(uint64_t n) {
  uint64_t left = content_left();
  if (n > left) n = left;
  parser_.content_length -= n;
  body_bytes_ += n;
}

void HttpParser::resume() {
  if (llhttp_get_errno(&parser_) == HPE_PAUSED_UPGRADE) {
    llhttp_resume_after_upgrade(&parser_);
  } else if (llhttp_get_errno(&parser_) == HPE_PAUSED) {
    llhttp_resume(&parser_);
  }
}

HttpParser::Event HttpParser::finish() {
  // After a pause at the end of a head, llhttp enters its read-until-EOF state only when it runs
  // again: run it on no input, or a close-delimited body that is empty ends in an EOF error.
  llhttp_errno_t err = HPE_OK;
  if (llhttp_get_errno(&parser_) == HPE_OK) err = llhttp_execute(&parser_, "", 0);
  if (err == HPE_OK) err = llhttp_finish(&parser_);
  if (err == HPE_OK) return in_message_ ? Event::kNeedMore : Event::kMessageDone;
  if (err == HPE_PAUSED) return Event::kMessageDone;
  if (error_status_ == 0) {
    error_status_ = kind_ == Kind::kRequest ? 400 : 502;
    error_reason_ = llhttp_errno_name(err);
  }
  return Event::kError;
}

}  // namespace sg
