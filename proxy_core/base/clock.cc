#include "proxy_core/base/clock.h"

#include <ctime>

namespace sg {

int64_t unix_now_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace sg
