#include "proxy_core/http/cookie.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace sg {
namespace {

using Fields = std::vector<std::string_view>;
using Values = std::vector<std::string_view>;

TEST_CASE("our cookie is found among others in one field") {
  CHECK(find_cookie_values({"a=1; session_id=tok; b=2"}, "session_id") == Values{"tok"});
  CHECK(find_cookie_values({"a=1; b=2"}, "session_id").empty());
  CHECK(find_cookie_values({}, "session_id").empty());
}

TEST_CASE("several Cookie fields are read as one list") {
  Fields fields = {"a=1", "session_id=tok; c=3", "d=4"};
  CHECK(find_cookie_values(fields, "session_id") == Values{"tok"});
  CHECK(remove_cookie(fields, "session_id") == "a=1; c=3; d=4");
}

TEST_CASE("pairs split on semicolons with or without spaces and with tabs") {
  CHECK(find_cookie_values({"a=1;session_id=tok;b=2"}, "session_id") == Values{"tok"});
  CHECK(find_cookie_values({"a=1;\tsession_id=tok\t;b=2"}, "session_id") == Values{"tok"});
  CHECK(find_cookie_values({"  session_id = tok  "}, "session_id") == Values{"tok"});
  CHECK(remove_cookie({"a=1;session_id=tok;\tb=2 "}, "session_id") == "a=1; b=2");
}

TEST_CASE("a comma does not separate cookies") {
  CHECK(find_cookie_values({"a=1, session_id=tok"}, "session_id").empty());
  CHECK(find_cookie_values({"session_id=tok, a=1"}, "session_id") == Values{"tok, a=1"});
}

TEST_CASE("a quoted value keeps its quotes and is never a token") {
  const std::string quoted = "\"" + std::string(43, 'A') + "\"";
  const std::string field = "session_id=" + quoted;
  const Values values = find_cookie_values({field}, "session_id");
  REQUIRE(values.size() == 1);
  CHECK(values[0] == quoted);
  CHECK(remove_cookie({field}, "session_id").empty());
}

TEST_CASE("a name differing only in case is not our cookie") {
  CHECK(find_cookie_values({"Session_ID=tok"}, "session_id").empty());
  CHECK(remove_cookie({"Session_ID=tok"}, "session_id") == "Session_ID=tok");
}

TEST_CASE("a value may contain equals signs") {
  CHECK(find_cookie_values({"session_id=a=b=="}, "session_id") == Values{"a=b=="});
  CHECK(find_cookie_values({"x=session_id=1"}, "session_id").empty());
}

TEST_CASE("empty pairs and pairs without equals are skipped but forwarded") {
  CHECK(find_cookie_values({";; ;session_id=tok;;"}, "session_id") == Values{"tok"});
  CHECK(find_cookie_values({"session_id"}, "session_id").empty());
  CHECK(remove_cookie({";; a=1;;  ; session_id=tok; flag ;"}, "session_id") == "a=1; flag");
  CHECK(find_cookie_values({"session_id="}, "session_id") == Values{""});
}

TEST_CASE("removing the only cookie leaves nothing to forward") {
  CHECK(remove_cookie({"session_id=tok"}, "session_id").empty());
  CHECK(remove_cookie({"session_id=a", " session_id=b "}, "session_id").empty());
  CHECK(remove_cookie({""}, "session_id").empty());
}

TEST_CASE("every cookie with our name is removed, valid or not") {
  CHECK(remove_cookie({"session_id=x; a=1; session_id=\"y\"; b=2"}, "session_id") == "a=1; b=2");
}

TEST_CASE("duplicate cookies with our name are all reported in order") {
  CHECK(find_cookie_values({"session_id=one; session_id=two", "session_id=three"}, "session_id") ==
        Values{"one", "two", "three"});
}

TEST_CASE("parsing gives the same answer wherever one field is split in two") {
  const std::string input = "a=1; session_id=tok;b=2";
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    // Splitting a field is only equivalent when the cut falls on a ';' boundary; otherwise the
    // pieces are different cookies. Check that nothing crashes and boundary cuts agree.
    Fields fields = {std::string_view(input).substr(0, cut), std::string_view(input).substr(cut)};
    auto values = find_cookie_values(fields, "session_id");
    if (input[cut == 0 ? 0 : cut - 1] == ';' || cut == 0 || cut == input.size()) {
      CHECK(values == Values{"tok"});
    }
    (void)remove_cookie(fields, "session_id");
  }
}

}  // namespace
}  // namespace sg
