// ClientConnection, HTTP/2: choosing the protocol (ALPN "h2" after the TLS handshake, or the h2c
// preface on a plain listener with server.http2_cleartext) and the transport side of an
// H2Connection (h2_connection.h). See client_connection.h.
#include "proxy_core/client_connection.h"
#include "proxy_core/h2_connection.h"
#include "proxy_core/net/stream_io.h"
#include "proxy_core/worker.h"

namespace sg {

// Every plaintext byte from the client goes through here.
void ClientConnection::on_client_bytes(const char* data, size_t len) {
  if (h2_ != nullptr) {
    h2_->receive(data, len);
    return;
  }
  if (!sniff_h2c_) {
    on_plaintext(data, len);
    return;
  }
  // Prior knowledge (RFC 9113 §3.3): the first bytes say which protocol. They may come in
  // pieces; a strict prefix of the preface waits in the unparsed bytes (nothing else reads them
  // yet).
  std::string& pending = h1().pending;
  pending.append(data, len);
  switch (match_h2_preface(pending)) {
    case H2Preface::kNeedMore:
      return;
    case H2Preface::kYes: {
      std::string bytes;
      bytes.swap(pending);
      release_h1();  // HTTP/2 has its own parser
      start_h2();
      h2_->receive(bytes.data(), bytes.size());
      return;
    }
    case H2Preface::kNo: {
      sniff_h2c_ = false;
      std::string bytes;
      bytes.swap(pending);
      on_plaintext(bytes.data(), bytes.size());
      return;
    }
  }
}

void ClientConnection::start_h2() {
  sniff_h2c_ = false;
  arm_timer(TimerKind::kNone);  // the HTTP/2 connection runs its own timers
  h2_ = new H2Connection(*this, worker_->loop(), *worker_, worker_->exchanges(), facts_);
  set_reading(true);
  if (draining_) h2_->drain();  // the handshake ended after the drain began
}

bool ClientConnection::h2_write(std::string_view bytes) {
  return write_client(bytes);
}

size_t ClientConnection::h2_write_queued() const {
  return queued_bytes(reinterpret_cast<const uv_stream_t*>(&tcp_));
}

void ClientConnection::h2_set_reading(bool on) {
  if (!closing_) set_reading(on);
}

void ClientConnection::h2_finished() {
  close_after_flush();
}

}  // namespace sg
