// "Close these handles, then finish the owner" written once: an object that owns several libuv
// handles may only be deleted when the close callback of the last one has run (libuv still
// touches each handle until then). Every handle's `data` must point at the owner; `Open` is the
// owner's count of handles not yet closed (set by the owner when it opens them); `Done` runs
// once, after the last close callback (it typically deletes the owner).
#pragma once

#include <uv.h>

#include <initializer_list>

namespace sg {

template <class Owner, int Owner::*Open, void (*Done)(Owner*)>
struct HandleCloser {
  // Starts closing every handle in `handles` (none of them closing already).
  static void close(std::initializer_list<uv_handle_t*> handles) {
    for (uv_handle_t* h : handles)
      uv_close(h, &on_close);
  }

  static void on_close(uv_handle_t* h) {
    auto* owner = static_cast<Owner*>(h->data);
    if (--(owner->*Open) == 0) Done(owner);
  }
};

}  // namespace sg
