// ResponseReader: the reading half of an HTTP/1 client on one upstream connection. It parses one
// response after another (HttpParser, strict), reports each final head, the decoded body and the
// end to its Events, holds the unparsed rest while the head's receiver is busy (the session store
// applying directives), and decides whether the connection may carry another request.
//
// No I/O: the connection feeds it the bytes it reads (tests feed it strings). Not thread-safe;
// one per connection, reset by begin() for each request.
#pragma once

#include <cstddef>
#include <string>

#include "proxy_core/http/http_message.h"
#include "proxy_core/http/http_parser.h"

namespace sg {

class ResponseReader {
 public:
  class Events {
   public:
    virtual ~Events() = default;
    // A final head (1xx interim heads are skipped here; a 101 comes with on_upgrade). False holds
    // the response until resume().
    virtual bool on_head(const MessageHead& head) = 0;
    virtual void on_body(const char* data, size_t len) = 0;  // valid only during the call
    virtual void on_complete() = 0;
    // A 101 head; `rest` is what followed it (not HTTP any more).
    virtual void on_upgrade(const MessageHead& head, const char* rest, size_t len) = 0;
    virtual void on_bad_response(const char* why) = 0;
    // While a response is held the connection should not read: true on hold, false on resume
    // (called before the held bytes are parsed, so a pause they cause stays in force).
    virtual void hold_reading(bool held) = 0;
    // Asked between events: false stops parsing (the receiver gave the connection up).
    virtual bool still_reading() const = 0;
  };

  ResponseReader(Events* events, HttpParser::Limits limits);

  // A new request went out: the next bytes start its response. `head_request`: the response
  // has no body whatever its headers say.
  void begin(bool head_request);
  // Bytes read from the connection. Stops at the end of the response; bytes after it (in this
  // call or a later one) make the connection unusable (see reusable()) and are dropped. Returns
  // how many bytes belonged to this response (held bytes count as used).
  size_t feed(const char* data, size_t len);
  // Goes on after on_head returned false: reports the end of a bodyless response, or parses the
  // bytes held back.
  void resume();
  // The upstream closed: true when that ends a close-delimited body (RFC 9112 §6.3 rule 8).
  bool finish_at_close();

  // Splice (the body around the parser): the bytes still to come of a Content-Length body in
  // progress, else 0 (no body yet, chunked, close-delimited, held).
  uint64_t raw_body_left() const { return held_ || done_ ? 0 : parser_.content_left(); }
  // `n` (at most raw_body_left()) body bytes went around the parser. When none is left the
  // response ends here (on_complete), exactly as if they had been parsed.
  void skip_body(uint64_t n);

  // A final head was taken by the receiver (and not held).
  bool head_taken() const { return head_taken_; }
  bool held() const { return held_; }
  // The response completed in step: keep-alive, nothing after it.
  bool reusable() const { return !dirty_ && parser_.should_keep_alive() && !parser_.in_message(); }
  const MessageHead& head() const { return parser_.head(); }

 private:
  bool take_head(HttpParser::Event ev, const char* rest, size_t len);
  void complete(size_t unparsed);

  Events* events_;
  HttpParser parser_;
  std::string held_rest_;
  bool head_taken_ = false;
  bool held_ = false;
  bool held_complete_ = false;  // the held head was a whole (bodyless) response
  bool done_ = false;           // the response ended
  bool dirty_ = false;          // bytes after the response: never reuse
};

}  // namespace sg
