// UpstreamConnection, the spliced body: the rest of a Content-Length response body moves
// upstream socket -> pipe -> client socket with splice(2), never through user space (issue 17
// item 4). See upstream.h. For a spliced request body (the other way, pumped by the client
// connection: client_splice.cc) this side only names its socket and polls it for room.
//
// Readiness and backpressure, exactly:
// - The upstream side stays a libuv stream that reads: on_alloc hands out an empty buffer while
//   a pipe is set, so libuv reads nothing and reports a readable socket as UV_ENOBUFS, and
//   on_read runs pump_splice(). Level-triggered epoll calls again while bytes wait.
// - The pump moves bytes into the pipe only when the pipe is empty, and empties it to the client
//   before it takes more: the pipe (kSplicePipeBytes) is the relay's whole buffer.
// - When the client's socket is full (-EAGAIN) the user hears on_upstream_splice_blocked: it
//   pauses this connection (pause_reading: libuv stops watching the upstream, so nothing more is
//   taken from it and the kernel's TCP window pushes back on the application) and waits for the
//   client socket to be writable (Downstream::await_writable), then calls resume_reading(),
//   which runs the pump again. A client that never reads is closed by its activity timeout,
//   as on the copy path; the upstream's response timeout waits meanwhile (client_output_full).
// - The body's end: when every byte went through the pipe, the response reader skips them
//   (skip_body) and the response completes as if parsed: framing stays the parser's, and the
//   connection is reused only when the response ended in step. The upstream closing early
//   (splice returns 0) is a failure: the client's response is cut, never completed.
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "proxy_core/upstream.h"

namespace sg {

void UpstreamConnection::maybe_splice() {
  if (pipe_ != nullptr || tls_ != nullptr || user_ == nullptr) return;
  uint64_t left = reader_.raw_body_left();
  if (left < kSpliceMinBytes) return;
  int to = user_->upstream_splice_target(this);
  if (to < 0) return;
  pipe_ = pool_->pipes().take();
  if (pipe_ == nullptr) return;  // out of descriptors: the copy path goes on
  splice_to_ = to;
  splice_left_ = left;
  splice_total_ = left;
  pump_splice();
}

void UpstreamConnection::pump_splice() {
  if (pumping_) return;  // a user callback re-entered: the running pump goes on
  pumping_ = true;
  uv_os_fd_t from = -1;
  (void)uv_fileno(socket_.handle(), &from);
  while (pipe_ != nullptr && !closing_ && user_ != nullptr) {
    if (pipe_->held() > 0) {
      ssize_t n = pipe_->drain_to(splice_to_);
      if (n == -EAGAIN) {
        pumping_ = false;
        user_->on_upstream_splice_blocked(this);  // pauses us; resume_reading() goes on
        return;
      }
      if (n <= 0) {
        pumping_ = false;
        user_->on_upstream_splice_failed(this, n == 0 ? UV_EPIPE : static_cast<int>(n));
        return;
      }
      user_->on_upstream_spliced(this, static_cast<size_t>(n));
      continue;
    }
    if (splice_left_ == 0) {
      pumping_ = false;
      uint64_t total = splice_total_;
      end_splice();
      reader_.skip_body(total);  // the response completes: the user may hand us back or close us
      return;
    }
    ssize_t n = pipe_->fill_from(
        from, static_cast<size_t>(std::min<uint64_t>(splice_left_, pipe_->capacity())));
    if (n == -EAGAIN) break;  // nothing more now: on_read (UV_ENOBUFS) calls again
    if (n <= 0) {
      pumping_ = false;
      fail(n == 0 ? UV_EOF : static_cast<int>(n));  // cut short: never a complete response
      return;
    }
    splice_left_ -= static_cast<uint64_t>(n);
    start_timer(response_timeout_);  // the upstream makes progress
  }
  pumping_ = false;
}

// ---- a request body spliced into this socket (the pump is the client connection's,
// client_splice.cc): this side only says where to and when the socket takes more ----

int UpstreamConnection::raw_request_fd() {
  if (tls_ != nullptr || !connected_ || closing_ || tunnel_ || user_ == nullptr || queued() != 0)
    return -1;
  uv_os_fd_t fd = -1;
  if (uv_fileno(socket_.handle(), &fd) != 0) return -1;
  return fd;
}

void UpstreamConnection::await_writable() {
  if (closing_) return;
  if (writable_ == nullptr) {
    uv_os_fd_t fd = -1;
    if (uv_fileno(socket_.handle(), &fd) != 0) {
      fail(UV_EBADF);
      return;
    }
    auto w = std::make_unique<WritableWatch>();
    w->fd = dup(fd);
    if (w->fd < 0 || uv_poll_init(pool_->loop(), &w->poll, w->fd) != 0) {
      if (w->fd >= 0) ::close(w->fd);
      fail(UV_EMFILE);  // cannot wait for the socket: the request cannot be sent
      return;
    }
    w->poll.data = this;
    ++handles_open_;
    writable_ = std::move(w);
  }
  if (int r = uv_poll_start(&writable_->poll, UV_WRITABLE, &UpstreamConnection::on_writable);
      r != 0)
    fail(r);
}

void UpstreamConnection::on_writable(uv_poll_t* p, int status, int) {
  auto* c = static_cast<UpstreamConnection*>(p->data);
  uv_poll_stop(p);
  if (c->closing_ || c->user_ == nullptr) return;
  if (status < 0) {
    c->fail(status);
    return;
  }
  c->user_->on_upstream_drained(c);  // the user's pump goes on
}

void UpstreamConnection::end_splice() {
  if (pipe_ == nullptr) return;
  pool_->pipes().give(std::move(pipe_));  // pooled when empty, else closed
  pipe_ = nullptr;
  splice_to_ = -1;
  splice_left_ = splice_total_ = 0;
}

}  // namespace sg
