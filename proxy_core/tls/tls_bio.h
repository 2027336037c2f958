// TlsBio: the one OpenSSL BIO between a TlsEngine's SSL* and its owner's buffers, so that
// ciphertext is not copied through memory BIOs (BIO_s_mem) on its way in and out.
//
// - Read side: OpenSSL reads straight from the buffer of the current feed() (an InputWindow set
//   for the duration of the call). Bytes OpenSSL has not read when the call ends are copied into
//   an owned buffer that the next window is read after (in practice empty: OpenSSL stops reading
//   only when the BIO has nothing left, or at close_notify or an error, which discard_input()).
// - Write side: OpenSSL appends straight to the `net_out` of the current engine call (an
//   OutputTarget). Bytes written while no target is set (OpenSSL driven through native_handle())
//   go to an owned buffer that the next OutputTarget hands over first: never lost, never
//   reordered.
// - Semantics of a memory BIO with eof_return -1: no input is a retry (never an end of stream,
//   the socket's EOF is the owner's business); writes always succeed; ctrl answers FLUSH with 1,
//   PENDING/WPENDING with the owned counts, and everything else (EOF, KTLS queries) with 0.
//
// Owner: one TlsEngine, on its thread. The TlsBio must outlive the BIO it made (the engine frees
// its SSL*, which frees the BIO, before its members). Idle, both owned buffers are empty and hold
// no capacity: an idle connection costs the BIO and this object only.
#pragma once

#include <openssl/bio.h>

#include <cstddef>
#include <string>

namespace sg {

class TlsBio {
 public:
  TlsBio() = default;
  TlsBio(const TlsBio&) = delete;
  TlsBio& operator=(const TlsBio&) = delete;

  // A new BIO (one reference, for SSL_set_bio(ssl, bio, bio)) reading and writing through this
  // object; nullptr when out of memory.
  BIO* make_bio();

  // Ciphertext from the socket readable by OpenSSL while this lives. On destruction, the bytes
  // OpenSSL left unread are kept for the next window. REQUIRES: no other window is open.
  class InputWindow {
   public:
    InputWindow(TlsBio& bio, const char* data, size_t len);
    ~InputWindow();
    InputWindow(const InputWindow&) = delete;
    InputWindow& operator=(const InputWindow&) = delete;

   private:
    TlsBio& bio_;
  };

  // OpenSSL's output goes to `net_out` while this lives, after the bytes written without a
  // target since the last call. REQUIRES: no other target is set.
  class OutputTarget {
   public:
    OutputTarget(TlsBio& bio, std::string& net_out);
    ~OutputTarget();
    OutputTarget(const OutputTarget&) = delete;
    OutputTarget& operator=(const OutputTarget&) = delete;

   private:
    TlsBio& bio_;
  };

  // Drops the unread input, now and at the end of the current window: after close_notify or a
  // fatal error nothing more is read.
  void discard_input();

  size_t readable() const { return (rest_.size() - rest_read_) + (window_len_ - window_read_); }
  size_t unsent() const { return unsent_.size(); }  // written with no target, not handed over
  // Out of memory keeping the unread input of a window: the stream has a hole, the connection is
  // dead. Checked by the owner after the window is closed.
  bool input_lost() const { return input_lost_; }

 private:
  static const BIO_METHOD* method();
  static int on_read(BIO* bio, char* out, size_t want, size_t* got);
  static int on_write(BIO* bio, const char* data, size_t len, size_t* written);
  static long on_ctrl(BIO* bio, int cmd, long num, void* ptr);
  size_t read(char* out, size_t want);
  void close_window();

  // The current feed()'s bytes; window_read_ of them were read.
  const char* window_ = nullptr;
  size_t window_len_ = 0;
  size_t window_read_ = 0;
  // The unread bytes of earlier windows, read before the current one; rest_read_ of them read.
  std::string rest_;
  size_t rest_read_ = 0;
  bool input_lost_ = false;
  std::string* target_ = nullptr;  // the current call's net_out
  std::string unsent_;             // written with no target
};

}  // namespace sg
