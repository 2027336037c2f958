#include "proxy_core/session/session_record_check.h"

#include <doctest/doctest.h>

#include <climits>
#include <cstdint>

namespace sg {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;

SessionRecord good() {
  SessionRecord r;
  r.created_ms = kNow - 1000;
  r.last_seen_ms = kNow - 10;
  r.attributes = {{"role", "admin"}, {"user", "alice smith"}};
  return r;
}

RecordError check(const SessionRecord& r, uint32_t max_attrs = 0, uint32_t max_bytes = 0) {
  return check_session_record(r, kNow, max_attrs, max_bytes);
}

TEST_CASE("a sane record passes") {
  CHECK(check(good()) == RecordError::kOk);
  SessionRecord none = good();
  none.attributes.clear();
  CHECK(check(none) == RecordError::kOk);
  CHECK(check(good(), 2, 4 + 5 + 4 + 11) == RecordError::kOk);  // exactly at both bounds
}

TEST_CASE("times outside [0, now + skew] or last-seen before created are refused") {
  const int64_t extremes[] = {INT64_MIN, INT64_MIN + 1, -1, INT64_MAX,
                              kNow + kRecordClockSkewMs + 1};
  for (int64_t t : extremes) {
    CAPTURE(t);
    SessionRecord r = good();
    r.created_ms = t;
    CHECK(check(r) == RecordError::kBadTimes);
    r = good();
    r.last_seen_ms = t;
    CHECK(check(r) == RecordError::kBadTimes);
  }
  SessionRecord future = good();  // created in the future, beyond the skew: would never expire
  future.created_ms = kNow + 24 * 3600 * 1000;
  future.last_seen_ms = future.created_ms;
  CHECK(check(future) == RecordError::kBadTimes);
  SessionRecord skewed = good();  // another instance's clock a little ahead: fine
  skewed.created_ms = kNow + kRecordClockSkewMs;
  skewed.last_seen_ms = skewed.created_ms;
  CHECK(check(skewed) == RecordError::kOk);
  SessionRecord backwards = good();
  backwards.last_seen_ms = backwards.created_ms - 1;
  CHECK(check(backwards) == RecordError::kBadTimes);
  CHECK(check_session_record(good(), INT64_MAX, 0, 0) == RecordError::kOk);  // no overflow
}

TEST_CASE("header injection in names and values is refused") {
  const char* bad_values[] = {"x\r\nX-Injected: 1",
                              "x\nX-Injected: 1",
                              "a\rb",
                              "\x7f",
                              "tab\there",
                              "caf\xc3\xa9",
                              " edge",
                              "edge ",
                              ""};
  for (const char* v : bad_values) {
    CAPTURE(v);
    SessionRecord r = good();
    r.attributes[1].second = v;
    CHECK(check(r) == RecordError::kBadValue);
  }
  SessionRecord nul = good();
  nul.attributes[1].second = std::string("a\0b", 3);
  CHECK(check(nul) == RecordError::kBadValue);

  const char* bad_names[] = {"x-injected: 1", "a:b",   "a b", "a\r\nb",    "",
                             "Role",          "us_er", "id",  "na\xc3\xa9"};
  for (const char* n : bad_names) {
    CAPTURE(n);
    SessionRecord r = good();
    r.attributes = {{n, "v"}};
    CHECK(check(r) == RecordError::kBadName);
  }
}

TEST_CASE("unsorted or duplicate names are refused") {
  SessionRecord r = good();
  r.attributes = {{"user", "a"}, {"role", "b"}};
  CHECK(check(r) == RecordError::kUnsorted);
  r.attributes = {{"role", "a"}, {"role", "b"}};
  CHECK(check(r) == RecordError::kUnsorted);
}

TEST_CASE("count and byte bounds apply, and zero means unbounded") {
  CHECK(check(good(), 1, 0) == RecordError::kTooMany);
  CHECK(check(good(), 0, 4 + 5 + 4 + 11 - 1) == RecordError::kTooManyBytes);
  SessionRecord many = good();
  many.attributes.clear();
  for (int i = 0; i < 1000; ++i)
    many.attributes.emplace_back("a" + std::to_string(1000 + i), std::string(100, 'v'));
  CHECK(check(many) == RecordError::kOk);
  CHECK(check(many, 999, 0) == RecordError::kTooMany);
}

TEST_CASE("every error has a text") {
  for (RecordError e :
       {RecordError::kOk, RecordError::kBadTimes, RecordError::kBadName, RecordError::kBadValue,
        RecordError::kUnsorted, RecordError::kTooMany, RecordError::kTooManyBytes}) {
    CHECK(std::string(record_error_text(e)) != "unknown record error");
  }
}

}  // namespace
}  // namespace sg

namespace sg {
namespace {

TEST_CASE("the client address and user agent of a record are bounded and printable") {
  SessionRecord r;
  r.created_ms = r.last_seen_ms = 1'700'000'000'000;
  r.client_address = "2001:db8::1";
  r.user_agent = "Mozilla/5.0 (X11; Linux x86_64)";
  CHECK(check_session_record(r, r.created_ms, 0, 0) == RecordError::kOk);
  r.user_agent = std::string(kMaxUserAgentBytes + 1, 'a');
  CHECK(check_session_record(r, r.created_ms, 0, 0) == RecordError::kBadOrigin);
  r.user_agent = "ok";
  r.client_address = std::string(kMaxClientAddressBytes + 1, '1');
  CHECK(check_session_record(r, r.created_ms, 0, 0) == RecordError::kBadOrigin);
  r.client_address = "192.0.2.1\r\nX-Injected: 1";
  CHECK(check_session_record(r, r.created_ms, 0, 0) == RecordError::kBadOrigin);
}

TEST_CASE("origin_text cuts and replaces what a record would refuse") {
  std::string kept;
  assign_origin_text(kept, std::string(200, 'a'), kMaxUserAgentBytes);
  const size_t capacity = kept.capacity();
  assign_origin_text(kept, "Agent/2\n", kMaxUserAgentBytes);  // the next request's, in place
  CHECK(kept == "Agent/2?");
  CHECK(kept.capacity() == capacity);
  CHECK(origin_text("Agent/1\r\n\x80", 64) == "Agent/1???");
  CHECK(origin_text(std::string(300, 'u'), kMaxUserAgentBytes).size() == kMaxUserAgentBytes);
  SessionRecord r;
  r.user_agent = origin_text("\x01\x7f" + std::string(400, 'x'), kMaxUserAgentBytes);
  CHECK(check_session_record(r, 0, 0, 0) == RecordError::kOk);
}

}  // namespace
}  // namespace sg
