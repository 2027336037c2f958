// Exchange, spliced bodies (issue 17 item 4). A response body: the upstream connection moves the
// rest of a Content-Length body to the client's socket through a pipe (upstream_splice.cc). A
// request body: the HTTP/1.1 client connection moves the rest of a Content-Length body to the
// upstream's socket (client_splice.cc). Either way the exchange says where to, counts the bytes
// for the access record and the metrics, keeps the timers going, and applies the same
// backpressure as the copy path. See exchange.h.
#include "proxy_core/exchange.h"

namespace sg {

int Exchange::upstream_splice_target(UpstreamChannel* c) {
  if (c != upstream_ || closed_ || phase_ != Phase::kForward || response_ != Response::kStarted ||
      !config_->upstream.splice)
    return -1;
  return downstream_->raw_body_fd();
}

void Exchange::on_upstream_spliced(UpstreamChannel* c, size_t n) {
  if (c != upstream_ || closed_) return;
  response_body_bytes_ += n;
  services_->metrics().bytes_spliced.add(n);
  downstream_->touch_client_timer();  // the client takes bytes: it is alive
}

// The client's socket is full: exactly the copy path's high water mark. The upstream stops being
// read (its response timeout waits; the client's activity timeout bounds the stall).
void Exchange::on_upstream_splice_blocked(UpstreamChannel* c) {
  if (c != upstream_ || closed_) return;
  client_output_full();
  downstream_->await_writable();  // then client_output_drained(): resume_reading()
}

void Exchange::on_upstream_splice_failed(UpstreamChannel* c, int) {
  if (c != upstream_ || closed_) return;
  downstream_->abort();  // the client is gone: close, which releases (closes) the upstream
}

// ---- the request body ----

int Exchange::request_splice_target() {
  if (upstream_ == nullptr || closed_ || phase_ != Phase::kForward || hold_ != Hold::kNone ||
      request_framing_ != BodyFraming::kContentLength || !config_->upstream.splice)
    return -1;
  return upstream_->raw_request_fd();
}

void Exchange::on_request_spliced(size_t n, bool forwarded) {
  if (closed_) return;
  request_body_bytes_ += n;  // read from the client, as on_request_body counts a dropped rest
  if (!forwarded || upstream_ == nullptr) return;
  services_->metrics().bytes_spliced_request.add(n);
  // As on the copy path: a long upload is progress, and so is the client's.
  upstream_->start_timer(config_->upstream.response_timeout);
  downstream_->touch_client_timer();
}

void Exchange::on_request_splice_blocked() {
  if (upstream_ == nullptr || closed_) return;
  request_splice_blocked_ = true;  // the copy path's high water mark
  upstream_->await_writable();     // then on_upstream_drained
}

void Exchange::on_request_splice_failed(int status) {
  if (upstream_ != nullptr && !closed_) upstream_->fail(status);  // on_upstream_closed
}

}  // namespace sg
