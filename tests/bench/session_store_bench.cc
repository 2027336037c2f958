// Figures for the memory store and tokens: bytes per stored session at 1,000,000 sessions, lookup
// cost, token generation + hashing cost. Prints numbers; never fails on a timing.
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "proxy_core/session/token.h"
#include "proxy_core/store/memory_store.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kSessions = 1'000'000;
constexpr int64_t kNow = 1'700'000'000'000;

size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t size = 0;
  size_t resident = 0;
  statm >> size >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

size_t heap_in_use() {
  return mallinfo2().uordblks + mallinfo2().hblkhd;
}

double ns_per(Clock::duration d, size_t n) {
  return std::chrono::duration<double, std::nano>(d).count() / static_cast<double>(n);
}

sg::TokenHash random_key(std::mt19937_64& rng) {
  sg::TokenHash k;
  for (size_t i = 0; i < k.size(); i += 8) {
    const uint64_t v = rng();
    std::copy_n(reinterpret_cast<const uint8_t*>(&v), 8, k.data() + i);
  }
  return k;
}

// Issue 14: what the client address and user agent recorded at creation cost, and what one
// session in a user index costs beyond its user attribute. Two stores of kIndexed sessions, one
// indexing "user" and one not (user_attribute ""), given the same records and the same attribute:
// the difference in heap is the index.
void user_index_figures(std::mt19937_64& rng) {
  constexpr size_t kIndexed = 200'000;
  std::vector<sg::TokenHash> keys(kIndexed);
  for (auto& k : keys)
    k = random_key(rng);
  sg::SessionRecord record;
  record.created_ms = record.last_seen_ms = kNow;
  sg::generate_handle(record.handle);
  record.client_address = "203.0.113.45";
  record.user_agent =  // a common desktop browser's, 111 bytes
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/131.0.0.0 Safari/537.36";
  double per_attr[2] = {0, 0};
  for (int indexed = 1; indexed >= 0; --indexed) {
    malloc_trim(0);
    const size_t heap0 = heap_in_use();
    sg::MemoryStore store(std::chrono::hours(1), std::chrono::hours(12), 2 * kIndexed,
                          indexed ? "user" : "");
    for (const auto& k : keys)
      store.create(k, record, nullptr);
    const size_t heap1 = heap_in_use();
    for (size_t i = 0; i < kIndexed; ++i) {
      sg::SessionChange c;
      c.set.emplace_back("user", "user" + std::to_string(i / 4));  // four devices per user
      store.modify(keys[i], c, kNow, nullptr);
    }
    const size_t heap2 = heap_in_use();
    per_attr[indexed] = static_cast<double>(heap2 - heap1) / kIndexed;
    if (indexed) {
      std::printf("memory per session with origin (heap): %.1f bytes (UA 111 B, address 12 B)\n",
                  static_cast<double>(heap1 - heap0) / kIndexed);
      std::printf("indexed sessions:            %llu of %llu users\n",
                  static_cast<unsigned long long>(store.stats().indexed),
                  static_cast<unsigned long long>(store.stats().users));
    }
  }
  std::printf("user attribute, not indexed: %.1f bytes per session (heap)\n", per_attr[0]);
  std::printf("user attribute, indexed:     %.1f bytes per session (heap)\n", per_attr[1]);
  std::printf("the index alone:             %.1f bytes per indexed session (4 per user)\n",
              per_attr[1] - per_attr[0]);
}

}  // namespace

int main() {
  std::mt19937_64 rng(42);
  std::vector<sg::TokenHash> keys(kSessions);
  for (auto& k : keys)
    k = random_key(rng);
  std::vector<sg::TokenHash> misses(kSessions);
  for (auto& k : misses)
    k = random_key(rng);
  // Lookup keys in a random order, laid out sequentially so the benchmark's own array reads do not
  // add a cache miss per lookup.
  std::vector<sg::TokenHash> probe(2 * kSessions);
  for (auto& p : probe)
    p = keys[rng() % kSessions];

  sg::SessionRecord record;
  record.created_ms = kNow;
  record.last_seen_ms = kNow;
  sg::generate_handle(record.handle);

  // Memory: max_sessions above the count so nothing is evicted while filling.
  malloc_trim(0);
  const size_t rss0 = resident_bytes();
  const size_t heap0 = heap_in_use();
  auto store = std::make_unique<sg::MemoryStore>(std::chrono::hours(1), std::chrono::hours(12),
                                                 kSessions + kSessions / 10);
  const auto t_fill = Clock::now();
  for (const auto& k : keys)
    store->create(k, record, nullptr);
  const auto fill = Clock::now() - t_fill;
  const size_t rss1 = resident_bytes();
  const size_t heap1 = heap_in_use();
  const uint64_t active = store->stats().active;
  std::printf("sessions stored:             %llu (%zu shards)\n",
              static_cast<unsigned long long>(active), store->shard_count());
  std::printf("memory per session (RSS):    %.1f bytes\n",
              static_cast<double>(rss1 - rss0) / static_cast<double>(active));
  std::printf("memory per session (heap):   %.1f bytes\n",
              static_cast<double>(heap1 - heap0) / static_cast<double>(active));
  std::printf("create:                      %.1f ns/op (single thread, growing)\n",
              ns_per(fill, kSessions));

  size_t hits = 0;
  auto count_hit = [&hits](sg::LookupResult r) { hits += r.status == sg::StoreStatus::kOk; };
  auto t0 = Clock::now();
  for (const auto& k : probe)
    store->lookup(k, kNow + 1, count_hit);
  const auto hit_time = Clock::now() - t0;
  std::printf("lookup, hit, random key:     %.1f ns/op (%zu hits)\n",
              ns_per(hit_time, probe.size()), hits);

  hits = 0;
  t0 = Clock::now();
  for (const auto& k : misses)
    store->lookup(k, kNow + 1, count_hit);
  std::printf("lookup, miss, random key:    %.1f ns/op (%zu hits)\n",
              ns_per(Clock::now() - t0, misses.size()), hits);

  // Meaningful only with at least that many cores (hardware_concurrency is printed).
  std::printf("hardware threads:            %u\n", std::thread::hardware_concurrency());
  for (unsigned threads : {2u, 4u}) {
    std::vector<std::thread> pool;
    t0 = Clock::now();
    for (unsigned t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        size_t local = 0;
        for (size_t i = t; i < probe.size(); i += threads) {
          store->lookup(probe[i], kNow + 1, [&local](sg::LookupResult r) {
            local += r.status == sg::StoreStatus::kOk;
          });
        }
      });
    }
    for (auto& th : pool)
      th.join();
    const double wall = ns_per(Clock::now() - t0, probe.size());
    std::printf("lookup, hit, %u threads:      %.1f ns/op wall (%.1f Mops/s)\n", threads, wall,
                1000.0 / wall);
  }

  // A flood of new visitors into a full store: every create evicts a probation session. A tenth of
  // the store came back (protected) and must survive it.
  {
    constexpr size_t kRoom = 100'000;
    sg::MemoryStore full(std::chrono::hours(1), std::chrono::hours(12), kRoom);
    for (size_t i = 0; i < kRoom; ++i) {
      full.create(keys[i], record, nullptr);
      if (i % 10 == 0) full.lookup(keys[i], kNow, nullptr);  // came back
    }
    t0 = Clock::now();
    for (size_t i = kRoom; i < kSessions; ++i)
      full.create(keys[i], record, nullptr);
    const auto st = full.stats();
    std::printf("create, full store (evicts): %.1f ns/op (%llu evicted, %llu protected evicted)\n",
                ns_per(Clock::now() - t0, kSessions - kRoom),
                static_cast<unsigned long long>(st.evicted),
                static_cast<unsigned long long>(st.evicted_protected));
  }

  constexpr size_t kTokens = 200'000;
  char token[sg::kTokenChars];
  uint8_t sink = 0;
  t0 = Clock::now();
  for (size_t i = 0; i < kTokens; ++i) {
    sg::generate_token(token);
    sink ^= sg::hash_token(std::string_view(token, sizeof token))[0];
  }
  std::printf("token generate + hash:       %.1f ns/op\n", ns_per(Clock::now() - t0, kTokens));
  t0 = Clock::now();
  for (size_t i = 0; i < kTokens; ++i) {
    sink ^= sg::hash_token(std::string_view(token, sizeof token))[0];
  }
  std::printf("token hash only:             %.1f ns/op (%u)\n", ns_per(Clock::now() - t0, kTokens),
              sink & 0);
  user_index_figures(rng);
  return 0;
}
