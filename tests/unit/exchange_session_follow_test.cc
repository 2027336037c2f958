// Issue 14 in the Exchange, on fakes (exchange_fakes.h): a WebSocket tunnel of a stored session is
// watched while it is open and closed with a close frame 1008 when its session ends; a response
// (or a request waiting for one) is pending while it runs, watched once it has run for the grace,
// and cancelled when its session ends, unless its own directive destroyed the session; and
// session.status_path is answered locally without a store write.
#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <string>

#include "proxy_core/exchange.h"
#include "proxy_core/http/websocket_close.h"
#include "proxy_core/session/session_status.h"
#include "proxy_core/session/token.h"
#include "proxy_core/session_follower.h"
#include "tests/unit/exchange_fakes.h"
#include "tests/unit/fake_session_store.h"

namespace sg {
namespace {

using testing::FakeChannel;
using testing::FakeSessionStore;
using testing::SlowDestroyStore;

constexpr int64_t kGrace = SessionFollower::kResponseGraceMs;

// An exchange on fakes whose store holds one session (user alice).
struct FollowRig : testing::ExchangeRig {
  explicit FollowRig(Config c = Config{}, FakeSessionStore* other = nullptr)
      : ExchangeRig(std::move(c)) {
    FakeSessionStore& s = other != nullptr ? *other : store;
    services.set_store(&s);
    REQUIRE(generate_token(token));
    SessionRecord r;
    r.handle.fill(0x5a);
    r.created_ms = r.last_seen_ms = unix_now_ms();
    r.attributes = {{"user", "alice"}};
    s.live[hash_token(token)] = r;
    handle = r.handle;
  }
  // A GET of the session, forwarded: the upstream has the request, no response yet.
  FakeChannel* forward(const std::string& path = "/events") {
    request("GET " + path + " HTTP/1.1\r\nHost: app\r\nCookie: session_id=" + token + "\r\n\r\n");
    FakeChannel* up = upstream();
    REQUIRE(up != nullptr);
    up->connected();
    return up;
  }
  // A WebSocket upgrade on the session, answered 101 by the application.
  void open_tunnel() {
    request(
        "GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Cookie: session_id=" +
        token + "\r\n\r\n");
    FakeChannel* up = upstream();
    REQUIRE(up != nullptr);
    up->connected();
    MessageHead head;
    head.status = 101;
    head.headers = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}};
    head.header_count = head.headers.size();
    up->user()->on_upstream_upgrade(up, head, "", 0);
    REQUIRE(exchange.in_tunnel());
  }
  // The follower's sweep, `ms` after the request went upstream.
  size_t sweep_after(int64_t ms) { return services.watch_.promote_due(services.now + ms, kGrace); }

  std::string token;
  SessionHandle handle{};
};

TEST_CASE("exchange follow: a long response is watched after the grace and cancelled at the end") {
  FollowRig rig;
  FakeChannel* up = rig.forward();
  up->respond(200, {{"Content-Type", "text/event-stream"}}, "data: 1\n\n", false);
  CHECK(rig.services.watch_.pending_count() == 1);  // linked, not watched: nothing stored
  CHECK(rig.services.watch_.sessions() == 0);
  CHECK(rig.sweep_after(kGrace - 1) == 0);
  CHECK(rig.services.watch_.end(rig.handle) == 0);  // an end now reaches it only by the check
  CHECK(rig.sweep_after(kGrace) == 1);
  CHECK(rig.services.watch_.watches(rig.handle));
  up->body("data: 2\n\n");
  CHECK(rig.services.watch_.end(rig.handle) == 1);
  CHECK(rig.down.cancels == 1);
  CHECK(rig.down.ends == 0);  // never a well-formed end
  CHECK(rig.down.finished.empty());
  CHECK(rig.down.body == "data: 1\n\ndata: 2\n\n");
  CHECK(up->closed);  // the application's side is closed, never pooled
  CHECK(rig.services.upstreams_.returned.empty());
  CHECK(rig.services.metrics_.responses_ended_session_ended.get() == 1);
  CHECK(rig.services.metrics_.tunnels_closed_session_ended.get() == 0);
  CHECK(up->user() == nullptr);      // detached: nothing of it reaches the exchange any more
  rig.exchange.downstream_closed();  // an HTTP/2 stream: the reset went out, the stream closes
  CHECK(rig.services.watch_.pending_count() == 0);
  CHECK(rig.services.watch_.watchers() == 0);
}

TEST_CASE("exchange follow: a response that ends within the grace is never watched") {
  FollowRig rig;
  FakeChannel* up = rig.forward();
  up->respond(200, {}, "short", false);
  up->body(" and done");
  up->complete();
  CHECK(rig.down.finished == std::vector<bool>{true});
  CHECK(rig.services.watch_.pending_count() == 0);
  CHECK(rig.sweep_after(10 * kGrace) == 0);
  CHECK(rig.services.watch_.sessions() == 0);
  CHECK(rig.services.upstreams_.returned.size() == 1);
  rig.exchange.reset();
  CHECK(rig.services.watch_.watchers() == 0);
}

TEST_CASE("exchange follow: a first visit that is not stored has nothing to follow") {
  Config c;
  c.session.create = SessionCreate::kOnReturn;
  FollowRig rig(c);
  rig.request("GET /anon HTTP/1.1\r\nHost: app\r\n\r\n");
  REQUIRE(rig.upstream() != nullptr);
  rig.upstream()->connected();
  CHECK(rig.exchange.session().stored_handle() == nullptr);
  CHECK(rig.services.watch_.pending_count() == 0);
}

TEST_CASE("exchange follow: a request still waiting for its response head is cancelled too") {
  FollowRig rig;
  FakeChannel* up = rig.forward("/poll");
  CHECK(rig.sweep_after(kGrace) == 1);
  CHECK(rig.services.watch_.end(rig.handle) == 1);
  CHECK(rig.down.cancels == 1);
  CHECK(rig.down.heads.empty());
  CHECK(rig.down.locals.empty());
  CHECK(up->closed);
  CHECK(rig.services.metrics_.responses_ended_session_ended.get() == 1);
}

TEST_CASE("exchange follow: a client that goes away first leaves nothing pending or watched") {
  FollowRig rig;
  rig.forward();
  rig.upstream()->respond(200, {}, "partial", false);
  CHECK(rig.sweep_after(kGrace) == 1);
  rig.exchange.downstream_closed();
  CHECK(rig.services.watch_.sessions() == 0);
  CHECK(rig.services.watch_.end(rig.handle) == 0);
  CHECK(rig.down.cancels == 0);
}

TEST_CASE("exchange follow: a response that destroys its own session is not cut off") {
  FollowRig rig;
  FakeChannel* up = rig.forward("/logout");
  CHECK(rig.sweep_after(kGrace) == 1);  // a slow application: watched before its head
  up->respond(200, {{"X-Session-Control", "destroy"}}, "bye ", false);
  CHECK(rig.services.watch_.pending_count() == 0);
  CHECK(rig.services.watch_.sessions() == 0);
  CHECK(rig.services.watch_.end(rig.handle) == 0);  // the bus's word of it comes back: nobody
  up->body("for now");
  up->complete();
  CHECK(rig.down.cancels == 0);
  CHECK(rig.down.body == "bye for now");
  CHECK(rig.down.ends == 1);
  CHECK(rig.services.metrics_.responses_ended_session_ended.get() == 0);
}

TEST_CASE("exchange follow: its own destroy heard before the store answers cuts nothing") {
  SlowDestroyStore slow;
  FollowRig rig(Config{}, &slow);
  FakeChannel* up = rig.forward("/logout");
  CHECK(rig.sweep_after(kGrace) == 1);
  CHECK_FALSE(up->respond(200, {{"X-Session-Control", "destroy"}}, "bye", false));
  REQUIRE(slow.pending);
  // A Redis subscriber may hear of the destroy before the store's reply reaches this exchange.
  CHECK(rig.services.watch_.end(rig.handle) == 1);
  CHECK(rig.down.cancels == 0);
  CHECK(rig.services.watch_.pending_count() == 1);  // decided again after the directives
  slow.pending();
  REQUIRE(rig.down.heads.size() == 1);
  CHECK(rig.down.body == "bye");
  CHECK(rig.services.watch_.pending_count() == 0);
  CHECK(rig.sweep_after(10 * kGrace) == 0);
  CHECK(rig.down.cancels == 0);
}

TEST_CASE("exchange follow: a tunnel's session end sends close 1008, closes both sides, counts") {
  FollowRig rig;
  rig.open_tunnel();
  CHECK(rig.services.watch_.sessions() == 1);
  CHECK(rig.services.watch_.watches(rig.handle));
  FakeChannel* up = rig.services.upstreams_.last();
  rig.down.body.clear();
  CHECK(rig.services.watch_.end(rig.handle) == 1);
  CHECK(rig.down.body == build_ws_close_frame(kWsClosePolicyViolation, "session ended"));
  CHECK(rig.down.finished == std::vector<bool>{false});  // closes after the frame
  CHECK(up->closed);
  CHECK(rig.services.metrics_.tunnels_closed_session_ended.get() == 1);
  rig.exchange.downstream_closed();
  CHECK(rig.services.watch_.sessions() == 0);
}

TEST_CASE("exchange follow: a tunnel that closes first is no longer watched") {
  FollowRig rig;
  rig.open_tunnel();
  CHECK(rig.services.watch_.pending_count() == 0);  // watched from its start, not pending
  rig.exchange.downstream_closed();
  CHECK(rig.services.watch_.sessions() == 0);
  CHECK(rig.services.watch_.end(rig.handle) == 0);
  CHECK(rig.services.metrics_.tunnels_closed_session_ended.get() == 0);
  rig.exchange.reset();  // pooled again: nothing left behind
  CHECK(rig.services.watch_.watchers() == 0);
}

TEST_CASE("exchange follow: the status path is answered from the record, no write, no upstream") {
  Config c;
  c.session.status_path = "/session/status";
  FollowRig rig(c);
  rig.request("GET /session/status HTTP/1.1\r\nHost: app\r\nCookie: session_id=" + rig.token +
              "\r\n\r\n");
  REQUIRE(rig.down.locals.size() == 1);
  CHECK(rig.down.locals[0].status == 200);
  CHECK(rig.down.locals[0].body.find("\"user\":\"alice\"") != std::string::npos);
  CHECK(rig.down.locals[0].body.find("\"idle_remaining_s\":") == 1);
  bool no_store = false;
  for (const auto& [name, value] : rig.down.locals[0].extra) {
    CHECK(name != "Set-Cookie");
    no_store = no_store || (name == "Cache-Control" && value == "no-store");
  }
  CHECK(no_store);
  CHECK(rig.store.writes() == 0);
  CHECK(rig.services.upstreams_.last() == nullptr);
}

TEST_CASE("exchange follow: the status path without a session is 401, other methods 405") {
  Config c;
  c.session.status_path = "/session/status";
  FollowRig rig(c);
  rig.request("GET /session/status HTTP/1.1\r\nHost: app\r\n\r\n");
  REQUIRE(rig.down.locals.size() == 1);
  CHECK(rig.down.locals[0].status == 401);
  CHECK(rig.down.locals[0].body == kNoSessionBody);
  rig.exchange.reset();
  rig.request(
      "POST /session/status HTTP/1.1\r\nHost: app\r\nContent-Length: 0\r\nCookie: "
      "session_id=" +
      rig.token + "\r\n\r\n");
  REQUIRE(rig.down.locals.size() == 2);
  CHECK(rig.down.locals[1].status == 405);
  CHECK(rig.store.writes() == 0);
  CHECK(rig.services.upstreams_.last() == nullptr);
}

}  // namespace
}  // namespace sg
