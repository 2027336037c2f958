// Figures for issue 14's tunnel registry (session/session_watch.h): heap bytes per watched
// session and per extra tunnel of a watched session, and the cost of add + remove. Prints
// numbers; never fails on a timing.
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "proxy_core/session/session_watch.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kSessions = 100'000;

struct Tunnel final : sg::SessionWatcher {
  void session_ended() override {}
};

size_t heap_in_use() {
  return mallinfo2().uordblks + mallinfo2().hblkhd;
}

template <typename A>
void fill(A& a, std::mt19937_64& rng) {
  for (auto& b : a)
    b = static_cast<uint8_t>(rng());
}

}  // namespace

int main() {
  std::mt19937_64 rng(42);
  std::vector<sg::SessionHandle> handles(kSessions);
  std::vector<sg::TokenHash> keys(kSessions);
  for (size_t i = 0; i < kSessions; ++i) {
    fill(handles[i], rng);
    fill(keys[i], rng);
  }
  std::vector<Tunnel> tunnels(2 * kSessions);  // allocated before measuring
  sg::SessionWatch watch;
  const size_t before = heap_in_use();
  const auto t0 = Clock::now();
  for (size_t i = 0; i < kSessions; ++i)
    watch.add(&tunnels[i], handles[i], keys[i]);
  const auto t1 = Clock::now();
  const size_t one = heap_in_use();
  for (size_t i = 0; i < kSessions; ++i)
    watch.add(&tunnels[kSessions + i], handles[i], keys[i]);  // a second tunnel per session
  const size_t two = heap_in_use();
  const auto t2 = Clock::now();
  for (size_t i = 0; i < 2 * kSessions; ++i)
    watch.remove(&tunnels[i]);
  const auto t3 = Clock::now();
  auto ns = [](Clock::duration d, size_t n) {
    return std::chrono::duration<double, std::nano>(d).count() / static_cast<double>(n);
  };
  std::printf("watched sessions: %zu\n", kSessions);
  std::printf(
      "heap per watched session: %.1f bytes (registry only; the watcher's own links: %zu)\n",
      static_cast<double>(one - before) / kSessions,
      sizeof(Tunnel) - sizeof(void*));  // minus the vtable pointer
  std::printf("heap per extra tunnel of a watched session: %.1f bytes\n",
              static_cast<double>(two - one) / kSessions);
  std::printf("add (new session): %.0f ns, remove: %.0f ns\n", ns(t1 - t0, kSessions),
              ns(t3 - t2, 2 * kSessions));
  std::printf("left watched: %zu\n", watch.sessions());
  return 0;
}
