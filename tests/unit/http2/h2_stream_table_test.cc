// H2StreamTable: open streams by id (sorted, whatever the insertion order), objects handed over
// on take, and spare objects reset and reused up to a bound.
#include "proxy_core/http2/h2_stream_table.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>

namespace sg {
namespace {

struct Obj {
  std::string data;
  int resets = 0;
  void reset() {
    data.clear();
    ++resets;
  }
};

std::unique_ptr<Obj> obj(const std::string& data) {
  auto o = std::make_unique<Obj>();
  o->data = data;
  return o;
}

TEST_CASE("h2 stream table: find, take and take_first by id") {
  H2StreamTable<Obj> t;
  CHECK(t.empty());
  t.insert(5, obj("five"));
  t.insert(1, obj("one"));  // out of order: still found, still sorted
  t.insert(9, obj("nine"));
  t.insert(3, obj("three"));
  CHECK(t.size() == 4);
  REQUIRE(t.find(3) != nullptr);
  CHECK(t.find(3)->data == "three");
  CHECK(t.find(4) == nullptr);
  CHECK(t.find(10) == nullptr);
  int last = 0;
  for (const auto& [id, o] : t.open()) {
    CHECK(id > last);
    last = id;
  }
  std::unique_ptr<Obj> five = t.take(5);
  REQUIRE(five != nullptr);
  CHECK(five->data == "five");
  CHECK(t.take(5) == nullptr);
  CHECK(t.find(5) == nullptr);
  CHECK(t.take_first()->data == "one");
  CHECK(t.take_first()->data == "three");
  CHECK(t.take_first()->data == "nine");
  CHECK(t.take_first() == nullptr);
  CHECK(t.empty());
}

TEST_CASE("h2 stream table: insert on an id already there replaces its object") {
  H2StreamTable<Obj> t;
  t.insert(1, obj("a"));
  t.insert(3, obj("b"));
  t.insert(1, obj("c"));
  CHECK(t.size() == 2);
  CHECK(t.find(1)->data == "c");
}

TEST_CASE("h2 stream table: recycled objects come back reset, up to kMaxSpare of them") {
  H2StreamTable<Obj> t;
  CHECK(t.spare() == nullptr);
  Obj* first = nullptr;
  for (size_t i = 0; i < H2StreamTable<Obj>::kMaxSpare + 3; ++i) {
    auto o = obj("used");
    if (i == 0) first = o.get();
    t.recycle(std::move(o));
  }
  t.recycle(nullptr);  // nothing to keep
  size_t spares = 0;
  bool saw_first = false;
  while (std::unique_ptr<Obj> o = t.spare()) {
    CHECK(o->data.empty());
    CHECK(o->resets == 1);
    saw_first = saw_first || o.get() == first;
    ++spares;
  }
  CHECK(spares == H2StreamTable<Obj>::kMaxSpare);
  CHECK(saw_first);
}

}  // namespace
}  // namespace sg
