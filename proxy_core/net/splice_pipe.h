// A kernel pipe for splice(2): bytes move socket -> pipe -> socket without entering user space
// (issue 17 item 4). With TCP on both ends the kernel hands page references along instead of
// copying, which removes the two copies a read()/write() relay pays per byte.
//
// Contract
// - One pipe per relay in flight; a worker pools the empty ones (SplicePipePool) so that a
//   keep-alive stream of large bodies opens no pipe per request. A pipe that still holds bytes
//   when its relay ends (the client went away) is closed, never pooled: its bytes belong to no
//   one.
// - Both ends are non-blocking and close-on-exec. Every call is non-blocking: -EAGAIN says "not
//   now", never "later in this call".
// - The capacity (kSplicePipeBytes, or what the kernel gives when it refuses) bounds what a
//   relay holds while its reader is slow: it is the relay's whole buffer. An unprivileged user
//   past /proc/sys/fs/pipe-user-pages-soft (64 MiB of pipes by default, about 256 relays at once
//   at 256 KiB) gets small pipes: still correct, with more splice calls per MiB.
// - Thread: one worker's loop; no locks.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace sg {

// 256 KiB: four times fewer splice calls per MiB than the 64 KiB default; under the unprivileged
// limit (/proc/sys/fs/pipe-max-size, 1 MiB by default).
inline constexpr size_t kSplicePipeBytes = 256 * 1024;
// A body is spliced only when at least this much of it is left after the first read: below,
// read() and write() cost as much as the pipe's calls.
inline constexpr uint64_t kSpliceMinBytes = 32 * 1024;

class SplicePipe {
 public:
  // A pipe, or nullptr when the process is out of descriptors.
  static std::unique_ptr<SplicePipe> open();
  ~SplicePipe();
  SplicePipe(const SplicePipe&) = delete;
  SplicePipe& operator=(const SplicePipe&) = delete;

  // Moves up to `max` bytes from socket `from` into the pipe: bytes moved, 0 at the peer's end
  // of stream, or -errno (-EAGAIN: the socket has nothing now, or the pipe is full).
  ssize_t fill_from(int from, size_t max);
  // Moves what the pipe holds to socket `to`: bytes moved or -errno (-EAGAIN: the socket is full).
  ssize_t drain_to(int to);
  size_t held() const { return held_; }
  size_t capacity() const { return capacity_; }

 private:
  SplicePipe(int read_end, int write_end, size_t capacity);
  int read_end_;
  int write_end_;
  size_t capacity_;
  size_t held_ = 0;  // bytes in the pipe (moved in, not yet out)
};

// The worker's empty pipes. take() opens one when none is pooled; give() keeps an empty one (up to
// kMaxPooled) and closes the rest.
class SplicePipePool {
 public:
  std::unique_ptr<SplicePipe> take();
  void give(std::unique_ptr<SplicePipe> pipe);
  size_t pooled() const { return pipes_.size(); }

 private:
  static constexpr size_t kMaxPooled = 16;  // descriptors kept: 2 each
  std::vector<std::unique_ptr<SplicePipe>> pipes_;
};

}  // namespace sg
