// Fuzz target: bytes from an upstream through the response path's pure logic, driven the way
// exchange_response.cc and client_http1.cc drive it: HttpParser (responses) -> build_client_response.
//
// Input: byte 0 says where the stream is cut into two reads (0 = before the first byte, 255 =
// after the last), byte 1 picks options (bit 0: the request was HEAD; bit 1: the client speaks
// HTTP/1.0; bit 2: announce Connection: close; bit 3: the gateway sets its cookie (Set-Cookie
// added, no-store forced); bit 4: a websocket tunnel was requested; bit 5: small parser limits;
// bit 6: the upstream closes after the last byte). The rest is the stream.
//
// Invariants:
// - the parser consumes no more than it was given and always makes progress;
// - feeding the stream in one read or in two gives the same events, heads and bodies;
// - a Content-Length body delivers exactly Content-Length bytes;
// - the client head is well formed (split_wire_head) and re-parses to the same status and fields;
//   nothing under X-Session- (in any case, '_' or '-') reaches the client; no Set-Cookie for
//   `session_id` but the gateway's own; the framing headers match the framing chosen; with a
//   cookie set every Cache-Control says no-store or private.
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/http/header_rewrite.h"
#include "proxy_core/http/http_parser.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using sg::HttpParser;
using Event = HttpParser::Event;
using sg_fuzz::fold_name;
using sg_fuzz::sets_cookie_named;
using sg_fuzz::WireHead;

constexpr std::string_view kCookieName = "session_id";
constexpr std::string_view kOurCookie =
    "session_id=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; Path=/; HttpOnly; SameSite=Lax";

struct Options {
  bool head_request = false;
  bool client_http11 = true;
  bool close = false;
  bool sets_cookie = false;
  bool tunnel = false;
  bool peer_closes = false;
  HttpParser::Limits limits{};
};

Options decode_options(uint8_t bits) {
  Options o;
  o.head_request = (bits & 1) != 0;
  o.client_http11 = (bits & 2) == 0;
  o.close = (bits & 4) != 0;
  o.sets_cookie = (bits & 8) != 0;
  o.tunnel = (bits & 16) != 0;
  if (bits & 32) o.limits = {256, 8, 16};
  o.peer_closes = (bits & 64) != 0;
  return o;
}

void check_client_head(const sg::MessageHead& resp, const sg::ClientResponseOptions& o,
                       const Options& opt, const std::string& out) {
  const WireHead wire = sg_fuzz::split_wire_head(out);
  SG_FUZZ_CHECK(resp.status >= 100 && resp.status <= 999);
  SG_FUZZ_CHECK(wire.start_line.starts_with("HTTP/1.1 " + std::to_string(resp.status) + " "));

  size_t ours = 0;
  for (const auto& [name, value] : wire.fields) {
    SG_FUZZ_CHECK(!fold_name(name).starts_with("x-session-"));
    if (sg::iequals(name, "set-cookie") && sets_cookie_named(value, kCookieName)) {
      SG_FUZZ_CHECK(value == kOurCookie);
      ++ours;
    }
  }
  SG_FUZZ_CHECK(ours == (opt.sets_cookie ? 1u : 0u));

  if (o.force_no_store) {
    const std::vector<std::string_view> cache = wire.values("cache-control");
    SG_FUZZ_CHECK(!cache.empty());
    for (std::string_view v : cache)
      SG_FUZZ_CHECK(sg::list_contains_token(v, "no-store") ||
                    sg::list_contains_token(v, "private"));
  }

  const size_t lengths = wire.count("content-length");
  SG_FUZZ_CHECK(wire.count("transfer-encoding") == (o.framing == sg::BodyFraming::kChunked));
  switch (o.framing) {
    case sg::BodyFraming::kContentLength:
      SG_FUZZ_CHECK(lengths == 1);
      break;
    case sg::BodyFraming::kNone:
      SG_FUZZ_CHECK(lengths <= 1);
      break;
    case sg::BodyFraming::kChunked:
    case sg::BodyFraming::kUntilClose:
      SG_FUZZ_CHECK(lengths == 0);
      break;
  }
  if (!o.upgrade) {
    SG_FUZZ_CHECK(wire.count("connection") == ((o.close || !o.client_http11) ? 1u : 0u));
    SG_FUZZ_CHECK(wire.count("upgrade") == 0);
  }
  for (std::string_view hop : {"te", "trailer", "keep-alive"})
    SG_FUZZ_CHECK(wire.count(hop) == 0);

  // What we send must parse, with the same strict parser, to the response we meant.
  HttpParser client(HttpParser::Kind::kResponse, {1u << 20, 10000, 4096});
  client.set_expect_no_body(opt.head_request);
  size_t used = 0;
  const Event ev = client.execute(out.data(), out.size(), used);
  SG_FUZZ_CHECK(ev != Event::kError);
  const sg::MessageHead& again = client.head();
  SG_FUZZ_CHECK(again.status == resp.status);
  SG_FUZZ_CHECK(again.header_count == wire.fields.size());
  SG_FUZZ_CHECK(again.chunked == (o.framing == sg::BodyFraming::kChunked));
  if (o.framing == sg::BodyFraming::kContentLength)
    SG_FUZZ_CHECK(again.has_content_length && again.content_length == resp.content_length);
}

void describe(const sg::MessageHead& h, std::string& transcript) {
  transcript += "head " + std::to_string(h.status) + " " + h.reason + " " +
                std::to_string(h.version_major) + "." + std::to_string(h.version_minor);
  for (size_t i = 0; i < h.header_count; ++i)
    transcript += "\n  " + h.headers[i].name + ": " + h.headers[i].value;
  transcript += "\n  chunked=" + std::to_string(h.chunked) +
                " length=" + std::to_string(h.has_content_length) + "/" +
                std::to_string(h.content_length) + " keep_alive=" + std::to_string(h.keep_alive) +
                " upgrade=" + std::to_string(h.upgrade) + "\n";
}

// What the connection does with a complete response head (exchange_response.cc and client_http1.cc,
// on_response_head). False: the connection closes.
bool on_response_head(HttpParser& parser, const Options& opt, std::string& transcript) {
  const sg::MessageHead& resp = parser.head();
  describe(resp, transcript);
  if (resp.status < 200 && resp.status != 101) return true;  // interim: not forwarded
  if (resp.status == 101 && !opt.tunnel) return false;       // an upgrade we did not ask for

  sg::ClientResponseOptions o;
  o.cookie_name = kCookieName;
  o.client_http11 = opt.client_http11;
  o.close = opt.close;
  const sg::HeaderList added = {{"Set-Cookie", std::string(kOurCookie)},
                                {"Strict-Transport-Security", "max-age=31536000"}};
  if (opt.sets_cookie) o.added = &added;
  if (resp.status == 101) {
    o.upgrade = true;
  } else {
    const bool no_body = opt.head_request || resp.status == 204 || resp.status == 304;
    if (no_body) {
      o.framing = sg::BodyFraming::kNone;
    } else if (resp.has_content_length && !resp.chunked) {
      o.framing = sg::BodyFraming::kContentLength;
    } else if (opt.client_http11) {
      o.framing = sg::BodyFraming::kChunked;
    } else {
      o.framing = sg::BodyFraming::kUntilClose;
      o.close = true;
    }
    o.force_no_store = opt.sets_cookie;
  }
  std::string out;
  sg::build_client_response(resp, o, out);
  check_client_head(resp, o, opt, out);
  transcript += out;
  return true;
}

void on_message_done(HttpParser& parser, std::string& body, std::string& transcript) {
  const sg::MessageHead& head = parser.head();
  SG_FUZZ_CHECK(parser.body_bytes() == body.size());
  if (parser.head_reported() && head.has_content_length && !head.chunked)
    SG_FUZZ_CHECK(body.size() == head.content_length);
  transcript += "body " + body + "\ndone\n";
  body.clear();
}

std::string run(std::string_view stream, size_t cut, const Options& opt) {
  HttpParser parser(HttpParser::Kind::kResponse, opt.limits);
  parser.set_expect_no_body(opt.head_request);
  std::string transcript;
  std::string body;
  parser.set_body_sink([&](const char* data, size_t len) { body.append(data, len); });
  const std::string_view reads[2] = {stream.substr(0, cut), stream.substr(cut)};
  const bool whole = sg_fuzz::feed_reads(parser, reads, 2 * stream.size() + 4, [&](Event ev) {
    switch (ev) {
      case Event::kNeedMore:  // feed_reads keeps it to itself
        return true;
      case Event::kHead:
        SG_FUZZ_CHECK(parser.in_message());
        if (!on_response_head(parser, opt, transcript)) return false;
        parser.resume();
        return true;
      case Event::kHeadDone:
        SG_FUZZ_CHECK(!parser.in_message());
        SG_FUZZ_CHECK(body.empty());
        if (!on_response_head(parser, opt, transcript)) return false;
        transcript += "done\n";
        parser.resume();
        return true;
      case Event::kMessageDone:
        on_message_done(parser, body, transcript);
        parser.resume();
        return true;
      case Event::kUpgrade:
        if (!parser.head_reported()) on_response_head(parser, opt, transcript);
        transcript += "upgrade\n";
        return false;
      case Event::kError:
        SG_FUZZ_CHECK(parser.error_status() == 502);
        // Not the status: when a message breaks two rules, which one llhttp reports first
        // depends on where the reads end (a field name over max_headers is seen at a read's
        // end before the bad byte after it: 431 in two reads, 400 in one).
        transcript += "error\n";
        return false;
    }
    return true;
  });
  if (!whole) return transcript;
  // Like the upstream connection, only mid-message: on an idle parser finish() says kMessageDone for
  // a message that never was.
  if (opt.peer_closes && parser.in_message()) {
    const Event ev = parser.finish();
    switch (ev) {
      case Event::kMessageDone:
        on_message_done(parser, body, transcript);
        break;
      case Event::kError:
        SG_FUZZ_CHECK(parser.error_status() == 502);
        transcript += "error at close\n";
        break;
      case Event::kNeedMore:
        transcript += "closed mid-message\n";
        break;
      default:
        SG_FUZZ_CHECK(!"finish() reports only kMessageDone, kNeedMore or kError");
    }
  }
  transcript += "eof in_message=" + std::to_string(parser.in_message()) + " body " + body + "\n";
  return transcript;
}

}  // namespace

SG_FUZZ_ENTRY(response_parser) {
  if (size < 2) return 0;
  const std::string_view stream = sg_fuzz::as_text(data + 2, size - 2);
  const size_t cut = stream.size() * data[0] / 255;
  const Options opt = decode_options(data[1]);
  const std::string split = run(stream, cut, opt);
  const std::string whole = run(stream, stream.size(), opt);
  if (split != whole) {
    std::fprintf(stderr, "cut at %zu:\n%s\n--- in one read:\n%s\n", cut, split.c_str(),
                 whole.c_str());
  }
  SG_FUZZ_CHECK(split == whole);
  return 0;
}
