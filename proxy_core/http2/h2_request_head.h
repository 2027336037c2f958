// Turns the decoded fields of one HTTP/2 request header block into a MessageHead (RFC 9113 §8).
//
// nghttp2 checks most of §8 itself before a field reaches us (h2_session.cc lists what); this
// builder checks all of it again, so that the rules hold whatever nghttp2 lets through and are
// testable without it. The result is a version 2.0 MessageHead that validate_request
// (http/request_validation.h) accepts like an HTTP/1.1 one: method and method_id, target from
// :path, a single Host, the cookie crumbs of §8.2.3 joined into one Cookie field, and the
// Content-Length framing fields. Pure logic: no I/O.
#pragma once

#include <cstddef>
#include <string_view>

#include "proxy_core/http/http_message.h"

namespace sg {

enum class H2HeadVerdict {
  kOk,
  kMalformed,  // RFC 9113 §8.1.1: a stream error of type PROTOCOL_ERROR
  kTooLarge,   // over the header list limit: answered 431
  kBadMethod,  // a method llhttp does not know (HTTP/1.1 answers these 400 too): answered 400
};

class H2RequestHeadBuilder {
 public:
  // Over `max_header_list_bytes` (RFC 9113 §6.5.2 sizes) or over `max_fields` regular fields
  // (crumbs of one cookie count one each): kTooLarge.
  H2RequestHeadBuilder(size_t max_header_list_bytes, size_t max_fields)
      : max_bytes_(max_header_list_bytes), max_fields_(max_fields) {}

  // Ready for the next header block, keeping the capacity of its buffers.
  void reset();
  // One decoded field, in order. After a verdict other than kOk the rest is ignored.
  H2HeadVerdict add(std::string_view name, std::string_view value);
  // At the end of the header block: the head, or why there is none. `head` is overwritten (its
  // buffers are reused: a head that served a previous request allocates nothing). The strings
  // are moved out, not copied: after kOk the builder is spent until reset().
  H2HeadVerdict finish(MessageHead& head);

  H2HeadVerdict verdict() const { return verdict_; }

 private:
  H2HeadVerdict add_pseudo(std::string_view name, std::string_view value);
  H2HeadVerdict add_regular(std::string_view name, std::string_view value);
  H2HeadVerdict fail(H2HeadVerdict v) { return verdict_ = v; }

  size_t max_bytes_;
  size_t max_fields_;
  size_t list_bytes_ = 0;
  size_t fields_seen_ = 0;
  H2HeadVerdict verdict_ = H2HeadVerdict::kOk;
  bool regular_seen_ = false;
  bool has_method_ = false, has_scheme_ = false, has_path_ = false, has_authority_ = false;
  std::string method_, path_, authority_;
  std::string cookie_;  // crumbs joined with "; "
  bool has_cookie_ = false;
  MessageHead fields_;  // regular fields other than cookie, in order
};

// Is `name` a field an HTTP/2 message must not carry (RFC 9113 §8.2.2)? `te` is handled apart.
bool is_connection_specific_field(std::string_view name);

}  // namespace sg
