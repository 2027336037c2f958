#include "proxy_core/tls/tls_bio.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace sg {

namespace {

// A string that was needed once (a partial record, output with no target) gives its capacity
// back when emptied: an idle connection keeps nothing.
void release(std::string& s) {
  std::string().swap(s);
}

}  // namespace

const BIO_METHOD* TlsBio::method() {
  // Built once per process (a function-local static is initialized thread-safely) and never
  // freed: every engine on every worker shares it.
  static BIO_METHOD* const kMethod = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOURCE_SINK | BIO_get_new_index(), "sessiongate tls");
    if (m == nullptr) return m;
    if (BIO_meth_set_read_ex(m, on_read) != 1 || BIO_meth_set_write_ex(m, on_write) != 1 ||
        BIO_meth_set_ctrl(m, on_ctrl) != 1 ||
        BIO_meth_set_create(m, [](BIO* b) {
          BIO_set_init(b, 1);  // else BIO_read/BIO_write refuse it as uninitialized
          return 1;
        }) != 1) {
      BIO_meth_free(m);
      return static_cast<BIO_METHOD*>(nullptr);
    }
    return m;
  }();
  return kMethod;
}

BIO* TlsBio::make_bio() {
  const BIO_METHOD* m = method();
  BIO* bio = m != nullptr ? BIO_new(m) : nullptr;
  if (bio != nullptr) BIO_set_data(bio, this);
  return bio;
}

int TlsBio::on_read(BIO* bio, char* out, size_t want, size_t* got) {
  BIO_clear_retry_flags(bio);
  *got = static_cast<TlsBio*>(BIO_get_data(bio))->read(out, want);
  if (*got > 0) return 1;
  // Like a memory BIO with eof_return -1: "nothing yet", so SSL_get_error says WANT_READ.
  BIO_set_retry_read(bio);
  return 0;
}

size_t TlsBio::read(char* out, size_t want) {
  size_t n = 0;
  if (rest_read_ < rest_.size()) {
    n = std::min(want, rest_.size() - rest_read_);
    std::memcpy(out, rest_.data() + rest_read_, n);
    rest_read_ += n;
    if (rest_read_ == rest_.size()) {
      release(rest_);
      rest_read_ = 0;
    }
  }
  size_t from_window = std::min(want - n, window_len_ - window_read_);
  if (from_window > 0) {
    std::memcpy(out + n, window_ + window_read_, from_window);
    window_read_ += from_window;
    n += from_window;
  }
  return n;
}

int TlsBio::on_write(BIO* bio, const char* data, size_t len, size_t* written) {
  BIO_clear_retry_flags(bio);
  auto* self = static_cast<TlsBio*>(BIO_get_data(bio));
  std::string& to = self->target_ != nullptr ? *self->target_ : self->unsent_;
  try {
    to.append(data, len);
  } catch (const std::bad_alloc&) {  // no exception through OpenSSL's C frames
    *written = 0;
    return 0;
  }
  *written = len;
  return 1;
}

long TlsBio::on_ctrl(BIO* bio, int cmd, long /*num*/, void* /*ptr*/) {
  const auto* self = static_cast<const TlsBio*>(BIO_get_data(bio));
  switch (cmd) {
    case BIO_CTRL_FLUSH:  // OpenSSL flushes after each flight: the bytes are already out
      return 1;
    case BIO_CTRL_PENDING:
      return static_cast<long>(self->readable());
    case BIO_CTRL_WPENDING:
      return static_cast<long>(self->unsent());
    default:  // BIO_CTRL_EOF (never: no input means "retry"), KTLS queries (no KTLS), the rest
      return 0;
  }
}

void TlsBio::close_window() {
  if (window_read_ < window_len_) {
    // OpenSSL stopped before the end of the window: keep the rest for the next feed().
    if (rest_read_ > 0) {
      rest_.erase(0, rest_read_);
      rest_read_ = 0;
    }
    try {
      rest_.append(window_ + window_read_, window_len_ - window_read_);
    } catch (const std::bad_alloc&) {  // called from a destructor: report, do not throw
      release(rest_);
      rest_read_ = 0;
      input_lost_ = true;
    }
  }
  window_ = nullptr;
  window_len_ = window_read_ = 0;
}

void TlsBio::discard_input() {
  release(rest_);
  rest_read_ = 0;
  window_read_ = window_len_;
}

TlsBio::InputWindow::InputWindow(TlsBio& bio, const char* data, size_t len) : bio_(bio) {
  bio_.window_ = data;
  bio_.window_len_ = len;
  bio_.window_read_ = 0;
}

TlsBio::InputWindow::~InputWindow() {
  bio_.close_window();
}

TlsBio::OutputTarget::OutputTarget(TlsBio& bio, std::string& net_out) : bio_(bio) {
  if (!bio_.unsent_.empty()) {
    net_out += bio_.unsent_;
    release(bio_.unsent_);
  }
  bio_.target_ = &net_out;
}

TlsBio::OutputTarget::~OutputTarget() {
  bio_.target_ = nullptr;
}

}  // namespace sg
