// Wall-clock time for session timestamps, expiry and HTTP dates. The lowest layer: every folder
// may use it, and it uses nothing from proxy_core.
#pragma once

#include <cstdint>

namespace sg {

// Unix time in milliseconds from the coarse realtime clock (a few ms of resolution is plenty for
// session idle/absolute limits, and it costs no syscall on the request path).
int64_t unix_now_ms();

}  // namespace sg
