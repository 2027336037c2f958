// DeadlineList. See deadline_list.h.
#include "proxy_core/net/deadline_list.h"

namespace sg {

DeadlineList::DeadlineList(uv_loop_t* loop, Fire fire) : fire_(fire) {
  uv_timer_init(loop, &timer_);
  timer_.data = this;
  head_.prev = head_.next = &head_;
}

void DeadlineList::file(DeadlineLink* link, uint64_t due) {
  cancel(link);
  link->due = due;
  // After the last link not later than this one (usually the tail itself).
  DeadlineLink* after = head_.prev;
  while (after != &head_ && after->due > due)
    after = after->prev;
  link->prev = after;
  link->next = after->next;
  after->next->prev = link;
  after->next = link;
  if (after == &head_ && (!armed_ || due < armed_due_)) arm_for_first(uv_now(timer_.loop));
}

void DeadlineList::arm_for_first(uint64_t now) {
  if (empty()) return;
  uint64_t due = head_.next->due;
  uv_timer_start(&timer_, &DeadlineList::on_timer, due > now ? due - now : 0, 0);
  armed_ = true;
  armed_due_ = due;
}

void DeadlineList::on_timer(uv_timer_t* t) {
  auto* self = static_cast<DeadlineList*>(t->data);
  self->armed_ = false;
  uint64_t now = uv_now(t->loop);
  // One at a time: `fire` may move or cancel any link, the next one included.
  while (!self->empty() && self->head_.next->due <= now) {
    DeadlineLink* link = self->head_.next;
    if (link->wanted > now) {
      link->home->file(link, link->wanted);  // moved later since it was placed here
      continue;
    }
    cancel(link);
    self->fire_(link);
  }
  if (!self->armed_) self->arm_for_first(now);
}

void DeadlineList::close() {
  auto* h = reinterpret_cast<uv_handle_t*>(&timer_);
  if (!uv_is_closing(h)) uv_close(h, nullptr);
}

}  // namespace sg
