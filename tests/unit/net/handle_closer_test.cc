// HandleCloser: the owner is finished once, and only after the last of its handles closed.
#include "proxy_core/net/handle_closer.h"

#include <doctest/doctest.h>

namespace {

struct TwoTimers {
  uv_timer_t a;
  uv_timer_t b;
  int open = 2;
  int* finished;

  static void on_closed(TwoTimers* t) {
    ++*t->finished;
    CHECK(uv_is_closing(reinterpret_cast<uv_handle_t*>(&t->a)));
    CHECK(uv_is_closing(reinterpret_cast<uv_handle_t*>(&t->b)));
    delete t;
  }
  void close() {
    sg::HandleCloser<TwoTimers, &TwoTimers::open, &TwoTimers::on_closed>::close(
        {reinterpret_cast<uv_handle_t*>(&a), reinterpret_cast<uv_handle_t*>(&b)});
  }
};

}  // namespace

TEST_CASE("handle closer finishes the owner once after its last handle closed") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  int finished = 0;
  auto* t = new TwoTimers;
  t->finished = &finished;
  uv_timer_init(&loop, &t->a);
  uv_timer_init(&loop, &t->b);
  t->a.data = t;
  t->b.data = t;
  t->close();
  CHECK(finished == 0);  // close callbacks run on the next loop iteration, not inside close()
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(finished == 1);
  CHECK(uv_loop_close(&loop) == 0);  // no handle left open
}
