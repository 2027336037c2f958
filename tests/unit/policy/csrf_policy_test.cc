#include "proxy_core/policy/csrf_policy.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "proxy_core/policy/csrf_token.h"

namespace sg {
namespace {

using Opt = std::optional<std::string_view>;

CsrfConfig mode(CsrfMode m) {
  CsrfConfig c;
  c.mode = m;
  return c;
}

CsrfRequest post(Opt site, Opt origin, Opt referer) {
  CsrfRequest r;
  r.method = "POST";
  r.path = "/cart";
  r.scheme = "https";
  r.host = "shop.example";
  r.sec_fetch_site = site;
  r.origin = origin;
  r.referer = referer;
  return r;
}

CsrfVerdict verdict(const CsrfConfig& c, const CsrfRequest& r, std::string_view token = "") {
  return check_csrf(c, r, token).verdict;
}

TEST_CASE("csrf mode off checks nothing") {
  const CsrfConfig c = mode(CsrfMode::kOff);
  const CsrfDecision d = check_csrf(c, post("cross-site", "https://evil.example", Opt()), "");
  CHECK(d.verdict == CsrfVerdict::kAllow);
  CHECK(d.reason == CsrfReason::kNotChecked);
}

TEST_CASE("safe methods are never checked and every other method is") {
  const CsrfConfig c = mode(CsrfMode::kFetchMetadata);
  CsrfRequest r = post("cross-site", Opt(), Opt());
  for (const char* m : {"GET", "HEAD", "OPTIONS", "TRACE"}) {
    r.method = m;
    CAPTURE(m);
    CHECK(verdict(c, r) == CsrfVerdict::kAllow);
  }
  for (const char* m : {"POST", "PUT", "PATCH", "DELETE", "PROPFIND", "get"}) {
    r.method = m;
    CAPTURE(m);
    CHECK(verdict(c, r) == CsrfVerdict::kRefuse);
  }
}

TEST_CASE("fetch-metadata: Sec-Fetch-Site decides when present") {
  CsrfConfig c = mode(CsrfMode::kFetchMetadata);
  CHECK(verdict(c, post("same-origin", Opt(), Opt())) == CsrfVerdict::kAllow);
  CHECK(verdict(c, post("none", Opt(), Opt())) == CsrfVerdict::kAllow);
  CHECK(verdict(c, post(" Same-Origin ", Opt(), Opt())) == CsrfVerdict::kAllow);
  const CsrfDecision cross = check_csrf(c, post("cross-site", Opt(), Opt()), "");
  CHECK(cross.verdict == CsrfVerdict::kRefuse);
  CHECK(cross.reason == CsrfReason::kCrossSite);
  const CsrfDecision sibling = check_csrf(c, post("same-site", Opt(), Opt()), "");
  CHECK(sibling.verdict == CsrfVerdict::kRefuse);
  CHECK(sibling.reason == CsrfReason::kSameSite);
  CHECK(verdict(c, post("bogus", Opt(), Opt())) == CsrfVerdict::kRefuse);
  // A same-origin Origin does not outvote a cross-site Sec-Fetch-Site.
  CHECK(verdict(c, post("cross-site", "https://shop.example", Opt())) == CsrfVerdict::kRefuse);
  c.allow_same_site = true;
  CHECK(verdict(c, post("same-site", Opt(), Opt())) == CsrfVerdict::kAllow);
  CHECK(verdict(c, post("cross-site", Opt(), Opt())) == CsrfVerdict::kRefuse);
}

TEST_CASE("fetch-metadata: a trusted origin passes even cross-site") {
  CsrfConfig c = mode(CsrfMode::kFetchMetadata);
  c.trusted_origins = {"https://idp.example", "http://partner.example:8080"};
  CHECK(verdict(c, post("cross-site", "https://idp.example", Opt())) == CsrfVerdict::kAllow);
  CHECK(verdict(c, post("cross-site", "https://IDP.example:443", Opt())) == CsrfVerdict::kAllow);
  CHECK(verdict(c, post("cross-site", "http://partner.example:8080", Opt())) ==
        CsrfVerdict::kAllow);
  CHECK(verdict(c, post("cross-site", "http://partner.example", Opt())) == CsrfVerdict::kRefuse);
  CHECK(verdict(c, post("cross-site", "https://idp.example.evil", Opt())) == CsrfVerdict::kRefuse);
  CHECK(verdict(c, post(Opt(), "https://idp.example", Opt())) == CsrfVerdict::kAllow);
  CHECK(verdict(c, post(Opt(), Opt(), "https://idp.example/form")) == CsrfVerdict::kAllow);
}

TEST_CASE("fetch-metadata without Sec-Fetch-Site: Origin, else Referer, must be our origin") {
  const CsrfConfig c = mode(CsrfMode::kFetchMetadata);
  CHECK(verdict(c, post(Opt(), "https://shop.example", Opt())) == CsrfVerdict::kAllow);
  CHECK(verdict(c, post(Opt(), "https://shop.example:443", Opt())) == CsrfVerdict::kAllow);
  const CsrfDecision other = check_csrf(c, post(Opt(), "https://evil.example", Opt()), "");
  CHECK(other.verdict == CsrfVerdict::kRefuse);
  CHECK(other.reason == CsrfReason::kOriginMismatch);
  CHECK(verdict(c, post(Opt(), "http://shop.example", Opt())) == CsrfVerdict::kRefuse);
  CHECK(verdict(c, post(Opt(), "https://shop.example:8443", Opt())) == CsrfVerdict::kRefuse);
  CHECK(verdict(c, post(Opt(), "null", Opt())) == CsrfVerdict::kRefuse);
  // Origin outranks Referer, both ways.
  CHECK(verdict(c, post(Opt(), "https://evil.example", "https://shop.example/cart")) ==
        CsrfVerdict::kRefuse);
  CHECK(verdict(c, post(Opt(), "https://shop.example", "https://evil.example/")) ==
        CsrfVerdict::kAllow);
  CHECK(verdict(c, post(Opt(), Opt(), "https://shop.example/cart?x=1")) == CsrfVerdict::kAllow);
  CHECK(verdict(c, post(Opt(), Opt(), "https://shop.example.evil/")) == CsrfVerdict::kRefuse);
  CHECK(verdict(c, post(Opt(), Opt(), "https://user@shop.example/")) == CsrfVerdict::kRefuse);
}

TEST_CASE("fetch-metadata with none of the three headers follows csrf.missing") {
  CsrfConfig c = mode(CsrfMode::kFetchMetadata);
  const CsrfDecision allowed = check_csrf(c, post(Opt(), Opt(), Opt()), "");
  CHECK(allowed.verdict == CsrfVerdict::kAllow);
  CHECK(allowed.reason == CsrfReason::kNoMetadata);
  c.missing = CsrfMissing::kDeny;
  const CsrfDecision denied = check_csrf(c, post(Opt(), Opt(), Opt()), "");
  CHECK(denied.verdict == CsrfVerdict::kRefuse);
  CHECK(denied.reason == CsrfReason::kNoMetadata);
}

TEST_CASE("exempt paths are never checked") {
  CsrfConfig c = mode(CsrfMode::kFetchMetadata);
  c.exempt = {"/hooks/*"};
  CsrfRequest r = post("cross-site", "https://github.example", Opt());
  r.path = "/hooks/push";
  CHECK(verdict(c, r) == CsrfVerdict::kAllow);
  r.path = "/hooksx";
  CHECK(verdict(c, r) == CsrfVerdict::kRefuse);
  c.mode = CsrfMode::kToken;
  r.path = "/hooks/push";
  CHECK(verdict(c, r) == CsrfVerdict::kAllow);
}

TEST_CASE("token mode: the X-CSRF-Token header must equal the session's token") {
  const CsrfConfig c = mode(CsrfMode::kToken);
  const std::string token = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";
  CsrfRequest r = post("same-origin", "https://shop.example", Opt());
  r.token_header = token;
  const CsrfDecision good = check_csrf(c, r, token);
  CHECK(good.verdict == CsrfVerdict::kAllow);
  CHECK(good.reason == CsrfReason::kTokenValid);
  const std::string wrong = token.substr(0, 42) + "R";
  r.token_header = wrong;
  CHECK(check_csrf(c, r, token).reason == CsrfReason::kTokenMismatch);
  r.token_header = "";
  CHECK(verdict(c, r, token) == CsrfVerdict::kRefuse);
  // No session: no token can match, not even an empty one.
  r.token_header = "";
  CHECK(verdict(c, r, "") == CsrfVerdict::kRefuse);
}

TEST_CASE("token mode: without the header a form body is scanned, anything else refused") {
  const CsrfConfig c = mode(CsrfMode::kToken);
  CsrfRequest r = post("same-origin", Opt(), Opt());
  r.content_type = "application/x-www-form-urlencoded; charset=UTF-8";
  CHECK(verdict(c, r, "t") == CsrfVerdict::kScanBody);
  r.content_type = "multipart/form-data; boundary=x";
  const CsrfDecision d = check_csrf(c, r, "t");
  CHECK(d.verdict == CsrfVerdict::kRefuse);
  CHECK(d.reason == CsrfReason::kTokenMissing);
  r.content_type = "";
  CHECK(verdict(c, r, "t") == CsrfVerdict::kRefuse);
}

TEST_CASE("token mode: the body scan's result decides") {
  const std::string token = "0123456789012345678901234567890123456789012";
  CHECK(check_form_token(std::string_view(token), false, token).verdict == CsrfVerdict::kAllow);
  CHECK(check_form_token(std::string_view("nope"), false, token).verdict == CsrfVerdict::kRefuse);
  CHECK(check_form_token(std::nullopt, false, token).reason == CsrfReason::kTokenMissing);
  const CsrfDecision large = check_form_token(std::nullopt, true, token);
  CHECK(large.verdict == CsrfVerdict::kTooLarge);
  CHECK(large.reason == CsrfReason::kFormTooLarge);
}

TEST_CASE("the CSRF token is per live key, per secret, and not the session token") {
  const CsrfKey key(std::string(32, 'k'));
  const CsrfKey other(std::string(32, 'o'));
  TokenHash a{}, b{};
  b[0] = 1;
  const std::string ta = key.token_for(a);
  CHECK(ta.size() == 43);
  CHECK(ta == key.token_for(a));
  CHECK(ta != key.token_for(b));    // a rotation changes the live key, so the token
  CHECK(ta != other.token_for(a));  // another secret, another token
  const auto random1 = CsrfKey::random();
  const auto random2 = CsrfKey::random();
  REQUIRE(random1);
  REQUIRE(random2);
  CHECK(random1->token_for(a) != random2->token_for(a));
}

TEST_CASE("a request head is read into the CSRF request, and checked from it") {
  MessageHead head;
  head.method = "POST";
  head.target = "/cart?x=1";
  head.headers = {{"Host", " shop.example "},
                  {"sec-fetch-site", "cross-site"},
                  {"Origin", "https://evil.example"},
                  {"Referer", "https://evil.example/x"},
                  {"x-csrf-token", "tok"},
                  {"Content-Type", "text/plain"}};
  head.header_count = head.headers.size();
  const CsrfRequest r = csrf_request_of(head, true);
  CHECK(r.method == "POST");
  CHECK(r.path == "/cart");
  CHECK(r.scheme == "https");
  CHECK(r.host == "shop.example");
  CHECK(r.sec_fetch_site == Opt("cross-site"));
  CHECK(r.origin == Opt("https://evil.example"));
  CHECK(r.referer == Opt("https://evil.example/x"));
  CHECK(r.token_header == Opt("tok"));
  CHECK(r.content_type == "text/plain");
  CHECK(check_csrf(mode(CsrfMode::kFetchMetadata), head, true, "").reason ==
        CsrfReason::kCrossSite);
  CHECK(check_csrf(mode(CsrfMode::kToken), head, true, "tok").reason == CsrfReason::kTokenValid);
  CHECK(check_csrf(mode(CsrfMode::kOff), head, true, "").reason == CsrfReason::kNotChecked);
  head.headers.clear();
  head.header_count = 0;
  const CsrfRequest bare = csrf_request_of(head, false);
  CHECK(bare.scheme == "http");
  CHECK(bare.host.empty());
  CHECK_FALSE(bare.origin.has_value());
}

TEST_CASE("reason names are the metric labels") {
  CHECK(std::string(csrf_reason_name(CsrfReason::kCrossSite)) == "cross_site");
  CHECK(std::string(csrf_reason_name(CsrfReason::kTokenMismatch)) == "token_mismatch");
  CHECK(std::string(csrf_reason_name(CsrfReason::kFormTooLarge)) == "form_too_large");
}

}  // namespace
}  // namespace sg
