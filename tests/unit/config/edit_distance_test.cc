#include "proxy_core/config/edit_distance.h"

#include <doctest/doctest.h>

TEST_CASE("edit distance counts a swap of adjacent letters as one edit") {
  CHECK(sg::edit_distance("cookie_nmae", "cookie_name") == 1);
  CHECK(sg::edit_distance("listen", "LISTEN") == 0);
  CHECK(sg::edit_distance("", "abc") == 3);
  CHECK(sg::edit_distance("kitten", "sitting") == 3);
  CHECK(sg::closest_match("tsl", {"tls", "log"}) == "tls");
  CHECK_FALSE(sg::closest_match("metrics", {"server", "session"}).has_value());
}
