// DeadlineList (net/deadline_list.h) on a real libuv loop: expiry in deadline order, moved and
// cancelled deadlines, an early timer that waits for the moved first deadline, and links set
// from inside the expiry callback.
#include "proxy_core/net/deadline_list.h"

#include <doctest/doctest.h>

#include <vector>

namespace sg {
namespace {

std::vector<int> g_fired;
DeadlineList* g_list = nullptr;
DeadlineLink* g_rearm = nullptr;  // set again (10 ms) the first time it expires

void record(DeadlineLink* link) {
  g_fired.push_back(*static_cast<int*>(link->owner));
  if (link == g_rearm) {
    g_rearm = nullptr;
    g_list->set(link, 10);
  }
}

struct Loop {
  uv_loop_t loop;
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);  // the list's close
    uv_loop_close(&loop);
  }
};

TEST_CASE("DeadlineList: links expire in deadline order, moved and cancelled ones as set") {
  Loop l;
  g_fired.clear();
  int ids[4] = {0, 1, 2, 3};
  DeadlineLink links[4];
  for (int i = 0; i < 4; ++i)
    links[i].owner = &ids[i];
  {
    DeadlineList list(&l.loop, &record);
    g_list = &list;
    list.set(&links[0], 30);
    list.set(&links[1], 5);  // earlier than the tail: inserted before it, the timer re-armed
    list.set(&links[2], 20);
    list.set(&links[3], 10);
    list.set(&links[1], 40);  // moved later: the timer fires early and waits for the rest
    DeadlineList::cancel(&links[2]);
    DeadlineList::cancel(&links[2]);  // idempotent
    CHECK_FALSE(links[2].linked());
    uv_run(&l.loop, UV_RUN_DEFAULT);
    CHECK(g_fired == std::vector<int>{3, 0, 1});
    CHECK(list.empty());
    list.close();
  }
}

TEST_CASE("DeadlineList: the expiry callback may set its own link again") {
  Loop l;
  g_fired.clear();
  int ids[2] = {7, 8};
  DeadlineLink a, b;
  a.owner = &ids[0];
  b.owner = &ids[1];
  {
    DeadlineList list(&l.loop, &record);
    g_list = &list;
    g_rearm = &a;
    list.set(&a, 1);
    list.set(&b, 5);
    uv_run(&l.loop, UV_RUN_DEFAULT);
    CHECK(g_fired == std::vector<int>{7, 8, 7});
    CHECK(list.empty());
    list.close();
  }
}

TEST_CASE("DeadlineList: a link moves between lists only when its deadline comes earlier") {
  Loop l;
  g_fired.clear();
  int ids[2] = {1, 2};
  DeadlineLink a, b;
  a.owner = &ids[0];
  b.owner = &ids[1];
  {
    DeadlineList shorter(&l.loop, &record);
    DeadlineList longer(&l.loop, &record);
    g_list = &longer;
    longer.set(&a, 60);
    shorter.set(&a, 5);  // earlier: moved to the shorter list
    longer.set(&a, 30);  // later: stays in the shorter one, filed again in `longer` at 5 ms
    shorter.set(&b, 10);
    longer.set(&b, 15);
    uv_run(&l.loop, UV_RUN_DEFAULT);
    CHECK(g_fired == std::vector<int>{2, 1});
    CHECK(shorter.empty());
    CHECK(longer.empty());
    shorter.close();
    longer.close();
  }
}

}  // namespace
}  // namespace sg
