#include "proxy_core/session/session_status.h"

#include <doctest/doctest.h>

#include <string>

namespace sg {
namespace {

TEST_CASE("session status: remaining idle and absolute seconds and the user") {
  const std::string user = "alice";
  // Created at 1000 s, seen at 1500 s, now 1600 s; idle 1800 s, absolute 12 h.
  std::string body =
      render_session_status(1600'000, 1000'000, 1500'000, 1800'000, 43200'000, &user);
  CHECK(body == "{\"idle_remaining_s\":1700,\"absolute_remaining_s\":42600,\"user\":\"alice\"}\n");
}

TEST_CASE("session status: a session without a user says null") {
  std::string body = render_session_status(10'000, 0, 0, 60'000, 120'000, nullptr);
  CHECK(body == "{\"idle_remaining_s\":50,\"absolute_remaining_s\":110,\"user\":null}\n");
}

TEST_CASE("session status: seconds round down and never go below zero") {
  std::string body = render_session_status(10'999, 0, 0, 11'998, 5'000, nullptr);
  CHECK(body == "{\"idle_remaining_s\":0,\"absolute_remaining_s\":0,\"user\":null}\n");
  body = render_session_status(0, 0, 0, 1'999, 2'000, nullptr);
  CHECK(body == "{\"idle_remaining_s\":1,\"absolute_remaining_s\":2,\"user\":null}\n");
}

TEST_CASE("session status: the user is JSON-escaped") {
  const std::string user = "a\"b\\c\x01";
  std::string body = render_session_status(0, 0, 0, 1000, 1000, &user);
  CHECK(body ==
        "{\"idle_remaining_s\":1,\"absolute_remaining_s\":1,\"user\":\"a\\\"b\\\\c\\u0001\"}\n");
}

}  // namespace
}  // namespace sg
