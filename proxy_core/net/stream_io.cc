#include "proxy_core/net/stream_io.h"

#include <new>

namespace sg {

namespace {

using DoneFn = void (*)(uv_stream_t*, int);

// The completion callback travels in the request's data pointer beside the owned bytes.
struct QueuedWrite : WriteRequest {
  DoneFn done;
};

void after_write(uv_write_t* req, int status) {
  auto* w = static_cast<QueuedWrite*>(req->data);
  DoneFn done = w->done;
  uv_stream_t* stream = req->handle;
  delete w;
  if (done != nullptr) done(stream, status);
}

}  // namespace

int stream_write(uv_stream_t* stream, const uv_buf_t* bufs, unsigned count, DoneFn done) {
  size_t total = 0;
  for (unsigned i = 0; i < count; ++i)
    total += bufs[i].len;
  if (total == 0) return 0;
  size_t sent = 0;
  int r = uv_try_write(stream, bufs, count);
  if (r > 0) {
    sent = static_cast<size_t>(r);
    if (sent == total) return 0;
  } else if (r != UV_EAGAIN && r != UV_ENOSYS) {
    return r;
  }
  auto* w = new (std::nothrow) QueuedWrite;
  if (w == nullptr) return UV_ENOMEM;
  w->done = done;
  w->req.data = w;
  w->data.reserve(total - sent);
  size_t skip = sent;
  for (unsigned i = 0; i < count; ++i) {
    if (skip >= bufs[i].len) {
      skip -= bufs[i].len;
      continue;
    }
    w->data.append(bufs[i].base + skip, bufs[i].len - skip);
    skip = 0;
  }
  uv_buf_t rest = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  r = uv_write(&w->req, stream, &rest, 1, after_write);
  if (r != 0) {
    delete w;
    return r;
  }
  return 0;
}

}  // namespace sg
