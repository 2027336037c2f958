#include "proxy_core/policy/access_policy.h"

#include <doctest/doctest.h>

#include <initializer_list>
#include <string>
#include <utility>

namespace sg {
namespace {

MessageHead request(std::string method, std::string target,
                    std::initializer_list<std::pair<const char*, const char*>> headers = {}) {
  MessageHead head;
  head.method = std::move(method);
  head.target = std::move(target);
  for (const auto& [name, value] : headers)
    head.headers.push_back({name, value});
  head.header_count = head.headers.size();
  return head;
}

// [access] with the two example rules: /admin/* needs Role = admin, /account/* and
// /cart a signed-in user.
AccessConfig example_config() {
  AccessConfig c;
  c.login_url = "/login";
  c.api_paths = {"/api/*"};
  c.rules.push_back({{"/admin/*"}, {}, {{"role", "admin", false}}});
  c.rules.push_back({{"/account/*", "/cart"}, {}, {{"user", "", true}}});
  return c;
}

const char* kNavigate = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

TEST_CASE("a path no rule covers is allowed without a session") {
  const PolicyDecision d = decide_access(example_config(), request("GET", "/"), {});
  CHECK(d.allowed());
  CHECK(d.rule == -1);
  CHECK(d.status == 0);
}

TEST_CASE("a signed-in session passes a presence rule and a value rule it meets") {
  SessionAttributes attrs = {{"role", "admin"}, {"user", "alice"}};
  const SessionView session{&attrs};
  CHECK(decide_access(example_config(), request("GET", "/cart"), session).allowed());
  const PolicyDecision admin = decide_access(example_config(), request("GET", "/admin/x"), session);
  CHECK(admin.allowed());
  CHECK(admin.rule == 0);
}

TEST_CASE("a browser navigation without sign-in gets 303 to login_url with the return path") {
  const PolicyDecision d =
      decide_access(example_config(),
                    request("GET", "/account/orders?page=2&x=a b", {{"Accept", kNavigate}}), {});
  CHECK(d.outcome == AccessOutcome::kLoginRedirect);
  CHECK(d.status == 303);
  CHECK(d.location == "/login?next=/account/orders%3Fpage%3D2%26x%3Da%20b");
  CHECK(d.rule == 1);
}

TEST_CASE("Sec-Fetch-Mode navigate makes a browser navigation even with a JSON-ish Accept") {
  const PolicyDecision d = decide_access(
      example_config(),
      request("GET", "/cart", {{"Sec-Fetch-Mode", "navigate"}, {"Accept", "*/*"}}), {});
  CHECK(d.status == 303);
  CHECK(d.location == "/login?next=/cart");
}

TEST_CASE("login_url with a query gets the return parameter after an ampersand") {
  AccessConfig c = example_config();
  c.login_url = "https://sso.example/signin?app=shop";
  c.return_param = "back";
  const PolicyDecision d = decide_access(c, request("GET", "/cart", {{"Accept", kNavigate}}), {});
  CHECK(d.location == "https://sso.example/signin?app=shop&back=/cart");
}

TEST_CASE("API calls without sign-in get 401 with a JSON body, never a redirect") {
  const AccessConfig c = example_config();
  for (const auto& r : {request("GET", "/cart", {{"Accept", "application/json"}}),
                        request("GET", "/cart", {{"X-Requested-With", "XMLHttpRequest"}}),
                        request("POST", "/cart", {{"Accept", "application/json, text/html;q=0.5"}}),
                        request("GET", "/cart", {{"Accept", "*/*"}}), request("GET", "/cart")}) {
    const PolicyDecision d = decide_access(c, r, {});
    CAPTURE(r.headers.size());
    CHECK(d.outcome == AccessOutcome::kUnauthorized);
    CHECK(d.status == 401);
    CHECK(d.location.empty());
    CHECK(d.content_type == "application/json");
    CHECK(d.body == "{\"error\":\"sign-in required\",\"login_url\":\"/login\"}\n");
  }
}

TEST_CASE("a path in api_paths is an API call even for a browser navigation") {
  AccessConfig c = example_config();
  c.rules.push_back({{"/api/*"}, {}, {{"user", "", true}}});
  const PolicyDecision d = decide_access(
      c, request("GET", "/api/orders", {{"Sec-Fetch-Mode", "navigate"}, {"Accept", kNavigate}}),
      {});
  CHECK(d.status == 401);
}

TEST_CASE("a signed-in session that fails a value condition gets 403, browser or API") {
  SessionAttributes attrs = {{"role", "clerk"}, {"user", "bob"}};
  const SessionView session{&attrs};
  const PolicyDecision page =
      decide_access(example_config(), request("GET", "/admin/", {{"Accept", kNavigate}}), session);
  CHECK(page.outcome == AccessOutcome::kForbidden);
  CHECK(page.status == 403);
  CHECK(page.location.empty());
  const PolicyDecision api = decide_access(
      example_config(), request("GET", "/admin/", {{"Accept", "application/json"}}), session);
  CHECK(api.status == 403);
  CHECK(api.content_type == "application/json");
}

TEST_CASE("an attribute that is absent fails a value condition: not signed in means sign in") {
  SessionAttributes attrs = {{"theme", "dark"}};
  const SessionView session{&attrs};
  const PolicyDecision d =
      decide_access(example_config(), request("GET", "/admin/", {{"Accept", kNavigate}}), session);
  CHECK(d.status == 303);
}

TEST_CASE("the first matching rule decides, later rules are not consulted") {
  AccessConfig c;
  c.login_url = "/login";
  c.rules.push_back({{"/a/*"}, {}, {{"user", "", true}}});
  c.rules.push_back({{"/a/open"}, {}, {{"nobody", "", true}}});
  SessionAttributes attrs = {{"user", "alice"}};
  const PolicyDecision d = decide_access(c, request("GET", "/a/open"), SessionView{&attrs});
  CHECK(d.allowed());
  CHECK(d.rule == 0);
}

TEST_CASE("a rule with methods applies to those methods only") {
  AccessConfig c;
  c.login_url = "/login";
  c.rules.push_back({{"/cart"}, {"POST"}, {{"user", "", true}}});
  CHECK(decide_access(c, request("GET", "/cart"), {}).allowed());
  CHECK(decide_access(c, request("POST", "/cart"), {}).status == 401);
}

TEST_CASE("rules match the path without the query") {
  AccessConfig c = example_config();
  CHECK(decide_access(c, request("GET", "/cart?x=1"), {}).status == 401);
  CHECK(decide_access(c, request("GET", "/cartx"), {}).allowed());
}

TEST_CASE("the return path never carries an absolute URL or a protocol-relative path") {
  CHECK(return_path_value("/a/b?c=d") == "/a/b%3Fc%3Dd");
  CHECK(return_path_value("//evil.example/x") == "");
  CHECK(return_path_value("/\\evil.example") == "");
  CHECK(return_path_value("http://evil.example/x") == "");
  CHECK(return_path_value("evil") == "");
  CHECK(return_path_value("") == "");
  CHECK(return_path_value("/") == "/");
  // Encoded so that the login page reads one parameter back: no '&', '#', ':' or '%' unescaped.
  CHECK(return_path_value("/x&next=//evil#f:%") == "/x%26next%3D//evil%23f%3A%25");

  AccessConfig everything = example_config();
  everything.rules = {{{"/*"}, {}, {{"user", "", true}}}};
  const PolicyDecision protocol_relative =
      decide_access(everything, request("GET", "//evil.example/x", {{"Accept", kNavigate}}), {});
  CHECK(protocol_relative.status == 303);
  CHECK(protocol_relative.location == "/login");
  // An absolute-form target matches the rules by its path, and gets no return parameter.
  const PolicyDecision absolute = decide_access(
      example_config(), request("GET", "http://evil.example/cart", {{"Accept", kNavigate}}), {});
  CHECK(absolute.status == 303);
  CHECK(absolute.location == "/login");
}

TEST_CASE("the 401 body escapes the login URL as JSON") {
  AccessConfig c = example_config();
  c.login_url = "/login?a=\"<b>\"";
  const PolicyDecision d = decide_access(c, request("GET", "/cart"), {});
  CHECK(d.body ==
        "{\"error\":\"sign-in required\",\"login_url\":\"/login?a=\\\"\\u003cb\\u003e\\\"\"}\n");
}

TEST_CASE("Accept preference: html over json is a browser, json over html an API call") {
  const AccessConfig c = example_config();
  CHECK_FALSE(is_api_request(c, request("GET", "/x", {{"Accept", kNavigate}}), "/x"));
  CHECK_FALSE(is_api_request(
      c, request("GET", "/x", {{"Accept", "application/json;q=0.5, text/html"}}), "/x"));
  CHECK(is_api_request(c, request("GET", "/x", {{"Accept", "text/html;q=0.1, application/json"}}),
                       "/x"));
  CHECK(is_api_request(c, request("GET", "/x", {{"Accept", "text/html;q=0"}}), "/x"));
  CHECK(is_api_request(c, request("GET", "/x", {{"Accept", "text/*"}}), "/x"));
}

TEST_CASE("outcome names are the metric labels") {
  CHECK(std::string(access_outcome_name(AccessOutcome::kAllow)) == "allow");
  CHECK(std::string(access_outcome_name(AccessOutcome::kLoginRedirect)) == "login_redirect");
  CHECK(std::string(access_outcome_name(AccessOutcome::kUnauthorized)) == "unauthorized");
  CHECK(std::string(access_outcome_name(AccessOutcome::kForbidden)) == "forbidden");
}

}  // namespace
}  // namespace sg
