// Writing to a libuv stream without losing order or bytes, and without copying when the kernel
// takes everything at once.
//
// uv_try_write goes first (it refuses while earlier writes are queued, which keeps order); what it
// could not send is copied into a WriteRequest that lives until its write callback (libuv's rule:
// a buffer must outlive its write). The callback is the stream owner's `after_write`.
#pragma once

#include <uv.h>

#include <string>
#include <string_view>

namespace sg {

// High and low water marks for backpressure: stop reading the sending side once the receiving
// side has this much queued in user space; resume below the low mark. The kernel's socket buffer
// (autotuned to megabytes) is the real buffer; ours only has to cover one read, so a slow reader
// costs at most about one read buffer over the high mark (~105 KiB per slow-read connection under
// slowhttptest, was ~300 KiB at 256/64 KiB; 1 MiB body throughput unchanged).
inline constexpr size_t kWriteHighWater = 64 * 1024;
inline constexpr size_t kWriteLowWater = 16 * 1024;

struct WriteRequest {
  uv_write_t req;
  std::string data;
};

// Writes `count` buffers in order. Returns 0 or a libuv error (the stream is unusable then).
// `done` runs for queued writes only, with the WriteRequest already freed.
int stream_write(uv_stream_t* stream, const uv_buf_t* bufs, unsigned count,
                 void (*done)(uv_stream_t* stream, int status));
inline int stream_write(uv_stream_t* stream, std::string_view data,
                        void (*done)(uv_stream_t* stream, int status)) {
  uv_buf_t buf = uv_buf_init(const_cast<char*>(data.data()), static_cast<unsigned>(data.size()));
  return stream_write(stream, &buf, 1, done);
}

inline size_t queued_bytes(const uv_stream_t* stream) {
  return uv_stream_get_write_queue_size(stream);
}

}  // namespace sg
