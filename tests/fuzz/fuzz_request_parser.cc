// Fuzz target: bytes from a client through the request path's pure logic, driven the way
// client_connection.cc drives it: HttpParser (requests) -> validate_request ->
// build_upstream_request, message after message, resuming after every pause.
//
// Input: byte 0 says where the stream is cut into two reads (0 = before the first byte, 255 =
// after the last), byte 1 picks options (bit 0: underscore_headers = "drop"; bit 1: the peer is a
// trusted proxy; bit 2: forward the Cookie header without our cookie; bit 3: tunnel websocket
// upgrades; bit 4: small parser limits). The rest is the stream.
//
// Invariants:
// - the parser consumes no more than it was given and always makes progress;
// - feeding the stream in one read or in two gives the same events, heads and bodies;
// - a Content-Length body delivers exactly Content-Length bytes;
// - the upstream head is well formed (split_wire_head), re-parses to the same request, carries
//   exactly one framing header matching the framing we chose, no hop-by-hop field, no field named
//   in the client's Connection header, and nothing under X-Session- but the injected fields, last;
// - with our cookie removed, the forwarded Cookie names no cookie `session_id`.
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/http/cookie.h"
#include "proxy_core/http/header_rewrite.h"
#include "proxy_core/http/http_parser.h"
#include "proxy_core/http/request_validation.h"
#include "proxy_core/session/session_cookie.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using sg::HttpParser;
using Event = HttpParser::Event;
using sg_fuzz::fold_name;
using sg_fuzz::WireHead;

constexpr std::string_view kCookieName = "session_id";
constexpr std::string_view kClientAddress = "192.0.2.7";
constexpr std::string_view kRequestId = "fuzz-request-id";

const sg::HeaderList& injected_fields() {
  static const sg::HeaderList fields = {{"X-Session-Id", "00112233445566778899aabbccddeeff"},
                                        {"X-Session-User", "alice"}};
  return fields;
}

struct Options {
  sg::UnderscorePolicy underscore = sg::UnderscorePolicy::kReject;
  bool peer_trusted = false;
  bool replace_cookie = false;
  bool tunnel = false;
  HttpParser::Limits limits{};
};

Options decode_options(uint8_t bits) {
  Options o;
  o.underscore = (bits & 1) ? sg::UnderscorePolicy::kDrop : sg::UnderscorePolicy::kReject;
  o.peer_trusted = (bits & 2) != 0;
  o.replace_cookie = (bits & 4) != 0;
  o.tunnel = (bits & 8) != 0;
  if (bits & 16) o.limits = {256, 8, 16};
  return o;
}

// The names the client's Connection fields list (every field: header_rewrite.cc honours them all).
std::vector<std::string> connection_tokens(const sg::MessageHead& head) {
  std::vector<std::string> tokens;
  for (size_t i = 0; i < head.header_count; ++i) {
    if (!sg::iequals(head.headers[i].name, "connection")) continue;
    std::string_view list = head.headers[i].value;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view item = sg::trim_ows(list.substr(0, comma));
      if (!item.empty()) tokens.emplace_back(item);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return tokens;
}

// Names the gateway itself writes into the upstream head, whatever the client's Connection says.
bool written_by_gateway(std::string_view name) {
  for (std::string_view own :
       {"host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "content-length",
        "transfer-encoding", "connection", "upgrade", "x-request-id"})
    if (sg::iequals(name, own)) return true;
  return fold_name(name).starts_with("x-session-");
}

void check_upstream_head(const sg::MessageHead& req, const sg::UpstreamRequestOptions& o,
                         const std::string& out) {
  const WireHead wire = sg_fuzz::split_wire_head(out);
  SG_FUZZ_CHECK(wire.start_line == req.method + " " + req.target + " HTTP/1.1");

  // Under the prefix: exactly the injected fields, last, in order.
  const sg::HeaderList& injected = injected_fields();
  const size_t n = wire.fields.size();
  SG_FUZZ_CHECK(n >= injected.size());
  const size_t tail = n - injected.size();
  for (size_t i = 0; i < n; ++i) {
    const bool reserved = fold_name(wire.fields[i].first).starts_with("x-session-");
    if (i < tail) {
      SG_FUZZ_CHECK(!reserved);
    } else {
      SG_FUZZ_CHECK(wire.fields[i].first == injected[i - tail].first);
      SG_FUZZ_CHECK(wire.fields[i].second == injected[i - tail].second);
    }
  }

  // Framing: one header, ours (request smuggling is two views of where a body ends).
  SG_FUZZ_CHECK(wire.count("transfer-encoding") == (o.framing == sg::BodyFraming::kChunked));
  const size_t lengths = wire.count("content-length");
  SG_FUZZ_CHECK(lengths == (o.framing == sg::BodyFraming::kContentLength));
  if (lengths == 1)
    SG_FUZZ_CHECK(wire.values("content-length")[0] == std::to_string(o.content_length));

  // Hop by hop (RFC 9110 §7.6.1): only what we add for a tunnel.
  SG_FUZZ_CHECK(wire.count("connection") == (o.tunnel_websocket ? 1u : 0u));
  SG_FUZZ_CHECK(wire.count("upgrade") == (o.tunnel_websocket ? 1u : 0u));
  for (std::string_view hop : {"te", "trailer", "keep-alive", "expect", "http2-settings"})
    SG_FUZZ_CHECK(wire.count(hop) == 0);
  for (const auto& [name, value] : wire.fields)
    SG_FUZZ_CHECK(!(name.size() > 6 && sg::iequals(name.substr(0, 6), "proxy-")));
  for (const std::string& token : connection_tokens(req)) {
    if (written_by_gateway(token)) continue;
    SG_FUZZ_CHECK(wire.count(token) == 0);
  }

  // Host is never dropped; the X-Forwarded-* fields are ours.
  SG_FUZZ_CHECK(wire.count("host") == req.count("host"));
  SG_FUZZ_CHECK(wire.count("x-forwarded-for") == 1);
  SG_FUZZ_CHECK(wire.count("x-forwarded-proto") == 1);
  SG_FUZZ_CHECK(wire.count("x-forwarded-host") <= 1);
  SG_FUZZ_CHECK(wire.count("x-request-id") == 1);
  SG_FUZZ_CHECK(wire.values("x-request-id")[0] == kRequestId);
  if (!o.peer_trusted) {
    SG_FUZZ_CHECK(wire.values("x-forwarded-for")[0] == kClientAddress);
    SG_FUZZ_CHECK(wire.values("x-forwarded-proto")[0] == o.scheme);
    // What a proxy would say about the client never comes from an untrusted peer.
    for (const auto& [name, value] : wire.fields) {
      const std::string folded = fold_name(name);
      SG_FUZZ_CHECK(!folded.starts_with("x-forwarded-") || written_by_gateway(name));
      for (std::string_view forwarding : {"forwarded", "x-real-ip", "x-client-ip", "true-client-ip",
                                          "front-end-https", "x-url-scheme"})
        SG_FUZZ_CHECK(folded != forwarding);
    }
  }
  // X-Forwarded-Host, ours or a trusted proxy's, is always a valid host.
  for (std::string_view host : wire.values("x-forwarded-host"))
    SG_FUZZ_CHECK(sg::is_valid_host(host));

  // Our cookie never reaches the application when the caller removed it.
  if (o.replace_cookie) {
    const std::vector<std::string_view> cookies = wire.values("cookie");
    SG_FUZZ_CHECK(cookies.size() <= 1);
    SG_FUZZ_CHECK(sg::find_cookie_values(cookies, kCookieName).empty());
  }

  // What we send must parse, with the same strict parser, to the request we meant.
  HttpParser upstream(HttpParser::Kind::kRequest, {1u << 20, 10000, 4096});
  size_t used = 0;
  const Event ev = upstream.execute(out.data(), out.size(), used);
  SG_FUZZ_CHECK(ev == Event::kHead || ev == Event::kHeadDone ||
                (ev == Event::kUpgrade && o.tunnel_websocket));
  const sg::MessageHead& again = upstream.head();
  SG_FUZZ_CHECK(again.method == req.method);
  SG_FUZZ_CHECK(again.target == req.target);
  SG_FUZZ_CHECK(again.header_count == wire.fields.size());
  SG_FUZZ_CHECK(again.chunked == (o.framing == sg::BodyFraming::kChunked));
  SG_FUZZ_CHECK(again.has_content_length == (o.framing == sg::BodyFraming::kContentLength));
  if (again.has_content_length) SG_FUZZ_CHECK(again.content_length == o.content_length);
}

void describe(const sg::MessageHead& h, std::string& transcript) {
  transcript += "head " + h.method + " " + h.target + " " + std::to_string(h.version_major) + "." +
                std::to_string(h.version_minor);
  for (size_t i = 0; i < h.header_count; ++i)
    transcript += "\n  " + h.headers[i].name + ": " + h.headers[i].value;
  transcript += "\n  chunked=" + std::to_string(h.chunked) +
                " length=" + std::to_string(h.has_content_length) + "/" +
                std::to_string(h.content_length) + " keep_alive=" + std::to_string(h.keep_alive) +
                " upgrade=" + std::to_string(h.upgrade) + "\n";
}

// What the connection does with a complete request head. False: the request was refused and the
// connection closes.
bool on_request_head(HttpParser& parser, const Options& opt, std::string& transcript) {
  sg::MessageHead& req = parser.head();
  describe(req, transcript);
  const sg::RequestVerdict verdict = sg::validate_request(req, opt.underscore);
  if (!verdict.ok()) {
    SG_FUZZ_CHECK(verdict.status >= 400 && verdict.status <= 599);
    transcript += "refused " + std::to_string(verdict.status) + "\n";
    return false;
  }
  SG_FUZZ_CHECK(req.version_major == 1 && req.version_minor <= 1);
  SG_FUZZ_CHECK(req.count("host") <= 1);
  SG_FUZZ_CHECK(!req.target.empty());
  SG_FUZZ_CHECK(req.target[0] == '/' || (req.target == "*" && req.method == "OPTIONS"));
  for (size_t i = 0; i < req.header_count; ++i)
    SG_FUZZ_CHECK(req.headers[i].name.find('_') == std::string::npos);

  std::vector<std::string_view> cookie_fields;
  for (size_t i = 0; i < req.header_count; ++i)
    if (sg::iequals(req.headers[i].name, "cookie")) cookie_fields.push_back(req.headers[i].value);
  const std::vector<std::string_view> values = sg::find_cookie_values(cookie_fields, kCookieName);
  const std::vector<std::string_view> candidates = sg::token_candidates(values);
  SG_FUZZ_CHECK(candidates.size() <= sg::kMaxTokenCandidates);
  const std::string forwarded_cookie = sg::remove_cookie(cookie_fields, kCookieName);

  sg::UpstreamRequestOptions o;
  o.client_address = kClientAddress;
  o.peer_trusted = opt.peer_trusted;
  o.scheme = "https";
  o.tunnel_websocket = opt.tunnel && req.upgrade;
  if (req.chunked) {
    o.framing = sg::BodyFraming::kChunked;
  } else if (req.has_content_length) {
    o.framing = sg::BodyFraming::kContentLength;
    o.content_length = req.content_length;
  }
  o.replace_cookie = opt.replace_cookie && !cookie_fields.empty();
  o.cookie_value = forwarded_cookie;
  o.injected = &injected_fields();
  size_t removed_reserved = 0;
  o.removed_reserved = &removed_reserved;
  o.request_id = kRequestId;
  std::string out;
  sg::build_upstream_request(req, o, out);
  check_upstream_head(req, o, out);

  size_t reserved = 0;
  for (size_t i = 0; i < req.header_count; ++i)
    if (fold_name(req.headers[i].name).starts_with("x-session-")) ++reserved;
  // Fields dropped earlier (hop by hop, named in Connection) are not counted as reserved.
  SG_FUZZ_CHECK(removed_reserved <= reserved);

  transcript += out;
  return true;
}

// Feeds `stream` in two reads cut at `cut`; returns what happened, for comparing runs.
std::string run(std::string_view stream, size_t cut, const Options& opt) {
  HttpParser parser(HttpParser::Kind::kRequest, opt.limits);
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
        if (!on_request_head(parser, opt, transcript)) return false;
        parser.resume();
        return true;
      case Event::kHeadDone:
        SG_FUZZ_CHECK(!parser.in_message());
        SG_FUZZ_CHECK(body.empty());
        if (!on_request_head(parser, opt, transcript)) return false;
        transcript += "done\n";
        parser.resume();
        return true;
      case Event::kMessageDone: {
        const sg::MessageHead& head = parser.head();
        SG_FUZZ_CHECK(parser.body_bytes() == body.size());
        if (head.has_content_length && !head.chunked)
          SG_FUZZ_CHECK(body.size() == head.content_length);
        transcript += "body " + body + "\ndone\n";
        body.clear();
        parser.resume();
        return true;
      }
      case Event::kUpgrade:
        if (!parser.head_reported()) on_request_head(parser, opt, transcript);
        transcript += "upgrade\n";
        return false;
      case Event::kError:
        SG_FUZZ_CHECK(parser.error_status() == 400 || parser.error_status() == 431 ||
                      parser.error_status() == 505);
        // Not the status: when a message breaks two rules, which one llhttp reports first
        // depends on where the reads end (a field name over max_headers is seen at a read's
        // end before the bad byte after it: 431 in two reads, 400 in one).
        transcript += "error\n";
        return false;
    }
    return true;
  });
  if (!whole) return transcript;
  transcript += "eof in_message=" + std::to_string(parser.in_message()) + " body " + body + "\n";
  return transcript;
}

}  // namespace

SG_FUZZ_ENTRY(request_parser) {
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
