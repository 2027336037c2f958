// Session pieces shared by fuzz_client_side.cc and fuzz_upstream_response.cc: a gateway
// configuration, a MemoryStore seeded with known sessions, and helpers that read our Set-Cookie.
//
// The MemoryStore answers inside each call (memory_store.h), so SessionGate runs to completion
// without a loop, exactly as it does in a worker with the embedded store.
//
// Seeded sessions (tokens are fixed so that the fuzzer can send them; the dictionaries list them):
// - kTokenLive: valid, seen just now (no refresh), attributes user=alice, role=admin;
// - kTokenStale: valid, seen 20 minutes ago (idle 1 h: a refresh with a new Set-Cookie is due);
// - kTokenExpired: idle for 2 hours, so looked up as not found (a new session is created);
// - kTokenGrace: rotated to kTokenRotated a moment ago, inside the grace window: the same session
//   (handle kHandleRotated, user=bob), with no Set-Cookie;
// - kTokenReplay: rotated to kTokenReplayLive with no grace: a replay, treated as a new visitor;
// - kTokenFirstVisit: not a token but a placeholder the harnesses replace with a first-visit token
//   (create = "on_return", first_visit_token.h) issued when the process starts: the fuzzer cannot
//   know one, so the placeholder lets it send one back.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/config/config.h"
#include "proxy_core/gateway_state.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/session/session_gate.h"
#include "proxy_core/session/token.h"
#include "proxy_core/store/memory_store.h"
#include "tests/fuzz/fuzz_support.h"

namespace sg_fuzz {

// Refused directives are logged as warnings: millions of lines would slow the fuzzer down.
inline void quiet_logs() {
  static const bool once = (sg::set_log_level(sg::LogLevel::kError), true);
  (void)once;
}

inline constexpr size_t kTokenChars = sg::kTokenChars;
inline constexpr std::string_view kTokenLive = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
inline constexpr std::string_view kTokenStale = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA";
inline constexpr std::string_view kTokenExpired = "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCA";
inline constexpr std::string_view kTokenGrace = "EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEA";
inline constexpr std::string_view kTokenRotated = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA";
inline constexpr std::string_view kTokenReplay = "GGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGA";
inline constexpr std::string_view kTokenReplayLive = "HHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHA";
inline constexpr std::string_view kTokenFirstVisit = "IIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIA";
inline constexpr std::string_view kHandleLive = "11111111111111111111111111111111";
inline constexpr std::string_view kHandleRotated = "44444444444444444444444444444444";
inline constexpr std::string_view kHandleStale = "22222222222222222222222222222222";

// A configuration close to the shipped gateway.toml, with a logout path and a small body limit
// when asked (bits of the harness's option byte decide).
inline sg::Config fuzz_config(std::string_view header_prefix, bool logout, uint64_t max_body) {
  sg::Config c;
  c.session.header_prefix = std::string(header_prefix);
  c.session.exclude = {"/static/*"};
  if (logout) c.session.logout_path = "/logout";
  c.session.max_attributes = 4;
  c.session.max_attribute_bytes = 96;
  c.limits.max_body_bytes = max_body;
  c.tls.strict_transport_security = "max-age=31536000";
  return c;
}

inline std::unique_ptr<sg::MemoryStore> seeded_store(const sg::Config& c) {
  auto store =
      std::make_unique<sg::MemoryStore>(c.session.idle_timeout, c.session.absolute_timeout, 4096);
  const int64_t now = sg::unix_now_ms();
  auto seed = [&](std::string_view token, uint8_t handle_byte, int64_t last_seen,
                  sg::SessionAttributes attrs) {
    sg::SessionRecord r;
    r.handle.fill(handle_byte);
    r.created_ms = last_seen;
    r.last_seen_ms = last_seen;
    r.attributes = std::move(attrs);
    bool ok = false;
    store->create(sg::hash_token(token), r,
                  [&](sg::StoreStatus s) { ok = s == sg::StoreStatus::kOk; });
    SG_FUZZ_CHECK(ok);
  };
  seed(kTokenLive, 0x11, now, {{"role", "admin"}, {"user", "alice"}});
  seed(kTokenStale, 0x22, now - 20 * 60 * 1000, {});
  seed(kTokenExpired, 0x33, now - 2 * 3600 * 1000, {});
  auto rotate = [&](std::string_view from, std::string_view to, int64_t grace_ms) {
    bool ok = false;
    store->rotate(sg::hash_token(from), sg::hash_token(to), sg::SessionChange{}, grace_ms, now,
                  [&](sg::StoreStatus s) { ok = s == sg::StoreStatus::kOk; });
    SG_FUZZ_CHECK(ok);
  };
  seed(kTokenGrace, 0x44, now, {{"user", "bob"}});
  rotate(kTokenGrace, kTokenRotated, 3600 * 1000);
  seed(kTokenReplay, 0x55, now, {});
  rotate(kTokenReplay, kTokenReplayLive, 0);
  return store;
}

// A first-visit token of this process's key (the gate's when session.secret_file is unset),
// issued once: what kTokenFirstVisit stands for in the harnesses' input.
inline const std::string& first_visit_token() {
  static const std::string token = [] {
    std::string error, t;
    auto key = sg::first_visit_key("", error);
    SG_FUZZ_CHECK(key != nullptr);
    sg::SessionHandle handle;
    int64_t created = 0;
    SG_FUZZ_CHECK(key->issue(sg::unix_now_ms(), t, handle, created));
    return t;
  }();
  return token;
}

// The input with every kTokenFirstVisit placeholder replaced (same length: cuts do not move).
inline std::string with_first_visit_token(std::string_view input) {
  std::string s(input);
  for (size_t at = s.find(kTokenFirstVisit); at != std::string::npos;
       at = s.find(kTokenFirstVisit, at + kTokenChars))
    s.replace(at, kTokenChars, first_visit_token());
  return s;
}

// Looks `token` up; the handle in hex when it names a live session, "" otherwise.
inline std::string live_handle(sg::SessionStore& store, std::string_view token) {
  std::string handle;
  bool answered = false;
  store.lookup(sg::hash_token(token), sg::unix_now_ms(), [&](sg::LookupResult r) {
    answered = true;
    if (r.status == sg::StoreStatus::kOk && r.record) handle = sg::handle_to_hex(r.record->handle);
  });
  SG_FUZZ_CHECK(answered);  // the memory store answers inside the call
  return handle;
}

// Our Set-Cookie as the gate built it: "<name>=<value>; attributes...".
struct OurCookie {
  std::string value;  // the token, or "" for the expiring cookie
  bool expired = false;
};

inline OurCookie parse_our_cookie(std::string_view set_cookie, std::string_view name) {
  SG_FUZZ_CHECK(set_cookie.size() > name.size() && set_cookie.substr(0, name.size()) == name &&
                set_cookie[name.size()] == '=');
  std::string_view rest = set_cookie.substr(name.size() + 1);
  const size_t semi = rest.find(';');
  SG_FUZZ_CHECK(semi != std::string_view::npos);
  OurCookie c;
  c.value = std::string(rest.substr(0, semi));
  c.expired = rest.find("; Max-Age=0;") != std::string_view::npos;
  // An expiring cookie has no value; a live one carries exactly a token (never anything a client
  // could have chosen: checked by the callers).
  SG_FUZZ_CHECK(c.expired ? c.value.empty() : sg::is_token_shaped(c.value));
  SG_FUZZ_CHECK(rest.find("; HttpOnly") != std::string_view::npos);
  SG_FUZZ_CHECK(set_cookie.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos);
  return c;
}

// The gate's Set-Cookie for this exchange (at most one: the last decision wins).
inline const std::string* gate_set_cookie(const sg::SessionGate& gate) {
  const std::string* found = nullptr;
  for (const auto& [name, value] : gate.response_headers()) {
    if (name != "Set-Cookie") continue;
    SG_FUZZ_CHECK(found == nullptr);
    found = &value;
  }
  SG_FUZZ_CHECK((found != nullptr) == gate.sets_cookie());
  return found;
}

// Replaces every occurrence of `from` in `s` (new tokens and handles are random: transcripts of
// two runs are compared with them named by their order of appearance).
inline void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

// Bytes between `from` and the end of its line replaced by `to` (Expires= depends on the clock).
inline void mask_after(std::string& s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + 1)) {
    size_t start = at + from.size();
    size_t end = s.find_first_of(";\r\n", start);
    if (end == std::string::npos) end = s.size();
    s.replace(start, end - start, to);
  }
}

}  // namespace sg_fuzz
