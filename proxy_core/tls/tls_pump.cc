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
  // Every SSL_write seals at least one record: a response head and its short body written as two
  // buffers would cost two records (two AEAD set-ups, two MACs, 22 more bytes on the wire). Runs
  // of small buffers are joined first, up to one full record; a buffer of a record or more goes
  // alone, uncopied. The copy is a few hundred bytes against a record's fixed cost.
  thread_local std::string joined;  // one per worker thread, kept for its capacity
  unsigned i = 0;
  while (i < count) {
    size_t run = 0;
    unsigned end = i;
    while (end < count && run + bufs[end].len <= kTlsMaxRecordPlaintext)
      run += bufs[end++].len;
    if (end - i < 2) {  // nothing to join: a lone small buffer, or one that fills a record
      if (tls.encrypt(bufs[i].base, bufs[i].len, net_out) != TlsStatus::kOk) return false;
      ++i;
      continue;
    }
    joined.clear();
    for (; i < end; ++i)
      joined.append(bufs[i].base, bufs[i].len);
    if (tls.encrypt(joined.data(), joined.size(), net_out) != TlsStatus::kOk) return false;
  }
  return true;
}

}  // namespace sg
