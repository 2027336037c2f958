// Exchange, the spliced response body (issue 17 item 4): the upstream connection moves the rest
// of a Content-Length body to the client's socket through a pipe (upstream_splice.cc); the
// exchange says where to, counts the bytes for the access record and the metrics, keeps the
// client's activity timer going, and applies the same backpressure as the copy path. See
// exchange.h.
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

}  // namespace sg
