// HttpParser: llhttp (strict: no lenient flag is ever set) feeding a MessageHead and a body sink.
//
// The parser pauses so that the connection can do asynchronous work without buffering: after a
// head that a body follows (session lookup, upstream connect before the body streams) and after
// each message (pipelined requests wait until the previous response is done). A bodyless message
// pauses once, at its end. execute() reports which point it reached
// and how many bytes it consumed; the caller keeps the rest and feeds it again after resume().
//
// Limits beyond llhttp's own checks (RFC 9112 leaves them to us): head size and header count
// (431), chunk extensions over 4 KiB (400).
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <functional>

#include "proxy_core/http/http_message.h"

namespace sg {

class HttpParser {
 public:
  enum class Kind { kRequest, kResponse };
  enum class Event {
    kNeedMore,     // all input consumed, message not finished
    kHead,         // head complete and a body follows (paused); `head()` is filled
    kHeadDone,     // head of a bodyless message, which is thereby complete (paused)
    kMessageDone,  // the body of a message reported with kHead is complete (paused)
    kUpgrade,      // an upgrade/CONNECT message is complete; following bytes are not HTTP.
                   // head_reported() says whether its head came with an earlier kHead
    kError,        // error_status()/error_reason() say why; the connection must close
  };
  struct Limits {
    size_t max_header_bytes = 32 * 1024;
    size_t max_headers = 100;
    size_t max_chunk_extension_bytes = 4096;
  };
  // Receives body bytes (already de-chunked). Pointers are valid only during the call.
  using BodySink = std::function<void(const char* data, size_t len)>;

  HttpParser(Kind kind, Limits limits);
  HttpParser(const HttpParser&) = delete;
  HttpParser& operator=(const HttpParser&) = delete;

  void set_body_sink(BodySink sink) { body_sink_ = std::move(sink); }
  void set_limits(Limits limits) { limits_ = limits; }
  // Responses only: the request was HEAD, so the response has no body whatever its headers say.
  void set_expect_no_body(bool value) { expect_no_body_ = value; }

  // Parses from `data`; sets `consumed` to the bytes used. After kHead or kMessageDone, call
  // resume() before feeding the remaining bytes.
  Event execute(const char* data, size_t len, size_t& consumed);
  // execute(), moving `data` and `len` past the bytes it used.
  Event step(const char*& data, size_t& len) {
    size_t used = 0;
    Event ev = execute(data, len, used);
    data += used;
    len -= used;
    return ev;
  }
  void resume();
  // The peer closed: for a response delimited by close this completes the message.
  Event finish();
  // Start over on a new connection or after an upgrade was declined.
  void reset();

  MessageHead& head() { return head_; }
  const MessageHead& head() const { return head_; }
  // True when the message just completed allows the connection to be reused.
  bool should_keep_alive() const { return llhttp_should_keep_alive(&parser_) != 0; }
  // A response with neither Content-Length nor chunked: its body runs until the peer closes.
  bool body_until_eof() const { return llhttp_message_needs_eof(&parser_) != 0; }
  bool in_message() const { return in_message_; }
  bool head_reported() const { return head_reported_; }
  uint64_t body_bytes() const { return body_bytes_; }
  // The bytes still to come of a Content-Length body that the parser has started (at least one
  // body byte parsed, not paused), else 0: a body whose rest may go around the parser (splice).
  uint64_t content_left() const;
  // `n` (at most content_left()) body bytes went around the parser. Once none is left, the next
  // execute() (even of no bytes) ends the message (kMessageDone) as if they had been parsed.
  void skip_content(uint64_t n);

  int error_status() const { return error_status_; }
  const char* error_reason() const { return error_reason_; }

 private:
  static int on_message_begin(llhttp_t* p);
  static int on_method(llhttp_t* p, const char* at, size_t len);
  static int on_url(llhttp_t* p, const char* at, size_t len);
  static int on_status(llhttp_t* p, const char* at, size_t len);
  static int on_header_field(llhttp_t* p, const char* at, size_t len);
  static int on_header_value(llhttp_t* p, const char* at, size_t len);
  static int on_header_value_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);
  static int on_chunk_header(llhttp_t* p);
  static int on_chunk_extension(llhttp_t* p, const char* at, size_t len);
  static const llhttp_settings_t* settings();

  bool count_head_bytes(size_t len);
  int fail(int status, const char* reason);

  llhttp_t parser_;
  Kind kind_;
  Limits limits_;
  MessageHead head_;
  BodySink body_sink_;
  size_t head_bytes_ = 0;
  size_t chunk_extension_bytes_ = 0;
  uint64_t body_bytes_ = 0;
  bool field_open_ = false;  // the last callback was a header field (value not started)
  bool in_message_ = false;
  bool expect_no_body_ = false;
  bool head_reported_ = false;
  int error_status_ = 0;
  const char* error_reason_ = "";
};

}  // namespace sg
