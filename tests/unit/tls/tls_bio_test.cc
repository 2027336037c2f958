// TlsBio alone, through the BIO API OpenSSL uses: read windows, leftovers, output targets, the
// bytes written with no target, and the memory-BIO semantics (retry, never EOF).
#include "proxy_core/tls/tls_bio.h"

#include <doctest/doctest.h>
#include <openssl/bio.h>

#include <string>

using sg::TlsBio;

namespace {

struct BioRef {
  BIO* bio;
  explicit BioRef(TlsBio& owner) : bio(owner.make_bio()) { REQUIRE(bio != nullptr); }
  ~BioRef() { BIO_free(bio); }
};

std::string read_some(BIO* bio, size_t want) {
  std::string out(want, '\0');
  size_t got = 0;
  if (BIO_read_ex(bio, out.data(), want, &got) != 1) got = 0;
  out.resize(got);
  return out;
}

}  // namespace

TEST_CASE("TLS BIO with no input asks to retry, never reports an end of stream") {
  TlsBio owner;
  BioRef b(owner);
  char c;
  size_t got = 1;
  CHECK(BIO_read_ex(b.bio, &c, 1, &got) == 0);
  CHECK(got == 0);
  CHECK(BIO_should_retry(b.bio));
  CHECK(BIO_should_read(b.bio));
  CHECK(BIO_eof(b.bio) == 0);
  CHECK(BIO_ctrl_pending(b.bio) == 0);
  CHECK(BIO_flush(b.bio) == 1);
  CHECK(BIO_get_ktls_send(b.bio) == 0);
  CHECK(BIO_get_ktls_recv(b.bio) == 0);
}

TEST_CASE("TLS BIO reads the window in place and keeps what was left unread for the next one") {
  TlsBio owner;
  BioRef b(owner);
  {
    TlsBio::InputWindow in(owner, "hello world", 11);
    CHECK(BIO_ctrl_pending(b.bio) == 11);
    CHECK(read_some(b.bio, 5) == "hello");
    CHECK(owner.readable() == 6);
  }
  // " world" was not read: it is now owned, and read before the next window.
  CHECK(owner.readable() == 6);
  {
    TlsBio::InputWindow in(owner, "!?", 2);
    CHECK(BIO_ctrl_pending(b.bio) == 8);
    CHECK(read_some(b.bio, 3) == " wo");
    // One read spans the end of the kept bytes and the start of the window.
    CHECK(read_some(b.bio, 4) == "rld!");
  }
  CHECK(owner.readable() == 1);  // "?" kept
  {
    TlsBio::InputWindow in(owner, "", 0);
    CHECK(read_some(b.bio, 100) == "?");
    CHECK(read_some(b.bio, 100).empty());
    CHECK(BIO_should_retry(b.bio));
  }
  CHECK(owner.readable() == 0);
}

TEST_CASE("TLS BIO drops the unread input once told nothing more is read") {
  TlsBio owner;
  BioRef b(owner);
  { TlsBio::InputWindow in(owner, "abc", 3); }
  CHECK(owner.readable() == 3);
  {
    TlsBio::InputWindow in(owner, "def", 3);
    CHECK(read_some(b.bio, 1) == "a");
    owner.discard_input();
    CHECK(owner.readable() == 0);
  }
  CHECK(owner.readable() == 0);
  CHECK(BIO_ctrl_pending(b.bio) == 0);
}

TEST_CASE("TLS BIO writes into the call's target, and hands what came with no target over first") {
  TlsBio owner;
  BioRef b(owner);
  std::string net_out = "earlier|";
  {
    TlsBio::OutputTarget out(owner, net_out);
    CHECK(BIO_write(b.bio, "one", 3) == 3);
    CHECK(BIO_write(b.bio, "two", 3) == 3);
  }
  CHECK(net_out == "earlier|onetwo");
  // No call in progress (OpenSSL driven directly): kept, counted, never lost.
  CHECK(BIO_write(b.bio, "ticket", 6) == 6);
  CHECK(net_out == "earlier|onetwo");
  CHECK(owner.unsent() == 6);
  CHECK(BIO_wpending(b.bio) == 6);
  std::string next;
  {
    TlsBio::OutputTarget out(owner, next);
    CHECK(owner.unsent() == 0);
    CHECK(BIO_write(b.bio, "record", 6) == 6);
  }
  CHECK(next == "ticketrecord");
  CHECK(BIO_wpending(b.bio) == 0);
}
