#include "proxy_core/base/free_list_bound.h"

#include <doctest/doctest.h>

namespace sg {
namespace {

TEST_CASE("FreeListBound: a quiet load keeps the floor") {
  FreeListBound bound(64);
  CHECK(bound.limit() == 64);
  for (int i = 0; i < 10; ++i) {
    bound.taken();
    bound.given_back();
  }
  CHECK(bound.limit() == 64);
}

TEST_CASE("FreeListBound: as many as were in use at once are kept") {
  FreeListBound bound(64);
  for (int i = 0; i < 200; ++i)
    bound.taken();
  CHECK(bound.in_use() == 200);
  for (int i = 0; i < 200; ++i)
    bound.given_back();
  CHECK(bound.limit() == 200);
  CHECK(bound.in_use() == 0);
}

TEST_CASE("FreeListBound: a burst is remembered for one to two windows, then forgotten") {
  FreeListBound bound(4);
  for (int i = 0; i < 100; ++i)
    bound.taken();
  for (int i = 0; i < 100; ++i)
    bound.given_back();
  // One request at a time from now on: the burst's peak survives the window it happened in and
  // the next one.
  size_t hand_outs = 100;
  while (hand_outs < FreeListBound::kWindow) {
    bound.taken();
    bound.given_back();
    ++hand_outs;
  }
  CHECK(bound.limit() == 100);  // the window rolled: its peak is the previous one
  for (size_t i = 0; i < FreeListBound::kWindow - 1; ++i) {
    bound.taken();
    bound.given_back();
  }
  CHECK(bound.limit() == 100);
  bound.taken();  // the second window ends
  bound.given_back();
  CHECK(bound.limit() == 4);
}

TEST_CASE("FreeListBound: the load raises the bound to kMaxFromLoad at most") {
  FreeListBound bound(8);
  for (size_t i = 0; i < FreeListBound::kMaxFromLoad + 10; ++i)
    bound.taken();
  CHECK(bound.limit() == FreeListBound::kMaxFromLoad);
  FreeListBound large_floor(FreeListBound::kMaxFromLoad + 1);  // an explicit floor wins
  CHECK(large_floor.limit() == FreeListBound::kMaxFromLoad + 1);
}

TEST_CASE("FreeListBound: an object it did not hand out comes back harmlessly") {
  FreeListBound bound(2);
  bound.given_back();
  CHECK(bound.in_use() == 0);
  bound.taken();
  CHECK(bound.in_use() == 1);
}

}  // namespace
}  // namespace sg
