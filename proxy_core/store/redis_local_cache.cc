#include "proxy_core/store/redis_local_cache.h"

#include <cstring>

namespace sg {

size_t RedisLocalCache::KeyHasher::operator()(const TokenHash& key) const {
  size_t v;
  std::memcpy(&v, key.data(), sizeof v);
  return v;
}

RedisLocalCache::RedisLocalCache(int64_t max_age_ms, size_t capacity)
    : max_age_ms_(max_age_ms), capacity_(capacity) {}

const SessionRecord* RedisLocalCache::find(const TokenHash& key, int64_t now_ms) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  // A clock stepped back counts as old too: the entry's age is then unknown.
  if (now_ms - it->second.read_at_ms >= max_age_ms_ || now_ms < it->second.read_at_ms) {
    entries_.erase(it);  // its place in order_ goes stale
    return nullptr;
  }
  return &it->second.record;
}

RedisLocalCache::ReadTicket RedisLocalCache::begin_read(const TokenHash& key) {
  ++in_flight_[key].reads;
  return ReadTicket{++read_seq_, clears_};
}

bool RedisLocalCache::finish_read(const ReadTicket& ticket, const TokenHash& key) {
  auto it = in_flight_.find(key);
  if (it == in_flight_.end()) return false;  // no begin_read: nothing to trust
  const bool spoiled = ticket.seq <= it->second.invalidated_at;
  if (--it->second.reads == 0) in_flight_.erase(it);
  return !spoiled && ticket.clears == clears_;
}

void RedisLocalCache::insert(const TokenHash& key, const SessionRecord& record, int64_t now_ms) {
  while (!order_.empty() && order_.size() >= capacity_)
    drop_oldest();
  Entry& e = entries_[key];
  e.record = record;
  e.read_at_ms = now_ms;
  e.id = ++next_id_;
  order_.emplace_back(key, e.id);
}

void RedisLocalCache::drop_oldest() {
  const auto& [key, id] = order_.front();
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second.id == id) entries_.erase(it);
  order_.pop_front();
}

void RedisLocalCache::invalidate(const TokenHash& key) {
  entries_.erase(key);
  auto it = in_flight_.find(key);
  if (it != in_flight_.end()) it->second.invalidated_at = read_seq_;
}

void RedisLocalCache::clear() {
  entries_.clear();
  order_.clear();
  ++clears_;  // spoils every read in flight (their counts in in_flight_ stay exact)
}

}  // namespace sg
