#include "proxy_core/session/session_attributes.h"

#include <doctest/doctest.h>

#include <string>

namespace sg {
namespace {

constexpr uint32_t kMax = 32;
constexpr uint32_t kBytes = 4096;

TEST_CASE("an attribute is stored under its folded name and kept sorted") {
  SessionAttributes attrs;
  CHECK(apply_attribute(attrs, "User", "alice", kMax, kBytes) == AttributeError::kOk);
  CHECK(apply_attribute(attrs, "Role_Name", "admin", kMax, kBytes) == AttributeError::kOk);
  CHECK(apply_attribute(attrs, "a", "1", kMax, kBytes) == AttributeError::kOk);
  CHECK(attrs == SessionAttributes{{"a", "1"}, {"role-name", "admin"}, {"user", "alice"}});
}

TEST_CASE("names differing in case or underscore name the same attribute") {
  SessionAttributes attrs;
  CHECK(apply_attribute(attrs, "user-id", "1", kMax, kBytes) == AttributeError::kOk);
  CHECK(apply_attribute(attrs, "USER_ID", "2", kMax, kBytes) == AttributeError::kOk);
  CHECK(attrs == SessionAttributes{{"user-id", "2"}});
}

TEST_CASE("an empty value removes the attribute") {
  SessionAttributes attrs = {{"user", "alice"}};
  CHECK(apply_attribute(attrs, "user", "", kMax, kBytes) == AttributeError::kOk);
  CHECK(attrs.empty());
  CHECK(apply_attribute(attrs, "user", "  ", kMax, kBytes) == AttributeError::kOk);
  CHECK(apply_attribute(attrs, "absent", "", kMax, kBytes) == AttributeError::kOk);
}

TEST_CASE("surrounding whitespace is trimmed and inner spaces kept") {
  SessionAttributes attrs;
  CHECK(apply_attribute(attrs, "name", " \tAlice Smith \t", kMax, kBytes) == AttributeError::kOk);
  CHECK(attrs == SessionAttributes{{"name", "Alice Smith"}});
}

TEST_CASE("names that are not header tokens are refused") {
  SessionAttributes attrs;
  for (std::string_view bad : {"", "a b", "a:b", "a\r\nb", "a(b)", "é", "a/b", "a\"b"}) {
    CHECK(apply_attribute(attrs, bad, "v", kMax, kBytes) == AttributeError::kBadName);
  }
  CHECK(apply_attribute(attrs, "!#$%&'*+-.^_`|~09az", "v", kMax, kBytes) == AttributeError::kOk);
}

TEST_CASE("the handle's name is reserved") {
  SessionAttributes attrs;
  CHECK(apply_attribute(attrs, "Id", "x", kMax, kBytes) == AttributeError::kBadName);
  CHECK(apply_attribute(attrs, "ID", "", kMax, kBytes) == AttributeError::kBadName);
  CHECK(attrs.empty());
}

TEST_CASE("values with control or non-ASCII bytes are refused and change nothing") {
  SessionAttributes attrs = {{"user", "alice"}};
  const std::string nul("a\0b", 3);
  for (std::string_view bad :
       {std::string_view("a\rb"), std::string_view("a\nb"), std::string_view(nul),
        std::string_view("a\tb"), std::string_view("a\x7f"), std::string_view("caf\xc3\xa9"),
        std::string_view("\x1b[31m")}) {
    CHECK(apply_attribute(attrs, "user", bad, kMax, kBytes) == AttributeError::kBadValue);
  }
  CHECK(attrs == SessionAttributes{{"user", "alice"}});
  CHECK(apply_attribute(attrs, "user", " !~\"{}", kMax, kBytes) == AttributeError::kOk);
}

TEST_CASE("the attribute count is bounded") {
  SessionAttributes attrs;
  CHECK(apply_attribute(attrs, "a", "1", 2, kBytes) == AttributeError::kOk);
  CHECK(apply_attribute(attrs, "b", "1", 2, kBytes) == AttributeError::kOk);
  CHECK(apply_attribute(attrs, "c", "1", 2, kBytes) == AttributeError::kTooMany);
  CHECK(apply_attribute(attrs, "a", "2", 2, kBytes) == AttributeError::kOk);  // replace: no growth
  CHECK(attrs == SessionAttributes{{"a", "2"}, {"b", "1"}});
}

TEST_CASE("the attribute bytes are bounded over names and values") {
  SessionAttributes attrs;
  CHECK(apply_attribute(attrs, "ab", "1234", 10, 10) == AttributeError::kOk);           // 6 bytes
  CHECK(apply_attribute(attrs, "c", "1234", 10, 10) == AttributeError::kTooManyBytes);  // 11
  CHECK(apply_attribute(attrs, "c", "123", 10, 10) == AttributeError::kOk);  // exactly 10
  CHECK(apply_attribute(attrs, "ab", "12345", 10, 10) == AttributeError::kTooManyBytes);
  CHECK(apply_attribute(attrs, "ab", "1", 10, 10) == AttributeError::kOk);  // shrinking is fine
  CHECK(attrs == SessionAttributes{{"ab", "1"}, {"c", "123"}});
}

TEST_CASE("every error has a text") {
  for (auto e : {AttributeError::kOk, AttributeError::kBadName, AttributeError::kBadValue,
                 AttributeError::kTooMany, AttributeError::kTooManyBytes}) {
    CHECK(std::string(attribute_error_text(e)).size() > 0);
  }
}

}  // namespace
}  // namespace sg
