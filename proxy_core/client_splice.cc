// ClientConnection, the spliced request body (issue 17 item 4): the rest of a Content-Length
// request body moves client socket -> pipe -> upstream socket with splice(2), never through user
// space, the mirror of the spliced response body (upstream_splice.cc). See client_connection.h.
//
// Readiness, backpressure and framing, exactly:
// - The client side stays a libuv stream that reads: while the pipe is set, on_alloc hands out
//   an empty buffer, so libuv reads nothing and reports a readable socket as UV_ENOBUFS, and
//   on_read runs pump_request_body(). Level-triggered epoll calls again while bytes wait.
// - The pump takes bytes from the client only when the pipe is empty, and at most what the body
//   still lacks (a pipelined request behind it stays in the socket for the parser). The pipe
//   (kSplicePipeBytes) is the relay's whole buffer.
// - Framing stays the parser's: every byte taken from the client is skipped in the parser
//   (HttpParser::skip_content), which therefore always agrees with the socket; once none is
//   left and the pipe is empty, one parser run on no input ends the message as if parsed.
// - A full upstream socket (-EAGAIN) is the copy path's high water mark: the exchange's
//   wants_request_body() says false (reading the client stops: the kernel's TCP window pushes
//   back), the upstream connection polls its socket for write readiness and the exchange's
//   on_upstream_drained calls request_flow_changed(), which pumps the pipe's bytes first. While
//   held back the client's timer waits and the upstream's response timeout bounds the stall,
//   as on the copy path; while the client sends, every move restarts its activity timer, so a
//   client that stops mid-body is closed by it (and the upstream, closed with it, sees a short
//   body).
// - When the exchange names no upstream socket any more (the upstream failed, or an early
//   response ended and the rest goes nowhere: Exchange::drop_request_rest), the pipe's bytes are
//   dropped and the rest of the body takes the copy path, which drops it too.
#include <algorithm>
#include <cerrno>

#include "proxy_core/client_connection.h"
#include "proxy_core/exchange.h"
#include "proxy_core/worker.h"

namespace sg {

void ClientConnection::maybe_splice_request() {
  if (tls_ != nullptr || closing_ || h1_ == nullptr || h1_->body_pipe != nullptr || has_pending() ||
      exchange_ == nullptr || h1_->parser.content_left() < kSpliceMinBytes ||
      exchange_->request_splice_target() < 0)
    return;
  // Out of descriptors: nullptr, and the copy path goes on. Reading is on (update_reading
  // follows): the next readiness runs the pump.
  h1_->body_pipe = worker_->pool().pipes().take();
}

void ClientConnection::pump_request_body() {
  if (pumping_request_) return;  // an exchange callback re-entered: the running pump goes on
  pumping_request_ = true;
  uv_os_fd_t from = -1;
  (void)uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &from);
  while (splicing_request()) {
    int to = -1;
    if (!closing_ && state_ == State::kForward && !request_done_ && exchange_ != nullptr)
      to = exchange_->request_splice_target();
    if (to < 0) {
      // Nowhere to go: the pipe's bytes are dropped; the rest, if any, takes the copy path.
      end_request_splice();
      if (!closing_ && state_ == State::kForward && !request_done_ &&
          h1_->parser.content_left() == 0)
        end_spliced_body();
      break;
    }
    SplicePipe& pipe = *h1_->body_pipe;
    if (pipe.held() > 0) {
      ssize_t n = pipe.drain_to(to);
      if (n == -EAGAIN) {
        exchange_->on_request_splice_blocked();  // then request_flow_changed()
        break;
      }
      if (n <= 0) {
        exchange_->on_request_splice_failed(n == 0 ? UV_EPIPE : static_cast<int>(n));
        continue;  // the exchange dropped its upstream: the pipe ends at the top
      }
      exchange_->on_request_spliced(static_cast<size_t>(n), /*forwarded=*/true);
      continue;
    }
    uint64_t left = h1_->parser.content_left();
    if (left == 0) {
      end_request_splice();
      end_spliced_body();
      break;
    }
    ssize_t n =
        pipe.fill_from(from, static_cast<size_t>(std::min<uint64_t>(left, pipe.capacity())));
    if (n == -EAGAIN) break;  // nothing more now: on_read (UV_ENOBUFS) calls again
    if (n == 0) {
      on_client_eof(UV_EOF);  // mid-body: the client is gone, the connection closes
      break;
    }
    if (n < 0) {
      close_now();
      break;
    }
    h1_->parser.skip_content(static_cast<uint64_t>(n));
    if (timer_kind_ == TimerKind::kActivity) arm_timer(TimerKind::kActivity);  // progress
  }
  pumping_request_ = false;
  update_reading();
}

void ClientConnection::end_request_splice() {
  if (!splicing_request()) return;
  std::unique_ptr<SplicePipe> pipe = std::move(h1_->body_pipe);
  // Bytes read from the client that will never reach the upstream still count as received.
  if (pipe->held() > 0 && exchange_ != nullptr) exchange_->on_request_spliced(pipe->held(), false);
  worker_->pool().pipes().give(std::move(pipe));  // pooled when empty, else closed
}

// Every byte of the body went around the parser: one run on no input ends the message, and the
// connection goes on as if it had parsed them (a pipelined request follows in the socket).
void ClientConnection::end_spliced_body() {
  const char* none = "";
  size_t len = 0;
  if (h1_->parser.step(none, len) != HttpParser::Event::kMessageDone) {
    close_now();  // cannot happen: the parser counted the body down itself
    return;
  }
  on_request_complete();
}

void ClientConnection::request_flow_changed() {
  // The upstream takes more: the pipe's bytes first (the client may have sent its last already,
  // and no readiness would come for them). The pump ends with update_reading().
  if (splicing_request() && h1_->body_pipe->held() > 0) {
    pump_request_body();
    return;
  }
  update_reading();
}

}  // namespace sg
