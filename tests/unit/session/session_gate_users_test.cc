// The session gate and the per-user index (issue 14): destroy-others, destroy-user, the
// max_per_user notice, passive requests. Against the real memory store (synchronous).
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "proxy_core/gateway_state.h"
#include "proxy_core/session/session_gate.h"
#include "proxy_core/session/token.h"
#include "proxy_core/store/memory_store.h"

namespace sg {
namespace {

MessageHead head(const std::string& path, std::vector<HeaderField> headers, int status = 0) {
  MessageHead h;
  h.method = "GET";
  h.target = path;
  h.status = status;
  h.headers = std::move(headers);
  h.header_count = h.headers.size();
  return h;
}

struct Client {
  std::string token;
};

struct Gateway {
  Config config;
  MemoryStore store{Millis{3600 * 1000}, Millis{12 * 3600 * 1000}, 1000};
  WorkerMetrics metrics;

  // One exchange; returns the gate (for its injected headers and cookies).
  std::unique_ptr<SessionGate> exchange(Client& c, std::vector<HeaderField> response_headers,
                                        std::vector<HeaderField> request_headers = {},
                                        const std::string& path = "/") {
    auto gate = std::make_unique<SessionGate>();
    gate->reset();
    if (!c.token.empty()) request_headers.push_back({"Cookie", "session_id=" + c.token});
    std::optional<SessionGate::Outcome> outcome;
    gate->begin(config, &store, &metrics, false, head(path, std::move(request_headers)),
                [&](SessionGate::Outcome o) { outcome = o; });
    REQUIRE(outcome == SessionGate::Outcome::kProceed);
    bool done = false;
    gate->on_response(head("", std::move(response_headers), 200), [&] { done = true; });
    REQUIRE(done);
    for (const auto& [name, value] : gate->response_headers()) {
      if (name != "Set-Cookie") continue;
      const size_t eq = value.find('=');
      c.token = value.substr(eq + 1, value.find(';') - eq - 1);
    }
    return gate;
  }
  std::string injected(const SessionGate& g, const std::string& name) {
    for (size_t i = 0; i < g.injected_count(); ++i)
      if (g.injected()[i].first == name) return g.injected()[i].second;
    return "";
  }
  size_t sessions_of(const std::string& user) {
    size_t n = 0;
    store.list_user(user, unix_now_ms(),
                    [&](StoreStatus, std::vector<UserSession> v) { n = v.size(); });
    return n;
  }
};

TEST_CASE("destroy-others ends the other sessions of the user and keeps this one") {
  Gateway gw;
  Client a, b, c;
  for (Client* x : {&a, &b, &c})
    gw.exchange(*x, {{"X-Session-Set-User", "alice"}});
  REQUIRE(gw.sessions_of("alice") == 3);
  gw.exchange(a, {{"X-Session-Control", "destroy-others"}});
  CHECK(gw.sessions_of("alice") == 1);
  CHECK(gw.injected(*gw.exchange(a, {}), "X-Session-User") == "alice");
  CHECK(gw.injected(*gw.exchange(b, {}), "X-Session-User") == "");
}

TEST_CASE("destroy-user ends every session of the user, this one with an expired cookie") {
  Gateway gw;
  Client a, b;
  for (Client* x : {&a, &b})
    gw.exchange(*x, {{"X-Session-Set-User", "bob"}});
  auto g = gw.exchange(a, {{"X-Session-Control", "destroy-user"}});
  CHECK(gw.sessions_of("bob") == 0);
  CHECK(a.token.empty());  // the expired cookie has an empty value
}

TEST_CASE("destroy-others on a session without a user is refused and counted") {
  Gateway gw;
  Client a;
  gw.exchange(a, {});
  auto g = gw.exchange(a, {{"X-Session-Control", "destroy-others"}});
  CHECK(g->rejected_directives() == 1);
}

TEST_CASE("a login refused by max_per_user reject is announced once to the next request") {
  Gateway gw;
  gw.config.session.max_per_user = 1;
  gw.config.session.on_limit = UserLimitPolicy::kReject;
  Client a, b;
  gw.exchange(a, {{"X-Session-Set-User", "carol"}});
  auto login = gw.exchange(b, {{"X-Session-Set-User", "carol"}, {"X-Session-Set-Theme", "dark"}});
  CHECK(login->rejected_directives() == 1);
  auto next = gw.exchange(b, {});
  CHECK(gw.injected(*next, "X-Session-Limit") == "reached");
  CHECK(gw.injected(*next, "X-Session-User") == "");
  CHECK(gw.injected(*next, "X-Session-Theme") == "dark");  // the rest of the response was written
  CHECK(gw.injected(*gw.exchange(b, {}), "X-Session-Limit") == "");
  CHECK(gw.sessions_of("carol") == 1);
}

TEST_CASE("passive requests do not refresh the session") {
  Gateway gw;
  gw.config.session.passive_paths = {"/poll/*"};
  Client a;
  gw.exchange(a, {});
  gw.config.session.idle_timeout = Millis{1};  // the refresh is due at once (a tenth of 1 ms)
  auto g1 = gw.exchange(a, {}, {{"X-Session-Passive", "1"}});
  CHECK_FALSE(g1->sets_cookie());
  auto g2 = gw.exchange(a, {}, {}, "/poll/x");
  CHECK_FALSE(g2->sets_cookie());
  auto g3 = gw.exchange(a, {}, {{"X-Session-Passive", "0"}});
  CHECK(g3->sets_cookie());  // an ordinary request refreshes
}

}  // namespace
}  // namespace sg
