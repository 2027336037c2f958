// The session gate against a fake store (no loop, no sockets): what it writes, when, and which
// Set-Cookie it sends, in the races of issue 13 (a slow request against a revocation, a destroy, a
// rotation), the rotation grace window, replays and logout.
#include "proxy_core/session/session_gate.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "proxy_core/gateway_state.h"
#include "proxy_core/session/token.h"
#include "tests/unit/fake_session_store.h"

namespace sg {
namespace {

using testing::FakeSessionStore;

Config test_config() {
  Config c;
  c.session.idle_timeout = Millis{3600 * 1000};
  c.session.logout_path = "/logout";
  return c;
}

MessageHead request(const std::string& path, const std::string& cookie = "") {
  MessageHead h;
  h.method = "GET";
  h.target = path;
  if (!cookie.empty()) h.headers.push_back({"Cookie", cookie});
  h.header_count = h.headers.size();
  return h;
}

MessageHead response(std::vector<HeaderField> headers = {}) {
  MessageHead h;
  h.status = 200;
  h.headers = std::move(headers);
  h.header_count = h.headers.size();
  return h;
}

// A stored session under a fresh token; last_seen `age_ms` ago.
struct Seeded {
  std::string token;
  TokenHash key;
};
Seeded seed(FakeSessionStore& store, SessionAttributes attrs = {}, int64_t age_ms = 0,
            uint8_t tag = 7) {
  Seeded s;
  REQUIRE(generate_token(s.token));
  s.key = hash_token(s.token);
  SessionRecord r;
  r.handle.fill(tag);
  r.created_ms = r.last_seen_ms = unix_now_ms() - age_ms;
  r.attributes = std::move(attrs);
  store.live[s.key] = r;
  return s;
}

// One exchange through a gate: begin, then (when it proceeds) the response.
struct Exchange {
  Config config = test_config();
  SessionGate gate;
  WorkerMetrics metrics;
  std::optional<SessionGate::Outcome> outcome;

  void begin(FakeSessionStore& store, const std::string& path, const std::string& cookie) {
    gate.reset();
    gate.begin(config, &store, &metrics, false, request(path, cookie),
               [&](SessionGate::Outcome o) { outcome = o; });
    REQUIRE(outcome.has_value());
  }
  void respond(std::vector<HeaderField> headers = {}) {
    bool done = false;
    gate.on_response(response(std::move(headers)), [&] { done = true; });
    REQUIRE(done);
  }
  std::string set_cookie() const {
    for (const auto& [name, value] : gate.response_headers())
      if (name == "Set-Cookie") return value;
    return "";
  }
  std::string injected(const std::string& name) const {
    for (size_t i = 0; i < gate.injected_count(); ++i)
      if (gate.injected()[i].first == name) return gate.injected()[i].second;
    return "";
  }
};

std::string cookie(const std::string& token) {
  return "session_id=" + token;
}

const SessionAttributes& attrs_of(FakeSessionStore& store, const TokenHash& key) {
  REQUIRE(store.live.count(key) == 1);
  return store.live[key].attributes;
}

TEST_CASE("a returning visit costs one lookup and no write when the refresh is not due") {
  FakeSessionStore store;
  Seeded s = seed(store, {{"role", "admin"}});
  Exchange x;
  x.begin(store, "/", cookie(s.token));
  CHECK(*x.outcome == SessionGate::Outcome::kProceed);
  CHECK(x.injected("X-Session-Role") == "admin");
  x.respond();
  CHECK(store.lookups == 1);
  CHECK(store.writes() == 0);
  CHECK(x.set_cookie().empty());
}

TEST_CASE("a slow request does not put back an attribute revoked while it ran") {
  FakeSessionStore store;
  Seeded s = seed(store, {{"role", "admin"}});
  Exchange slow, revoke;
  slow.begin(store, "/slow", cookie(s.token));  // reads role=admin
  revoke.begin(store, "/", cookie(s.token));
  revoke.respond({{"X-Session-Set-Role", ""}});
  CHECK(attrs_of(store, s.key).empty());
  slow.respond({{"X-Session-Set-Theme", "dark"}});
  CHECK(attrs_of(store, s.key) == SessionAttributes{{"theme", "dark"}});
  CHECK(store.last_change.set ==
        std::vector<std::pair<std::string, std::string>>{{"theme", "dark"}});
  CHECK(store.last_change.remove.empty());
}

TEST_CASE("a slow response after a destroy writes nothing and sends no cookie") {
  FakeSessionStore store;
  Seeded s = seed(store, {{"role", "admin"}}, /*age_ms=*/3600 * 1000 / 2);  // refresh due
  Exchange slow, logout;
  slow.begin(store, "/slow", cookie(s.token));
  logout.begin(store, "/", cookie(s.token));
  logout.respond({{"X-Session-Control", "destroy"}});
  CHECK(store.live.empty());
  slow.respond({{"X-Session-Set-Theme", "dark"}});
  CHECK(store.live.empty());  // not resurrected
  CHECK(slow.set_cookie().empty());
}

TEST_CASE("the idle refresh is decided at response time and folded into the one modify") {
  FakeSessionStore store;
  Seeded s = seed(store, {}, /*age_ms=*/3600 * 1000 / 5);
  Exchange x;
  x.begin(store, "/", cookie(s.token));
  CHECK(store.writes() == 0);  // nothing written at request time
  x.respond({{"X-Session-Set-User", "alice"}});
  CHECK(store.modifies == 1);
  CHECK(store.last_change.last_seen_ms > 0);
  CHECK(store.live[s.key].last_seen_ms >= unix_now_ms() - 1000);
  CHECK(x.set_cookie().find("session_id=" + s.token) == 0);
}

TEST_CASE("a refresh due on a request that a rotation overtook sends no stale cookie") {
  FakeSessionStore store;
  Seeded s = seed(store, {}, /*age_ms=*/3600 * 1000 / 5);
  Exchange slow, login;
  slow.begin(store, "/slow", cookie(s.token));
  login.begin(store, "/login", cookie(s.token));
  login.respond({{"X-Session-Control", "rotate"}, {"X-Session-Set-User", "alice"}});
  std::string fresh = login.set_cookie();
  CHECK(fresh.find("session_id=") == 0);
  CHECK(fresh.find(s.token) == std::string::npos);
  slow.respond();
  CHECK(slow.set_cookie().empty());  // the browser keeps the rotated token
}

TEST_CASE("a rotated-away token inside the grace window serves the same session, no cookie") {
  FakeSessionStore store;
  Seeded s = seed(store, {{"user", "alice"}}, /*age_ms=*/3600 * 1000 / 5);
  Exchange login;
  login.begin(store, "/login", cookie(s.token));
  login.respond({{"X-Session-Control", "rotate"}});
  REQUIRE(store.rotates == 1);
  store.live.begin()->second.last_seen_ms -= 3600 * 1000 / 5;  // a refresh would be due
  Exchange parallel;
  parallel.begin(store, "/img", cookie(s.token));
  CHECK(*parallel.outcome == SessionGate::Outcome::kProceed);
  CHECK(parallel.injected("X-Session-Id") == login.injected("X-Session-Id"));
  CHECK(parallel.injected("X-Session-User") == "alice");
  // Writes go to the live key; the old token gets no Set-Cookie (refresh due or not).
  parallel.respond({{"X-Session-Set-Theme", "dark"}});
  CHECK(parallel.set_cookie().empty());
  CHECK(store.live.size() == 1);
  CHECK(store.live.begin()->second.attributes.size() == 2);
}

TEST_CASE("a rotated-away token after the grace window is a counted replay and a new visitor") {
  FakeSessionStore store;
  Seeded s = seed(store, {{"user", "alice"}});
  Exchange login;
  login.config.session.rotation_grace = Millis{0};
  login.begin(store, "/login", cookie(s.token));
  login.respond({{"X-Session-Control", "rotate"}});
  REQUIRE(store.live.size() == 1);

  Exchange replay;
  SUBCASE("ignore: the session lives on") {
    replay.begin(store, "/", cookie(s.token));
    CHECK(store.live.size() == 2);  // the replayer got a new, empty session
    CHECK(replay.injected("X-Session-User").empty());
    CHECK(replay.injected("X-Session-Id") != login.injected("X-Session-Id"));
  }
  SUBCASE("destroy: the session ends") {
    replay.config.session.on_rotated_replay = OnRotatedReplay::kDestroy;
    replay.begin(store, "/", cookie(s.token));
    CHECK(store.destroys == 1);
    CHECK(store.live.size() == 1);  // only the replayer's new session
    CHECK(replay.injected("X-Session-User").empty());
  }
  CHECK(replay.metrics.rotated_token_replays.get() == 1);
}

TEST_CASE("logout answers 503 when the store did not confirm the destroy") {
  FakeSessionStore store;
  Seeded s = seed(store);
  store.destroy_status = StoreStatus::kUnavailable;
  Exchange x;
  x.begin(store, "/logout", cookie(s.token));
  CHECK(*x.outcome == SessionGate::Outcome::kUnavailable);
  CHECK(x.metrics.store_errors.get() == 1);
  store.destroy_status = StoreStatus::kOk;
  x.begin(store, "/logout", cookie(s.token));
  CHECK(*x.outcome == SessionGate::Outcome::kLogout);
  CHECK(store.live.empty());
}

TEST_CASE("with fail_open an unavailable store still never forwards logout_path") {
  FakeSessionStore store;
  Seeded s = seed(store);
  store.unavailable = true;
  Exchange x;
  x.config.session.store = StoreKind::kRedis;
  x.config.redis_store.on_unavailable = OnUnavailable::kFailOpen;
  x.begin(store, "/", cookie(s.token));
  CHECK(*x.outcome == SessionGate::Outcome::kProceed);
  x.begin(store, "/logout", cookie(s.token));
  CHECK(*x.outcome == SessionGate::Outcome::kUnavailable);
}

TEST_CASE("a destroy directive the store did not confirm still expires the cookie, counted") {
  FakeSessionStore store;
  Seeded s = seed(store);
  store.destroy_status = StoreStatus::kUnavailable;
  Exchange x;
  x.begin(store, "/", cookie(s.token));
  x.respond({{"X-Session-Control", "destroy"}});
  CHECK(x.set_cookie().find("Max-Age=0") != std::string::npos);
  CHECK(x.metrics.store_errors.get() == 1);
}

TEST_CASE("attributes the store refuses on bounds are counted and the refresh still happens") {
  FakeSessionStore store;
  Seeded s = seed(store, {{"a", "1"}}, /*age_ms=*/3600 * 1000 / 5);
  Exchange slow, other;
  slow.config.session.max_attributes = other.config.session.max_attributes = 2;
  slow.begin(store, "/slow", cookie(s.token));
  other.begin(store, "/", cookie(s.token));
  other.respond({{"X-Session-Set-B", "2"}});  // now a, b: full
  slow.respond({{"X-Session-Set-C", "3"}});   // fit at request time, not with b
  CHECK(slow.gate.rejected_directives() == 1);
  CHECK(attrs_of(store, s.key).size() == 2);
  CHECK(slow.set_cookie().find("session_id=" + s.token) == 0);
}

TEST_CASE("a set and a remove of one name in one response: the last one wins") {
  FakeSessionStore store;
  Seeded s = seed(store, {{"role", "admin"}});
  Exchange x;
  x.begin(store, "/", cookie(s.token));
  x.respond({{"X-Session-Set-Role", "user"}, {"X-Session-Set-Role", ""}});
  CHECK(attrs_of(store, s.key).empty());
}

}  // namespace
}  // namespace sg

namespace sg {
namespace {

// create = "on_return": the key is the per-process random one (no secret_file in the tests).
const FirstVisitKey& process_key() {
  std::string error;
  static std::shared_ptr<const FirstVisitKey> key = first_visit_key("", error);
  REQUIRE(key != nullptr);
  return *key;
}

std::string token_of(const std::string& set_cookie) {
  REQUIRE(set_cookie.rfind("session_id=", 0) == 0);
  return set_cookie.substr(11, kTokenChars);
}

struct OnReturn : Exchange {
  OnReturn() { config.session.create = SessionCreate::kOnReturn; }
};

TEST_CASE("on_return: a first visit gets a cookie and a handle and costs the store nothing") {
  FakeSessionStore store;
  OnReturn first;
  first.begin(store, "/", "");
  CHECK(*first.outcome == SessionGate::Outcome::kProceed);
  CHECK(first.injected("X-Session-Id").size() == 32);
  first.respond();
  CHECK(store.writes() == 0);
  std::string token = token_of(first.set_cookie());

  OnReturn second;
  second.begin(store, "/", cookie(token));
  CHECK(store.creates == 1);
  REQUIRE(store.live.count(hash_token(token)) == 1);
  CHECK(second.injected("X-Session-Id") == first.injected("X-Session-Id"));
  second.respond();
  CHECK(second.set_cookie().empty());  // the refresh is not due yet

  OnReturn third;  // now an ordinary stored session
  third.begin(store, "/", cookie(token));
  CHECK(store.creates == 1);
  CHECK(third.injected("X-Session-Id") == first.injected("X-Session-Id"));
}

TEST_CASE("on_return: a client-chosen token is never adopted") {
  FakeSessionStore store;
  std::string forged;
  REQUIRE(generate_token(forged));
  OnReturn x;
  x.begin(store, "/", cookie(forged));
  CHECK(store.creates == 0);
  CHECK(token_of(x.set_cookie()) != forged);  // a fresh first-visit token instead

  // Another key's token (another deployment, or a forged MAC) is not ours either.
  FirstVisitKey other(std::string(32, 'k'));
  std::string theirs;
  SessionHandle h;
  int64_t created = 0;
  REQUIRE(other.issue(unix_now_ms(), theirs, h, created));
  OnReturn y;
  y.begin(store, "/", cookie(theirs));
  CHECK(store.creates == 0);
  CHECK(token_of(y.set_cookie()) != theirs);
}

TEST_CASE("on_return: the timeouts count from the first visit") {
  FakeSessionStore store;
  std::string token;
  SessionHandle h;
  int64_t created = 0;
  OnReturn x;
  x.config.session.idle_timeout = Millis{3600 * 1000};
  x.config.session.absolute_timeout = Millis{3600 * 1000};
  SUBCASE("inside") {
    REQUIRE(process_key().issue(unix_now_ms() - 3500 * 1000, token, h, created));
    x.begin(store, "/", cookie(token));
    CHECK(store.creates == 1);
    CHECK(store.live[hash_token(token)].created_ms == created);
    x.respond();  // last seen at the first visit: the refresh is due and renews the cookie
    CHECK(x.set_cookie().find("session_id=" + token) == 0);
  }
  SUBCASE("past the absolute timeout") {
    REQUIRE(process_key().issue(unix_now_ms() - 3601 * 1000, token, h, created));
    x.begin(store, "/", cookie(token));
    CHECK(store.creates == 0);
    CHECK(token_of(x.set_cookie()) != token);
  }
}

TEST_CASE("on_return: an application write on the first response stores the session") {
  FakeSessionStore store;
  OnReturn first;
  first.begin(store, "/", "");
  first.respond({{"X-Session-Set-Cart", "3"}});
  std::string token = token_of(first.set_cookie());
  REQUIRE(store.live.count(hash_token(token)) == 1);
  CHECK(store.live[hash_token(token)].attributes == SessionAttributes{{"cart", "3"}});

  OnReturn login;  // a rotation on a first response stores it and moves it to a random token
  login.begin(store, "/", "");
  login.respond({{"X-Session-Control", "rotate"}, {"X-Session-Set-User", "bob"}});
  std::string rotated = token_of(login.set_cookie());
  REQUIRE(store.live.count(hash_token(rotated)) == 1);
  CHECK(store.live[hash_token(rotated)].attributes == SessionAttributes{{"user", "bob"}});
}

TEST_CASE("first-visit tokens: round trip, and one flipped bit is refused") {
  const FirstVisitKey& key = process_key();
  std::string token;
  SessionHandle h1, h2;
  int64_t c1 = 0, c2 = 0;
  REQUIRE(key.issue(1'700'000'000'123, token, h1, c1));
  CHECK(token.size() == kTokenChars);
  CHECK(is_token_shaped(token));
  CHECK(c1 == 1'700'000'000'000);
  REQUIRE(key.verify(token, h2, c2));
  CHECK(h1 == h2);
  CHECK(c1 == c2);
  for (size_t i = 0; i < kTokenChars - 1; ++i) {
    std::string bad = token;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    CHECK_FALSE(key.verify(bad, h2, c2));
  }
}

}  // namespace
}  // namespace sg
