// The socket an upstream connection or a health probe talks through: a uv_tcp_t for "HOST:PORT"
// servers, a uv_pipe_t for "unix:" servers, both used as a uv_stream_t once connected, so reading,
// writing, backpressure and pooling have one code path.
#pragma once

#include <uv.h>

#include "proxy_core/net/socket_address.h"

namespace sg {

class UpstreamSocket {
 public:
  // `unix_socket`: a uv_pipe_t (AF_UNIX) instead of a uv_tcp_t. `data` goes to the handle.
  void init(uv_loop_t* loop, bool unix_socket, void* data);
  // Starts connecting to `addr` (whose family must match init's choice). Returns 0 or a libuv
  // error; a Unix socket reports its errors (ENOENT, ECONNREFUSED) through `cb` instead.
  int connect(uv_connect_t* req, const SocketAddress& addr, uv_connect_cb cb);

  bool is_tcp() const { return !unix_; }
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  const uv_stream_t* stream() const { return reinterpret_cast<const uv_stream_t*>(&tcp_); }
  uv_handle_t* handle() { return reinterpret_cast<uv_handle_t*>(&tcp_); }

 private:
  // Both are uv_stream_t underneath (libuv's C "inheritance"): the common head is shared.
  union {
    uv_tcp_t tcp_;
    uv_pipe_t pipe_;
  };
  bool unix_ = false;
};

// A connect error that means "nothing listens there": a refused TCP port, or a Unix socket path
// with no socket file (ENOENT) or no listener behind it.
inline bool is_connect_refusal(int status) {
  return status == UV_ECONNREFUSED || status == UV_ENOENT;
}

}  // namespace sg
