// Issue 14 in the Exchange, on fakes (exchange_fakes.h): a WebSocket tunnel of a stored session is
// watched while it is open and closed with a close frame 1008 when its session ends, and
// session.status_path is answered locally without a store write.
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "proxy_core/exchange.h"
#include "proxy_core/http/websocket_close.h"
#include "proxy_core/session/session_status.h"
#include "proxy_core/session/token.h"
#include "tests/unit/exchange_fakes.h"
#include "tests/unit/fake_session_store.h"

namespace sg {
namespace {

using testing::FakeChannel;
using testing::FakeDownstream;
using testing::FakeServices;
using testing::FakeSessionStore;
using testing::ParsedRequest;

struct FollowRig {
  explicit FollowRig(Config c = Config{}) : services(std::move(c)), exchange(&services) {
    services.set_store(&store);
    REQUIRE(generate_token(token));
    SessionRecord r;
    r.handle.fill(0x5a);
    r.created_ms = r.last_seen_ms = unix_now_ms();
    r.attributes = {{"user", "alice"}};
    store.live[hash_token(token)] = r;
    handle = r.handle;
  }
  void request(const std::string& wire) {
    req = std::make_unique<ParsedRequest>(wire);
    REQUIRE(req->ok());
    exchange.begin(&down);
    exchange.on_request_head(req->head(), req->complete());
  }
  // A WebSocket upgrade on the session, answered 101 by the application.
  void open_tunnel() {
    request(
        "GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Cookie: session_id=" +
        token + "\r\n\r\n");
    FakeChannel* up = services.upstreams_.last();
    REQUIRE(up != nullptr);
    up->connected();
    MessageHead head;
    head.status = 101;
    head.headers = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}};
    head.header_count = head.headers.size();
    up->user()->on_upstream_upgrade(up, head, "", 0);
    REQUIRE(exchange.in_tunnel());
  }

  FakeSessionStore store;
  FakeServices services;
  FakeDownstream down;
  Exchange exchange;
  std::unique_ptr<ParsedRequest> req;
  std::string token;
  SessionHandle handle{};
};

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
