#include "proxy_core/http/websocket_close.h"

#include <algorithm>

namespace sg {

std::string build_ws_close_frame(uint16_t status, std::string_view reason) {
  reason = reason.substr(0, std::min(reason.size(), kWsMaxControlPayload - 2));
  std::string frame;
  frame.reserve(4 + reason.size());
  frame.push_back(static_cast<char>(0x88));               // FIN, opcode 8 (close)
  frame.push_back(static_cast<char>(2 + reason.size()));  // mask bit clear: server to client
  frame.push_back(static_cast<char>(status >> 8));
  frame.push_back(static_cast<char>(status & 0xff));
  frame.append(reason);
  return frame;
}

}  // namespace sg
