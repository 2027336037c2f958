// TlsEngine: TLS for one connection. No sockets, no libuv: the owner moves the bytes. Ciphertext
// read from the socket goes into feed(); every call that makes ciphertext (handshake messages,
// alerts, records, close_notify) appends it to the caller's `net_out`, which the owner writes to
// the socket. OpenSSL reads from feed()'s buffer and writes into `net_out` directly (tls_bio.h):
// no intermediate copy of the ciphertext.
//
// Owner: one connection, on one thread (an SSL* is not thread-safe). The SSL* holds a reference
// on its SSL_CTX, so the TlsServerContext/TlsClientContext it came from may be swapped or dropped
// (reload) while the connection lives.
//
// Rules for the owner:
// - ORDER: write each `net_out` to the socket before the next engine call's output, i.e. in the
//   order the calls returned. TLS records are a sequence; reordering two outputs breaks the
//   connection. (The simplest way: one scratch string per call, written right after the call.)
// - BOUNDED: feed() consumes all of its input and decrypts every complete record before it
//   returns, so `plain_out` grows by at most `len` plus the partial record left from the previous
//   feed; what stays inside is one incomplete record (< 17 KiB). Nothing is read ahead: the owner
//   applies backpressure exactly as for a plain socket, by not reading (uv_read_stop), and there
//   is never plaintext hiding inside the engine that a later read callback would be needed for.
// - encrypt() refuses plaintext until the handshake is done (kWantMore, nothing consumed): the
//   owner keeps it, as it keeps bytes for a socket that is not connected yet. No hidden buffer.
// - After kError the engine is dead: send what `net_out` got (an alert, best effort), then close.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "proxy_core/tls/tls_bio.h"
#include "proxy_core/tls/tls_context.h"

namespace sg {

enum class TlsStatus {
  kOk,        // progress; the handshake is done (check handshake_done() for "just now")
  kWantMore,  // the handshake needs more bytes from the peer (or encrypt() came too early)
  kClosed,    // the peer sent close_notify: its side is over, like a TCP EOF
  kError,     // fatal; error_text() says why
};

enum class TlsRole { kServer, kClient };

// The largest TLS plaintext record (RFC 8446 §5.1): feed() decrypts into a buffer of this size.
inline constexpr size_t kTlsMaxPlaintextRecord = 16 * 1024;

struct TlsSessionFree {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};
using TlsSession = std::unique_ptr<SSL_SESSION, TlsSessionFree>;

class TlsEngine {
 public:
  // A client connection on the listener.
  explicit TlsEngine(const TlsServerContext& context);
  // A connection to the upstream. `host` is upstream.server_name, or the host of the server
  // address when that is empty: it is sent as SNI (unless it is an IP literal, RFC 6066 §3) and
  // the certificate must match it (DNS name, or IP address SAN for a literal). With verification
  // on, an empty `host` makes start_handshake() fail rather than accept any certificate.
  TlsEngine(const TlsClientContext& context, std::string_view host);
  // Any SSL_CTX (tests, special listeners). The engine takes its own reference.
  TlsEngine(SSL_CTX* context, TlsRole role, std::string_view host = {});
  ~TlsEngine();
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  // Client: writes the ClientHello to `net_out` and returns kWantMore. Server: nothing to do
  // (the client speaks first), returns kWantMore. kError when the engine could not be set up.
  TlsStatus start_handshake(std::string& net_out);

  // Ciphertext from the socket. Advances the handshake, then appends every decrypted byte to
  // `plain_out` and any ciphertext to send (handshake flights, session tickets, alerts, key
  // updates) to `net_out`. Returns kWantMore while handshaking, kOk once done, kClosed after
  // close_notify (plain_out holds the bytes that preceded it; later input is ignored), kError.
  TlsStatus feed(const char* data, size_t len, std::string& plain_out, std::string& net_out);

  // Plaintext to send. REQUIRES handshake_done() (else kWantMore, nothing consumed) and no
  // shutdown() yet (else kError). Appends the records to `net_out`; consumes everything on kOk.
  TlsStatus encrypt(const char* data, size_t len, std::string& net_out);
  TlsStatus encrypt(std::string_view data, std::string& net_out) {
    return encrypt(data.data(), data.size(), net_out);
  }

  // Appends close_notify to `net_out` (RFC 8446 §6.1). Write it, then close or shut down the
  // socket; there is no need to wait for the peer's close_notify. Before the handshake completes
  // there is nothing to send and this only marks the engine closed. Idempotent.
  TlsStatus shutdown(std::string& net_out);

  bool handshake_done() const { return handshake_done_; }
  bool peer_closed() const { return peer_closed_; }  // close_notify received
  bool failed() const { return failed_; }
  std::string_view error_text() const { return error_; }
  // The ALPN protocol agreed ("h2" or "http/1.1"), empty when none.
  std::string_view alpn() const;
  // HTTP/2 was negotiated: the connection speaks HTTP/2 from its first byte (RFC 9113 §3.2).
  bool negotiated_h2() const { return alpn() == "h2"; }
  // Server: the SNI name the client sent (empty when none). Client: the host given at creation.
  std::string_view server_name() const;
  bool session_reused() const;
  std::string_view protocol() const;  // "TLSv1.3"; for logs
  std::string_view cipher() const;    // "TLS_AES_128_GCM_SHA256"; for logs

  // Client session reuse (optional). After a connection has carried data (TLS 1.3 tickets arrive
  // after the handshake), session() returns a resumable session or null; hand it to the next
  // engine for the same upstream with set_session() before start_handshake().
  TlsSession session() const;
  bool set_session(SSL_SESSION* session);

  // For what the API above does not cover (peer certificate details in tests or logs).
  SSL* native_handle() const { return ssl_; }

 private:
  void init(SSL_CTX* context, TlsRole role);
  void set_peer_name();
  TlsStatus decrypt(std::string& plain_out);
  TlsStatus fail(int ssl_error, std::string_view during);

  TlsBio bio_;          // outlives ssl_'s BIO: ~TlsEngine frees ssl_ in its body
  SSL* ssl_ = nullptr;  // owns the BIO
  TlsRole role_ = TlsRole::kServer;
  std::string host_;
  std::string error_;
  bool handshake_done_ = false;
  bool peer_closed_ = false;
  bool shutdown_sent_ = false;
  bool failed_ = false;
};

}  // namespace sg
