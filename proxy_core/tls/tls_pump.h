// The two steps every TLS connection owner (ClientConnection, UpstreamConnection) takes around
// a TlsEngine, written once: decrypting what the socket read (tls_feed) and encrypting a batch of
// buffers into one write (tls_encrypt_all). The owner still writes the ciphertext and decides
// what a status means for it (a client error closes, an upstream handshake error is reported).
#pragma once

#include <uv.h>

#include <string>

#include "proxy_core/tls/tls_engine.h"

namespace sg {

struct TlsFed {
  TlsStatus status;
  bool handshake_completed;  // the handshake finished during this feed (not before it)
};

// Clears plain_out and net_out, then feeds `len` ciphertext bytes: plain_out gets the decrypted
// application bytes, net_out what must go to the peer first (handshake flights, alerts).
TlsFed tls_feed(TlsEngine& tls, const char* data, size_t len, std::string& plain_out,
                std::string& net_out);

// The most plaintext one TLS record carries (RFC 8446 5.1, RFC 5246 6.2.1).
inline constexpr size_t kTlsMaxRecordPlaintext = 16384;

// Appends every buffer, in order, encrypted to net_out, consecutive small buffers joined into one
// record. False as soon as the engine refuses one (before the handshake, after close_notify, on
// an error): the owner closes the connection.
bool tls_encrypt_all(TlsEngine& tls, const uv_buf_t* bufs, unsigned count, std::string& net_out);

}  // namespace sg
