#include "proxy_core/tls/tls_pump.h"

namespace sg {

TlsFed tls_feed(TlsEngine& tls, const char* data, size_t len, std::string& plain_out,
                std::string& net_out) {
  bool was_done = tls.handshake_done();
  plain_out.clear();
  net_out.clear();
  TlsStatus st = tls.feed(data, len, plain_out, net_out);
  return {st, !was_done && tls.handshake_done()};
}

bool tls_encrypt_all(TlsEngine& tls, const uv_buf_t* bufs, unsigned count, std::string& net_out) {
  for (unsigned i = 0; i < count; ++i) {
    if (tls.encrypt(bufs[i].base, bufs[i].len, net_out) != TlsStatus::kOk) return false;
  }
  return true;
}

}  // namespace sg
