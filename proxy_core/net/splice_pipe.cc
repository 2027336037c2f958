#include "proxy_core/net/splice_pipe.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace sg {

std::unique_ptr<SplicePipe> SplicePipe::open() {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return nullptr;
  // A larger pipe: fewer calls per MiB. The kernel may refuse (pipe-user-pages-soft exceeded):
  // the default size works, only with more calls.
  int got = fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(kSplicePipeBytes));
  if (got <= 0) got = fcntl(fds[1], F_GETPIPE_SZ);
  size_t capacity = got > 0 ? static_cast<size_t>(got) : 64 * 1024;
  return std::unique_ptr<SplicePipe>(new SplicePipe(fds[0], fds[1], capacity));
}

SplicePipe::SplicePipe(int read_end, int write_end, size_t capacity)
    : read_end_(read_end), write_end_(write_end), capacity_(capacity) {}

SplicePipe::~SplicePipe() {
  ::close(read_end_);
  ::close(write_end_);
}

ssize_t SplicePipe::fill_from(int from, size_t max) {
  for (;;) {
    ssize_t n = splice(from, nullptr, write_end_, nullptr, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) held_ += static_cast<size_t>(n);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

ssize_t SplicePipe::drain_to(int to) {
  for (;;) {
    ssize_t n = splice(read_end_, nullptr, to, nullptr, held_, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) held_ -= static_cast<size_t>(n);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

std::unique_ptr<SplicePipe> SplicePipePool::take() {
  if (pipes_.empty()) return SplicePipe::open();
  std::unique_ptr<SplicePipe> p = std::move(pipes_.back());
  pipes_.pop_back();
  return p;
}

void SplicePipePool::give(std::unique_ptr<SplicePipe> pipe) {
  if (pipe == nullptr || pipe->held() != 0 || pipes_.size() >= kMaxPooled) return;  // closed
  pipes_.push_back(std::move(pipe));
}

}  // namespace sg
