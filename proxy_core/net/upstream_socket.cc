#include "proxy_core/net/upstream_socket.h"

namespace sg {

void UpstreamSocket::init(uv_loop_t* loop, bool unix_socket, void* data) {
  unix_ = unix_socket;
  if (unix_) {
    uv_pipe_init(loop, &pipe_, 0);
  } else {
    uv_tcp_init(loop, &tcp_);
  }
  handle()->data = data;
}

int UpstreamSocket::connect(uv_connect_t* req, const SocketAddress& addr, uv_connect_cb cb) {
  if (unix_) {
    uv_pipe_connect(req, &pipe_, unix_address_path(addr), cb);  // errors arrive in cb
    return 0;
  }
  uv_tcp_nodelay(&tcp_, 1);
  return uv_tcp_connect(req, &tcp_, addr.get(), cb);
}

}  // namespace sg
