// Fuzz target: the upstream response path with the session in it: the gateway's own
// ResponseReader (the upstream connection's response parsing, strict) -> SessionGate::on_response
// (the application's X-Session-Control and X-Session-Set-* directives, applied to a seeded
// MemoryStore, fuzz_session.h) -> build_client_response with the gate's Set-Cookie (and HSTS).
//
// Each final response in the stream answers one request of a keep-alive client that keeps a
// cookie jar: the request before it carries the jar's cookie (SessionGate::begin), and the jar
// takes whatever Set-Cookie the client got. So a rotate in one response is followed by a request
// with the new token, a destroy by a request without a cookie, and so on.
//
// Input: byte 0 picks options (bits 0-1: the jar starts with no cookie, the live session, the
// stale one (refresh due) or an unknown token; bit 2: requests are HEAD; bit 3: the client speaks
// HTTP/1.0; bit 4: TLS with HSTS; bit 5: header_prefix "X-Gw_"; bit 6: small parser limits;
// bit 7: the upstream closes after the last byte). Byte 1 says where the stream is cut into two
// reads (n/255 of its length). The rest is the upstream's byte stream.
//
// Invariants (any violation aborts):
// - the client head is well formed (split_wire_head: no CR, LF or NUL in any line, token names),
//   re-parses with the same strict parser to the same status and fields, with one framing;
// - nothing under the prefix (any case, '_' read as '-') reaches the client: no directive leaks;
// - no Set-Cookie for our cookie name but the gate's own, exactly once when the gate sets one;
// - directives do what design.md says, checked against the store: rotate -> a new token for the
//   same handle, the old token still that session inside rotation_grace; destroy -> the token
//   dead and the cookie expired;
//   attributes stay valid header material, and the next request's injected fields build a
//   well-formed upstream head; a refresh re-sends the same token;
// - the same stream in one read or two gives the same transcript (tokens and handles named by
//   order of appearance, dates masked).
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/http/cookie.h"
#include "proxy_core/http/header_rewrite.h"
#include "proxy_core/http/http_parser.h"
#include "proxy_core/http/response_reader.h"
#include "tests/fuzz/fuzz_session.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using sg::HttpParser;
using Event = HttpParser::Event;
using sg_fuzz::fold_name;
using sg_fuzz::sets_cookie_named;
using sg_fuzz::WireHead;

constexpr std::string_view kUnknownToken = "DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDA";

struct Options {
  sg::Config config;
  std::string initial_cookie;
  bool head_request = false;
  bool client_http11 = true;
  bool tls = false;
  bool peer_closes = false;
  HttpParser::Limits limits{};
};

Options decode_options(uint8_t bits) {
  Options o;
  o.config = sg_fuzz::fuzz_config((bits & 32) ? "X-Gw_" : "X-Session-", false, 0);
  constexpr std::string_view kJar[] = {"", sg_fuzz::kTokenLive, sg_fuzz::kTokenStale,
                                       kUnknownToken};
  o.initial_cookie = std::string(kJar[bits & 3]);
  o.head_request = (bits & 4) != 0;
  o.client_http11 = (bits & 8) == 0;
  o.tls = (bits & 16) != 0;
  if (bits & 64) o.limits = {256, 8, 16};
  o.peer_closes = (bits & 128) != 0;
  return o;
}

// What the application asked for, read independently of session_gate.cc.
struct Directives {
  bool rotate = false;
  bool destroy = false;
};

Directives read_directives(const sg::MessageHead& resp, std::string_view prefix) {
  Directives d;
  const std::string control = fold_name(prefix) + "control";
  for (size_t i = 0; i < resp.header_count; ++i) {
    // session_gate.cc compares the prefix case-insensitively but byte for byte ('_' is not '-'
    // there): a directive must be spelled with the configured prefix to take effect.
    const std::string& name = resp.headers[i].name;
    if (name.size() != control.size() || !sg::iequals(name.substr(0, prefix.size()), prefix) ||
        !sg::iequals(name.substr(prefix.size()), "control"))
      continue;
    const std::string_view v = sg::trim_ows(resp.headers[i].value);
    if (sg::iequals(v, "rotate")) d.rotate = true;
    if (sg::iequals(v, "destroy")) d.destroy = true;
  }
  return d;
}

struct Run {
  const Options* opt = nullptr;
  std::unique_ptr<sg::MemoryStore> store;
  sg::SessionGate gate;
  std::string jar;  // the client's cookie value ("" = none)
  std::string transcript;
  std::vector<std::string> names;  // random tokens and handles, named by first appearance
  std::string request_handle;      // the session the current request resolved to
  std::string request_token;
  sg::MessageHead request;
};

void name_randoms(Run& r, std::string& text) {
  for (size_t i = 0; i < r.names.size(); ++i)
    sg_fuzz::replace_all(text, r.names[i], "<random#" + std::to_string(i) + ">");
  sg_fuzz::mask_after(text, "Expires=", "<date>");
}

void remember_random(Run& r, std::string_view text) {
  if (text.empty()) return;
  for (std::string_view fixed : {sg_fuzz::kTokenLive, sg_fuzz::kTokenStale, kUnknownToken,
                                 sg_fuzz::kHandleLive, sg_fuzz::kHandleStale})
    if (text == fixed) return;
  for (const std::string& n : r.names)
    if (n == text) return;
  r.names.emplace_back(text);
}

// The request this response answers: the jar's cookie through SessionGate::begin.
void begin_request(Run& r) {
  const sg::Config& config = r.opt->config;
  sg::MessageHead& req = r.request;
  req.clear();
  req.method = r.opt->head_request ? "HEAD" : "GET";
  req.method_id = r.opt->head_request ? HTTP_HEAD : HTTP_GET;
  req.target = "/app";
  req.version_minor = r.opt->client_http11 ? 1 : 0;
  req.headers.resize(2);
  req.headers[0] = {"Host", "example.com"};
  req.header_count = 1;
  if (!r.jar.empty()) {
    req.headers[1] = {"Cookie", "theme=dark; " + config.session.cookie_name + "=" + r.jar};
    req.header_count = 2;
  }
  r.gate.reset();
  bool answered = false;
  r.gate.begin(config, r.store.get(), nullptr, r.opt->tls, req, [&](sg::SessionGate::Outcome o) {
    SG_FUZZ_CHECK(o == sg::SessionGate::Outcome::kProceed);
    answered = true;
  });
  SG_FUZZ_CHECK(answered);
  SG_FUZZ_CHECK(r.gate.injected_count() >= 1);
  r.request_handle = std::string(r.gate.handle());
  remember_random(r, r.request_handle);
  r.request_token = r.jar;
  if (const std::string* set_cookie = sg_fuzz::gate_set_cookie(r.gate)) {
    const sg_fuzz::OurCookie c = sg_fuzz::parse_our_cookie(*set_cookie, config.session.cookie_name);
    SG_FUZZ_CHECK(!c.expired);
    if (r.gate.event() == "new") {
      SG_FUZZ_CHECK(c.value != r.jar);  // never the client's choice
    } else {
      SG_FUZZ_CHECK(c.value == r.jar);  // a refresh
    }
    r.request_token = c.value;
    remember_random(r, c.value);
  }
  SG_FUZZ_CHECK(sg_fuzz::live_handle(*r.store, r.request_token) == r.request_handle);

  // The trusted headers this request carries: well-formed header material, handle first.
  sg::UpstreamRequestOptions o;
  o.client_address = "192.0.2.7";
  o.header_prefix = config.session.header_prefix;
  o.replace_cookie = r.gate.replace_cookie();
  o.cookie_value = r.gate.cookie_value();
  o.injected = &r.gate.injected();
  o.injected_count = r.gate.injected_count();
  std::string out;
  sg::build_upstream_request(req, o, out);
  const WireHead wire = sg_fuzz::split_wire_head(out);
  // The token is nowhere in the request but where the application itself put it: attribute
  // values are the application's words (it never sees a token, but the fuzzer knows the seeded
  // ones and may write them into an X-Session-Set-* value).
  SG_FUZZ_CHECK(wire.start_line.find(r.request_token) == std::string_view::npos);
  size_t reserved = 0;
  for (const auto& [name, value] : wire.fields) {
    const bool injected = fold_name(name).starts_with(fold_name(config.session.header_prefix));
    SG_FUZZ_CHECK(name.find(r.request_token) == std::string_view::npos);
    if (!injected) SG_FUZZ_CHECK(value.find(r.request_token) == std::string_view::npos);
    if (!injected) continue;
    ++reserved;
    for (char c : value)
      SG_FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f);
  }
  SG_FUZZ_CHECK(reserved == r.gate.injected_count());
  SG_FUZZ_CHECK(r.gate.injected_count() <= 1 + config.session.max_attributes);
}

void check_client_head(Run& r, const sg::MessageHead& resp, const sg::ClientResponseOptions& o,
                       const std::string& out) {
  const sg::Config& config = r.opt->config;
  const WireHead wire = sg_fuzz::split_wire_head(out);
  SG_FUZZ_CHECK(wire.start_line.starts_with("HTTP/1.1 " + std::to_string(resp.status) + " "));

  const std::string* ours = sg_fuzz::gate_set_cookie(r.gate);
  size_t our_cookies = 0;
  for (const auto& [name, value] : wire.fields) {
    SG_FUZZ_CHECK(!fold_name(name).starts_with(fold_name(config.session.header_prefix)));
    if (sg::iequals(name, "set-cookie") && sets_cookie_named(value, config.session.cookie_name)) {
      SG_FUZZ_CHECK(ours != nullptr && value == *ours);
      ++our_cookies;
    }
  }
  SG_FUZZ_CHECK(our_cookies == (ours != nullptr ? 1u : 0u));
  if (r.opt->tls) SG_FUZZ_CHECK(wire.count("strict-transport-security") >= 1);

  const size_t lengths = wire.count("content-length");
  const size_t codings = wire.count("transfer-encoding");
  if (!o.upgrade) {
    SG_FUZZ_CHECK(codings == (o.framing == sg::BodyFraming::kChunked ? 1u : 0u));
    if (codings == 1) SG_FUZZ_CHECK(wire.values("transfer-encoding")[0] == "chunked");
    if (o.framing == sg::BodyFraming::kContentLength) SG_FUZZ_CHECK(lengths == 1);
    if (o.framing == sg::BodyFraming::kChunked || o.framing == sg::BodyFraming::kUntilClose)
      SG_FUZZ_CHECK(lengths == 0);
  }
  if (o.force_no_store) {
    for (std::string_view v : wire.values("cache-control"))
      SG_FUZZ_CHECK(sg::list_contains_token(v, "no-store") ||
                    sg::list_contains_token(v, "private"));
    SG_FUZZ_CHECK(wire.count("cache-control") >= 1);
  }

  HttpParser client(HttpParser::Kind::kResponse, {1u << 20, 10000, 4096});
  client.set_expect_no_body(r.opt->head_request);
  size_t used = 0;
  const Event ev = client.execute(out.data(), out.size(), used);
  SG_FUZZ_CHECK(ev != Event::kError);
  const sg::MessageHead& again = client.head();
  SG_FUZZ_CHECK(again.status == resp.status);
  SG_FUZZ_CHECK(again.header_count == wire.fields.size());
  for (size_t i = 0; i < again.header_count; ++i)
    SG_FUZZ_CHECK(again.headers[i].name == wire.fields[i].first &&
                  again.headers[i].value == wire.fields[i].second);
}

// After on_response: the store and the jar agree with what the application asked for.
void check_directives(Run& r, const sg::MessageHead& resp) {
  const sg::Config& config = r.opt->config;
  const Directives d = read_directives(resp, config.session.header_prefix);
  const std::string* set_cookie = sg_fuzz::gate_set_cookie(r.gate);
  const std::string old_token = r.request_token;
  if (d.destroy) {
    SG_FUZZ_CHECK(set_cookie != nullptr);
    SG_FUZZ_CHECK(sg_fuzz::parse_our_cookie(*set_cookie, config.session.cookie_name).expired);
    SG_FUZZ_CHECK(sg_fuzz::live_handle(*r.store, old_token).empty());
    r.jar.clear();
    return;
  }
  if (d.rotate) {
    SG_FUZZ_CHECK(set_cookie != nullptr);
    const sg_fuzz::OurCookie c = sg_fuzz::parse_our_cookie(*set_cookie, config.session.cookie_name);
    SG_FUZZ_CHECK(!c.expired && c.value != old_token);
    // The old token serves the same session for rotation_grace (a page's parallel requests).
    SG_FUZZ_CHECK(sg_fuzz::live_handle(*r.store, old_token) == r.request_handle);
    SG_FUZZ_CHECK(sg_fuzz::live_handle(*r.store, c.value) == r.request_handle);
    remember_random(r, c.value);
    r.jar = c.value;
    return;
  }
  SG_FUZZ_CHECK(sg_fuzz::live_handle(*r.store, old_token) == r.request_handle);
  if (set_cookie != nullptr) {
    const sg_fuzz::OurCookie c = sg_fuzz::parse_our_cookie(*set_cookie, config.session.cookie_name);
    SG_FUZZ_CHECK(!c.expired && c.value == old_token);
  }
  r.jar = old_token;
}

// What the connection does with a final response head (exchange_response.cc: apply_directives,
// then on_response_head). False: the connection closes.
bool on_response_head(Run& r, const sg::MessageHead& resp) {
  const Options& opt = *r.opt;
  r.transcript += "head " + std::to_string(resp.status) +
                  " headers=" + std::to_string(resp.header_count) + "\n";
  if (resp.status < 200 && resp.status != 101) return true;  // interim: not forwarded
  if (resp.status == 101) return false;  // no tunnel was requested: refused (502)

  begin_request(r);
  bool answered = false;
  r.gate.on_response(resp, [&] {
    SG_FUZZ_CHECK(!answered);
    answered = true;
  });
  SG_FUZZ_CHECK(answered);
  check_directives(r, resp);

  sg::ClientResponseOptions o;
  o.header_prefix = opt.config.session.header_prefix;
  o.cookie_name = opt.config.session.cookie_name;
  o.client_http11 = opt.client_http11;
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
  o.force_no_store = r.gate.sets_cookie();
  sg::HeaderList added = r.gate.response_headers();
  if (opt.tls)
    added.emplace_back("Strict-Transport-Security", opt.config.tls.strict_transport_security);
  o.added = &added;
  std::string out;
  sg::build_client_response(resp, o, out);
  check_client_head(r, resp, o, out);
  name_randoms(r, out);
  r.transcript += out;
  return true;
}

// The receiving end of the reader: what the connection does with each event. One response after
// another: a complete one is followed by the next request (begin) on the same connection.
struct Receiver final : sg::ResponseReader::Events {
  Run* r = nullptr;
  std::string body;
  bool stopped = false;   // the connection is given up
  bool complete = false;  // the current response ended

  bool on_head(const sg::MessageHead& head) override {
    if (!on_response_head(*r, head)) stopped = true;
    return true;
  }
  void on_body(const char* data, size_t len) override {
    SG_FUZZ_CHECK(!stopped && !complete);
    body.append(data, len);
  }
  void on_complete() override {
    SG_FUZZ_CHECK(!complete);
    r->transcript += "body " + body + "\ndone\n";
    body.clear();
    complete = true;
  }
  void on_upgrade(const sg::MessageHead& head, const char*, size_t) override {
    on_response_head(*r, head);  // no tunnel was requested: refused (502)
    r->transcript += "upgrade refused\n";
    stopped = true;
  }
  void on_bad_response(const char*) override {
    r->transcript += "error\n";
    stopped = true;
  }
  void hold_reading(bool) override { SG_FUZZ_CHECK(false); }  // the memory store answers at once
  bool still_reading() const override { return !stopped; }
};

std::string run(std::string_view stream, size_t cut, const Options& opt) {
  Run r;
  r.opt = &opt;
  r.store = sg_fuzz::seeded_store(opt.config);
  r.jar = opt.initial_cookie;
  Receiver events;
  events.r = &r;
  sg::ResponseReader reader(&events, opt.limits);
  reader.begin(opt.head_request);
  const std::string_view reads[2] = {stream.substr(0, cut), stream.substr(cut)};
  size_t steps = 0;
  for (std::string_view pending : reads) {
    while (!pending.empty() && !events.stopped) {
      SG_FUZZ_CHECK(++steps <= 2 * stream.size() + 4);  // no livelock
      const size_t used = reader.feed(pending.data(), pending.size());
      SG_FUZZ_CHECK(used <= pending.size());
      pending.remove_prefix(used);
      if (events.complete) {
        SG_FUZZ_CHECK(!reader.held());
        events.complete = false;
        reader.begin(opt.head_request);  // the next request on this connection
      } else {
        SG_FUZZ_CHECK(pending.empty() || events.stopped);
      }
    }
  }
  if (events.stopped) return r.transcript;
  if (opt.peer_closes && reader.finish_at_close()) events.on_complete();
  r.transcript += "eof\n";
  return r.transcript;
}

}  // namespace

SG_FUZZ_ENTRY(upstream_response) {
  sg_fuzz::quiet_logs();
  if (size < 2) return 0;
  const Options opt = decode_options(data[0]);
  const std::string_view stream = sg_fuzz::as_text(data + 2, size - 2);
  const size_t cut = stream.size() * data[1] / 255;
  const std::string split = run(stream, cut, opt);
  const std::string whole = run(stream, stream.size(), opt);
  if (split != whole)
    std::fprintf(stderr, "cut at %zu:\n%s\n--- in one read:\n%s\n", cut, split.c_str(),
                 whole.c_str());
  SG_FUZZ_CHECK(split == whole);
  return 0;
}
