// session.status_path in the session gate (issue 14): the request looks the session up, writes
// nothing (no create, no refresh), and the body reports the record as read.
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "proxy_core/base/clock.h"
#include "proxy_core/session/session_gate.h"
#include "proxy_core/session/token.h"
#include "tests/unit/fake_session_store.h"

namespace sg {
namespace {

using testing::FakeSessionStore;

struct StatusExchange {
  Config config;
  SessionGate gate;
  WorkerMetrics metrics;
  std::optional<SessionGate::Outcome> outcome;

  StatusExchange() {
    config.session.idle_timeout = Millis{600 * 1000};
    config.session.absolute_timeout = Millis{3600 * 1000};
    config.session.status_path = "/session/status";
  }
  void begin(FakeSessionStore& store, const std::string& path, const std::string& token) {
    MessageHead h;
    h.method = "GET";
    h.target = path;
    if (!token.empty()) h.headers.push_back({"Cookie", "session_id=" + token});
    h.header_count = h.headers.size();
    gate.reset();
    outcome.reset();
    gate.begin(config, &store, &metrics, false, h, [&](SessionGate::Outcome o) { outcome = o; });
    REQUIRE(outcome.has_value());
  }
};

TEST_CASE("session status: a live session is reported from the record and nothing is written") {
  FakeSessionStore store;
  std::string token;
  REQUIRE(generate_token(token));
  SessionRecord r;
  r.handle.fill(3);
  const int64_t now = unix_now_ms();
  r.created_ms = now - 1000 * 1000;   // 1000 s ago
  r.last_seen_ms = now - 500 * 1000;  // idle for 500 s of 600 (a refresh would be due)
  r.attributes = {{"user", "al\"ice"}};
  store.live[hash_token(token)] = r;
  StatusExchange ex;
  ex.begin(store, "/session/status?x=1", token);
  CHECK(ex.outcome == SessionGate::Outcome::kProceed);
  CHECK(ex.gate.status_request());
  REQUIRE(ex.gate.stored_handle() != nullptr);
  const std::string body = ex.gate.status_body(now);
  CHECK(body ==
        "{\"idle_remaining_s\":100,\"absolute_remaining_s\":2600,\"user\":\"al\\\"ice\"}\n");
  CHECK(store.writes() == 0);
  CHECK_FALSE(ex.gate.sets_cookie());
}

TEST_CASE("session status: without a session nothing is created and no cookie is set") {
  FakeSessionStore store;
  StatusExchange ex;
  ex.begin(store, "/session/status", "");
  CHECK(ex.outcome == SessionGate::Outcome::kProceed);
  CHECK(ex.gate.status_request());
  CHECK(ex.gate.stored_handle() == nullptr);
  CHECK(ex.gate.attributes() == nullptr);
  CHECK(store.writes() == 0);
  CHECK_FALSE(ex.gate.sets_cookie());
  // An unknown token: the same.
  std::string token;
  REQUIRE(generate_token(token));
  ex.begin(store, "/session/status", token);
  CHECK(ex.gate.stored_handle() == nullptr);
  CHECK(store.writes() == 0);
  // Another path still creates a session as usual.
  ex.begin(store, "/session/statusx", "");
  CHECK_FALSE(ex.gate.status_request());
  CHECK(store.creates == 1);
}

}  // namespace
}  // namespace sg
