#include "proxy_core/policy/form_field_scanner.h"

#include <doctest/doctest.h>

#include <string>

namespace sg {
namespace {

using Result = FormFieldScanner::Result;

struct Scan {
  Result result;
  std::string value;
};

// Feeds `body` in pieces of `step` bytes (0: in one piece), then ends it.
Scan scan(std::string_view body, size_t step = 0, uint64_t max_bytes = 1 << 20,
          size_t max_value = 64) {
  FormFieldScanner s("csrf_token", max_bytes, max_value);
  if (step == 0) step = body.size() + 1;
  for (size_t i = 0; i < body.size(); i += step)
    s.feed(body.substr(i, step));
  const Result r = s.finish();
  return {r, std::string(s.value())};
}

TEST_CASE("the form scanner finds the field first, in the middle and last") {
  CHECK(scan("csrf_token=abc&item=x").value == "abc");
  CHECK(scan("item=x&csrf_token=abc&more=1").value == "abc");
  const Scan last = scan("item=x&csrf_token=abc");
  CHECK(last.result == Result::kFound);
  CHECK(last.value == "abc");
}

TEST_CASE("the form scanner decodes plus and percent escapes in names and values") {
  CHECK(scan("csrf%5Ftoken=a%2Db+c").value == "a-b c");
  CHECK(scan("csrf_token=%41%62").value == "Ab");
  CHECK(scan("csrf_token=x=y").value == "x=y");  // '=' after the first belongs to the value
}

TEST_CASE("the form scanner takes the first occurrence only") {
  CHECK(scan("csrf_token=first&csrf_token=second").value == "first");
}

TEST_CASE("the form scanner does not match names that only start or end like the field") {
  CHECK(scan("csrf_token2=x&xcsrf_token=y&csrf_toke=z").result == Result::kNotFound);
  CHECK(scan("").result == Result::kNotFound);
  CHECK(scan("&&=&").result == Result::kNotFound);
}

TEST_CASE("the form scanner reports a field without '=' as an empty value") {
  const Scan s = scan("a=1&csrf_token&b=2");
  CHECK(s.result == Result::kFound);
  CHECK(s.value.empty());
}

TEST_CASE("the form scanner reports malformed escapes and too long values") {
  CHECK(scan("csrf_token=ab%zz").result == Result::kMalformed);
  CHECK(scan("csrf_token=ab%4").result == Result::kMalformed);
  CHECK(scan("csrf_token=ab%4&x=1").result == Result::kMalformed);
  // A malformed escape in another pair's name spoils only that pair.
  CHECK(scan("x%zz=1&csrf_token=ok").value == "ok");
  // A malformed escape in the field's name: the pair is not the field.
  CHECK(scan("csrf%zztoken=1&csrf_token=ok").value == "ok");
  CHECK(scan("csrf_token=" + std::string(64, 'a')).result == Result::kFound);
  CHECK(scan("csrf_token=" + std::string(65, 'a')).result == Result::kTooLong);
}

TEST_CASE("the form scanner stops after max_bytes without the field") {
  const std::string body = "item=" + std::string(100, 'x') + "&csrf_token=abc";
  CHECK(scan(body, 0, body.size()).result == Result::kFound);
  CHECK(scan(body, 7, body.size()).result == Result::kFound);
  CHECK(scan(body, 0, 50).result == Result::kTooLarge);
  CHECK(scan(body, 3, 50).result == Result::kTooLarge);
  // Found before the bound: what follows does not count.
  const std::string early = "csrf_token=abc&item=" + std::string(1000, 'x');
  CHECK(scan(early, 0, 20).result == Result::kFound);
}

TEST_CASE("the form scanner gives the same answer however the body is cut") {
  const std::string bodies[] = {"item=a%20b&csrf_token=t%2Bk+n&z=1",
                                "csrf%5ftoken=abc",
                                "a=%zz&csrf_token=",
                                "csrf_token=%4",
                                "x&csrf_token=1%41",
                                "csrf_token=a&csrf_token=b",
                                "a=b"};
  for (const std::string& body : bodies) {
    const Scan whole = scan(body);
    for (size_t step = 1; step <= body.size(); ++step) {
      CAPTURE(body);
      CAPTURE(step);
      const Scan cut = scan(body, step);
      CHECK(cut.result == whole.result);
      CHECK(cut.value == whole.value);
    }
  }
}

TEST_CASE("the form scanner ignores input once it has an answer") {
  FormFieldScanner s("csrf_token", 1000);
  CHECK(s.feed("csrf_token=ab") == Result::kNeedMore);
  CHECK(s.feed("c&rest") == Result::kFound);
  const uint64_t consumed = s.consumed();
  CHECK(s.feed("more=1") == Result::kFound);
  CHECK(s.consumed() == consumed);
  CHECK(s.finish() == Result::kFound);
  CHECK(s.value() == "abc");
}

}  // namespace
}  // namespace sg
