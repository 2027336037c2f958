// The WebSocket close frame the gateway sends itself (RFC 6455 §5.5.1), for a tunnel whose
// session ended: the client learns why (status 1008, policy violation) before the TCP connection
// closes. No I/O, no state.
//
// A server's frames are never masked (§5.1). A control frame's payload is at most 125 bytes
// (§5.5): the 2-byte status code, then the reason, which is cut to fit (at a byte, so the caller
// passes ASCII). The whole frame is therefore at most 127 bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sg {

inline constexpr uint16_t kWsClosePolicyViolation = 1008;
inline constexpr size_t kWsMaxControlPayload = 125;

// FIN + opcode 0x8, unmasked length, the status in network byte order, then `reason`.
std::string build_ws_close_frame(uint16_t status, std::string_view reason);

}  // namespace sg
