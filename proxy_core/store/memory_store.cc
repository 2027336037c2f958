#include "proxy_core/store/memory_store.h"

#include <algorithm>
#include <mutex>
#include <vector>

#include "proxy_core/ops/audit_log.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/session/token.h"
#include "proxy_core/store/memory_store_shard.h"
#include "proxy_core/store/memory_store_users.h"

namespace sg {
namespace {

using memory_store_detail::kNil;
using memory_store_detail::kNoSlot;
using memory_store_detail::kProbation;
using memory_store_detail::kProtected;
using memory_store_detail::load_u32;
using memory_store_detail::Marker;
using memory_store_detail::Segment;
using memory_store_detail::SessionExtra;

// The memory figure in memory_store.h (about 100 bytes a session) rests on this.
static_assert(sizeof(void*) != 8 || sizeof(memory_store_detail::Shard::Node) == 80,
              "a session node grew: update the memory figure or pack it again");

auto by_name(const std::pair<std::string, std::string>& a, const std::string& name) {
  return a.first < name;
}

// `change`'s removes and sets applied to `attrs`. False (attrs unspecified) when the change sets
// something and the result breaks the bounds. An empty value in `set` removes, like a directive.
bool apply_change(SessionAttributes& attrs, const SessionChange& change) {
  for (const std::string& name : change.remove) {
    auto it = std::lower_bound(attrs.begin(), attrs.end(), name, by_name);
    if (it != attrs.end() && it->first == name) attrs.erase(it);
  }
  for (const auto& [name, value] : change.set) {
    auto it = std::lower_bound(attrs.begin(), attrs.end(), name, by_name);
    const bool present = it != attrs.end() && it->first == name;
    if (value.empty()) {
      if (present) attrs.erase(it);
    } else if (present) {
      it->second = value;
    } else {
      attrs.emplace(it, name, value);
    }
  }
  if (change.set.empty()) return true;
  if (change.max_attributes != 0 && attrs.size() > change.max_attributes) return false;
  uint64_t bytes = 0;
  for (const auto& [name, value] : attrs)
    bytes += name.size() + value.size();
  return change.max_attribute_bytes == 0 || bytes <= change.max_attribute_bytes;
}

void store_attributes(std::unique_ptr<SessionExtra>& extra, SessionAttributes&& attrs) {
  if (!extra) {
    if (attrs.empty()) return;
    extra = std::make_unique<SessionExtra>();
  }
  extra->attrs = std::move(attrs);
  if (extra->empty()) extra.reset();
}

bool has_attributes(const memory_store_detail::Shard::Node& node) {
  return node.extra && !node.extra->attrs.empty();
}

const SessionAttributes* attributes_of(const memory_store_detail::Shard::Node& node) {
  return node.extra ? &node.extra->attrs : nullptr;
}

}  // namespace

MemoryStore::MemoryStore(Millis idle_timeout, Millis absolute_timeout, uint64_t max_sessions,
                         std::string user_attribute)
    : idle_ms_(idle_timeout.count()),
      absolute_ms_(absolute_timeout.count()),
      user_attribute_(std::move(user_attribute)),
      users_(std::make_unique<memory_store_detail::UserIndex>()) {
  max_sessions = std::max<uint64_t>(max_sessions, 1);
  while (shard_count_ * 2 <= kMaxShards &&
         max_sessions / (shard_count_ * 2) >= kMinSessionsPerShard) {
    shard_count_ *= 2;
  }
  shards_ = std::make_unique<Shard[]>(shard_count_);
  for (size_t i = 0; i < shard_count_; ++i) {
    shards_[i].capacity = max_sessions / shard_count_ + (i < max_sessions % shard_count_ ? 1 : 0);
    shards_[i].marker_capacity = std::max(shards_[i].capacity, kMinMarkersPerShard);
  }
}

MemoryStore::~MemoryStore() = default;

size_t MemoryStore::shard_index(const TokenHash& key) const {
  return load_u32(key.data()) & (shard_count_ - 1);  // shard_count_ is a power of two
}

MemoryStore::Shard& MemoryStore::shard_for(const TokenHash& key) const {
  return shards_[shard_index(key)];
}

ExpiryKind MemoryStore::expiry_of(int64_t created_ms, int64_t last_seen_ms, int64_t now_ms) const {
  if (now_ms - created_ms > absolute_ms_) return ExpiryKind::kAbsolute;
  if (now_ms - last_seen_ms > idle_ms_) return ExpiryKind::kIdle;
  return ExpiryKind::kNone;
}

void MemoryStore::count_removal(Removal why) {
  switch (why) {
    case Removal::kExpiredIdle:
      expired_idle_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Removal::kExpiredAbsolute:
      expired_absolute_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Removal::kEvicted:
      evicted_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Removal::kDestroyed:
      destroyed_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Removal::kUserCap:
      evicted_user_cap_.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  active_.fetch_sub(1, std::memory_order_relaxed);
}

void MemoryStore::erase_session(Shard& shard, size_t slot, Removal why) {
  const Shard::Node& node = shard.node_at(slot);
  const std::string* user = user_of(attributes_of(node));
  if (user != nullptr) users_->leave(*user, node.key);
  // Destroys are audited by whoever asked, with their reason; the store's own removals here.
  if (why != Removal::kDestroyed)
    audit_removal(node.handle, user, node.extra ? node.extra->client_address() : std::string_view(),
                  why);
  count_removal(why);
  // Live connections of the session close (issue 14); the sink's locks are leaves.
  if (SessionEndSink* sink = end_sink_.load(std::memory_order_acquire))
    sink->session_ended(node.handle);
  shard.erase_slot(slot);
}

// The audit log's mutex is a leaf lock (ops/audit_log.h), so writing under the shard lock cannot
// deadlock; with the audit log off (the default) this is one atomic load.
void MemoryStore::audit_removal(const SessionHandle& handle, const std::string* user,
                                std::string_view client, Removal why) const {
  AuditLog* log = process_audit_log();
  if (log == nullptr || !log->enabled()) return;
  AuditEvent e;
  switch (why) {
    case Removal::kExpiredIdle:
      e.event = "expired", e.reason = "idle";
      break;
    case Removal::kExpiredAbsolute:
      e.event = "expired", e.reason = "absolute";
      break;
    case Removal::kEvicted:
      e.event = "evicted";
      break;
    case Removal::kUserCap:
      e.event = "evicted", e.reason = "user-cap";
      break;
    case Removal::kDestroyed:
      return;
  }
  const std::string hex = handle_to_hex(handle);
  e.session = hex;
  if (user != nullptr) e.user = *user;
  e.client = client;
  log->write(e);
}

uint64_t MemoryStore::make_room(Shard& shard, int64_t now_ms) {
  uint64_t protected_evicted = 0;
  while (shard.size >= shard.capacity && shard.size > 0) {
    const Shard::List& prot = shard.lists[kProtected];
    const Shard::List& prob = shard.lists[kProbation];
    uint32_t victim = prob.tail;
    // An expired protected session is a free victim; otherwise probation goes first.
    if (prot.tail != kNil) {
      const Shard::Node& t = shard.nodes[prot.tail];
      if (victim == kNil || expiry_of(t.created_ms, t.last_seen_ms, now_ms) != ExpiryKind::kNone)
        victim = prot.tail;
    }
    const Shard::Node& node = shard.nodes[victim];
    // A victim that has already expired is counted as expired, not as a capacity eviction.
    Removal why = Removal::kEvicted;
    switch (expiry_of(node.created_ms, node.last_seen_ms, now_ms)) {
      case ExpiryKind::kAbsolute:
        why = Removal::kExpiredAbsolute;
        break;
      case ExpiryKind::kIdle:
        why = Removal::kExpiredIdle;
        break;
      case ExpiryKind::kNone:
        if (node.segment == kProtected) ++protected_evicted;
        break;
    }
    erase_session(shard, shard.find(node.key), why);
  }
  if (protected_evicted != 0)
    evicted_protected_.fetch_add(protected_evicted, std::memory_order_relaxed);
  return protected_evicted;
}

void MemoryStore::warn_protected_evictions(uint64_t evicted_now, int64_t now_ms) {
  if (evicted_now == 0) return;
  // Once per burst: a flood would otherwise write one line per session it pushes out.
  int64_t last = protected_warn_ms_.load(std::memory_order_relaxed);
  if (last != INT64_MIN && now_ms - last < kProtectedEvictionWarnMs) return;
  if (!protected_warn_ms_.compare_exchange_strong(last, now_ms)) return;  // another thread warns
  const uint64_t total = evicted_protected_.load(std::memory_order_relaxed);
  const uint64_t before = protected_warned_at_.exchange(total, std::memory_order_relaxed);
  SG_LOG_WARN(
      "memory store full of returning or signed-in sessions: %llu of them evicted since the last "
      "warning (%llu in all); raise store.memory.max_sessions",
      static_cast<unsigned long long>(total - before), static_cast<unsigned long long>(total));
}

void MemoryStore::warn_markers_dropped(uint64_t dropped_now, int64_t now_ms) {
  if (dropped_now == 0) return;
  int64_t last = dropped_warn_ms_.load(std::memory_order_relaxed);
  if (last != INT64_MIN && now_ms - last < kProtectedEvictionWarnMs) return;
  if (!dropped_warn_ms_.compare_exchange_strong(last, now_ms)) return;  // another thread warns
  const uint64_t total = markers_dropped_.load(std::memory_order_relaxed);
  const uint64_t before = dropped_warned_at_.exchange(total, std::memory_order_relaxed);
  SG_LOG_WARN(
      "memory store full of rotation markers: %llu forgotten early since the last warning (%llu "
      "in all); their old tokens are no longer recognised as replays (a flood of logins or "
      "logouts?)",
      static_cast<unsigned long long>(total - before), static_cast<unsigned long long>(total));
}

size_t MemoryStore::find_live(Shard& shard, const TokenHash& key, int64_t now_ms,
                              ExpiryKind& expired) {
  expired = ExpiryKind::kNone;
  const size_t slot = shard.find(key);
  if (slot == kNoSlot) return kNoSlot;
  const Shard::Node& node = shard.node_at(slot);
  expired = expiry_of(node.created_ms, node.last_seen_ms, now_ms);
  if (expired == ExpiryKind::kNone) return slot;
  erase_session(shard, slot,
                expired == ExpiryKind::kIdle ? Removal::kExpiredIdle : Removal::kExpiredAbsolute);
  return kNoSlot;
}

void MemoryStore::lookup(const TokenHash& key, int64_t now_ms, LookupCallback done) {
  LookupResult result;
  lookup_now(key, now_ms, result);
  if (done) done(std::move(result));
}

bool MemoryStore::lookup_now(const TokenHash& key, int64_t now_ms, LookupResult& result) {
  bool via_marker = false;
  bool in_grace = false;
  TokenHash k = key;
  // One shard lock at a time: a marker's shard is released before the next one is taken, so a
  // lookup never waits while holding a lock. A chain that changes meanwhile (another rotation,
  // a destroy) is read as it is when each link is reached; keys are never reused.
  for (int hop = 0; hop <= kMaxMarkerHops; ++hop) {
    Shard& shard = shard_for(k);
    std::lock_guard lock(shard.mu);
    ExpiryKind expired;
    const size_t slot = find_live(shard, k, now_ms, expired);
    if (!via_marker) result.expired = expired;
    if (slot != kNoSlot) {
      Shard::Node& node = shard.node_at(slot);
      SessionRecord& rec = result.record.emplace();
      rec.handle = node.handle;
      rec.created_ms = node.created_ms;
      rec.last_seen_ms = node.last_seen_ms;
      if (node.extra) {
        rec.attributes = node.extra->attrs;
        rec.client_address = node.extra->client_address();
        rec.user_agent = node.extra->user_agent();
      }
      if (via_marker) {
        result.live_key = k;
        result.status = in_grace ? StoreStatus::kOk : StoreStatus::kNotFound;
        if (!in_grace) break;  // a replay proves nothing about the session's owner coming back
      } else {
        result.status = StoreStatus::kOk;
      }
      if (node.segment == kProbation) shard.lru_touch(shard.index_at(slot), kProtected);
      break;
    }
    if (expired != ExpiryKind::kNone) break;
    const Marker* marker = shard.find_marker(k, now_ms);
    if (marker == nullptr) break;
    if (!via_marker) {
      via_marker = true;
      in_grace = now_ms < marker->grace_until_ms;
    }
    k = marker->new_key;
  }
  if (via_marker) {
    if (!in_grace)
      result.rotated = RotatedKey::kReplay;
    else if (result.status == StoreStatus::kOk)
      result.rotated = RotatedKey::kInGrace;
  }
  return true;
}

bool MemoryStore::insert_new(Shard& shard, const TokenHash& key, SessionRecord&& record,
                             int64_t now_ms, uint64_t& protected_evicted) {
  if (shard.find(key) != kNoSlot || shard.markers.count(key) != 0) return false;
  protected_evicted = make_room(shard, now_ms);
  const Segment segment = record.attributes.empty() ? kProbation : kProtected;
  Shard::Node& node = shard.nodes[shard.insert(key, segment)];
  node.handle = record.handle;
  node.created_ms = record.created_ms;
  node.last_seen_ms = record.last_seen_ms;
  if (!record.attributes.empty() || !record.client_address.empty() || !record.user_agent.empty()) {
    node.extra = std::make_unique<SessionExtra>();
    node.extra->attrs = std::move(record.attributes);
    node.extra->address = std::move(record.client_address);
    node.extra->agent = shard.intern_agent(record.user_agent);
  }
  // A record that arrives with its user (snapshot) joins the index uncapped: it was in it.
  if (const std::string* user = user_of(attributes_of(node))) {
    std::vector<UserEntry> none;
    users_->join(*user, UserEntry{key, node.handle, node.created_ms}, 0, OnUserLimit::kEvictOldest,
                 none);
  }
  active_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void MemoryStore::create(const TokenHash& key, const SessionRecord& record, DoneCallback done) {
  StoreStatus status = StoreStatus::kOk;
  uint64_t protected_evicted = 0;
  {
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mu);
    if (insert_new(shard, key, SessionRecord(record), record.last_seen_ms, protected_evicted)) {
      created_.fetch_add(1, std::memory_order_relaxed);
    } else {
      status = StoreStatus::kUnavailable;
    }
  }
  warn_protected_evictions(protected_evicted, record.last_seen_ms);
  if (done) done(status);
}

const std::string* MemoryStore::joined_user(const SessionChange& change) const {
  if (user_attribute_.empty()) return nullptr;
  for (const auto& [name, value] : change.set)
    if (name == user_attribute_ && !value.empty()) return &value;
  return nullptr;
}

bool MemoryStore::reindex(const std::string* old_user, const std::string* new_user,
                          const TokenHash& old_key, const TokenHash& new_key,
                          const UserEntry& entry, const SessionChange& change,
                          std::vector<UserEntry>& evicted) {
  if (old_user != nullptr && new_user != nullptr && *old_user == *new_user) {
    if (old_key != new_key) users_->rekey(*new_user, old_key, new_key);
    return true;
  }
  if (new_user != nullptr &&
      !users_->join(*new_user, entry, change.max_per_user, change.on_limit, evicted))
    return false;
  if (old_user != nullptr) users_->leave(*old_user, old_key);
  return true;
}

void MemoryStore::modify(const TokenHash& key, const SessionChange& change, int64_t now_ms,
                         DoneCallback done) {
  StoreStatus status = StoreStatus::kNotFound;
  std::vector<UserEntry> evicted;
  const std::string* joining = joined_user(change);
  if (joining != nullptr && change.max_per_user != 0) prune_user(*joining, now_ms);
  {
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mu);
    ExpiryKind expired;
    const size_t slot = find_live(shard, key, now_ms, expired);
    if (slot != kNoSlot) {
      const uint32_t n = shard.index_at(slot);
      Shard::Node& node = shard.nodes[n];
      status = StoreStatus::kOk;
      if (!change.set.empty() || !change.remove.empty()) {
        SessionAttributes attrs = node.extra ? node.extra->attrs : SessionAttributes{};
        if (!apply_change(attrs, change))
          status = StoreStatus::kRejected;
        else if (!reindex(user_of(attributes_of(node)), user_of(&attrs), key, key,
                          UserEntry{key, node.handle, node.created_ms}, change, evicted))
          status = StoreStatus::kLimitReached;
        else
          store_attributes(node.extra, std::move(attrs));
      }
      if (status == StoreStatus::kOk) {
        const Segment segment =
            has_attributes(node) ? kProtected : static_cast<Segment>(node.segment);
        if (change.last_seen_ms > node.last_seen_ms) {
          // Keep the lists ordered by last-seen so reclaim can stop at the first live tail.
          node.last_seen_ms = change.last_seen_ms;
          shard.lru_touch(n, segment);
        } else if (segment != node.segment) {
          shard.lru_touch(n, segment);
        }
      }
    }
  }
  evict_for_cap(evicted);
  if (done) done(status);
}

void MemoryStore::rotate(const TokenHash& old_key, const TokenHash& new_key,
                         const SessionChange& change, int64_t grace_ms, int64_t now_ms,
                         DoneCallback done) {
  StoreStatus status = StoreStatus::kOk;
  uint64_t protected_evicted = 0;
  uint64_t markers_dropped = 0;
  std::vector<UserEntry> evicted;
  const std::string* joining = joined_user(change);
  if (joining != nullptr && change.max_per_user != 0) prune_user(*joining, now_ms);
  {
    const size_t a = shard_index(old_key);
    const size_t b = shard_index(new_key);
    Shard& from = shards_[a];
    Shard& to = shards_[b];
    // Two shard locks, always taken in index order, so concurrent rotations cannot deadlock.
    std::unique_lock first(shards_[std::min(a, b)].mu);
    std::unique_lock<std::mutex> second;
    if (a != b) second = std::unique_lock(shards_[std::max(a, b)].mu);

    ExpiryKind expired;
    const size_t slot = find_live(from, old_key, now_ms, expired);
    SessionAttributes attrs;
    if (slot == kNoSlot) {
      status = StoreStatus::kNotFound;
    } else if (to.find(new_key) != kNoSlot || to.markers.count(new_key) != 0) {
      status = StoreStatus::kUnavailable;
    } else {
      const Shard::Node& old = from.node_at(slot);
      if (old.extra) attrs = old.extra->attrs;
      if (!apply_change(attrs, change))
        status = StoreStatus::kRejected;
      else if (!reindex(user_of(attributes_of(old)), user_of(&attrs), old_key, new_key,
                        UserEntry{new_key, old.handle, old.created_ms}, change, evicted))
        status = StoreStatus::kLimitReached;
    }
    if (status == StoreStatus::kOk) {
      const Shard::Node& old = from.node_at(slot);
      const SessionHandle handle = old.handle;
      const int64_t created_ms = old.created_ms;
      const int64_t last_seen_ms = std::max(old.last_seen_ms, change.last_seen_ms);
      const Segment segment = attrs.empty() ? static_cast<Segment>(old.segment) : kProtected;
      std::unique_ptr<SessionExtra> extra = std::move(from.node_at(slot).extra);
      if (extra && extra->agent != nullptr) {
        // The agent moves to the new shard's table (taken there before it is let go here: the
        // two may be one table).
        const std::string* agent = to.intern_agent(*extra->agent);
        from.release_agent(extra->agent);
        extra->agent = agent;
      }
      // The old key stops being a live key in the same critical section (its index entry was
      // re-keyed above: this is a move, not a removal).
      from.erase_slot(slot);
      markers_dropped = from.add_marker(
          old_key, Marker{new_key, now_ms + std::max<int64_t>(grace_ms, 0), now_ms + idle_ms_});
      markers_.fetch_add(1 - static_cast<int64_t>(markers_dropped), std::memory_order_relaxed);
      if (markers_dropped != 0)
        markers_dropped_.fetch_add(markers_dropped, std::memory_order_relaxed);
      protected_evicted = make_room(to, now_ms);
      Shard::Node& node = to.nodes[to.insert(new_key, segment)];
      node.handle = handle;
      node.created_ms = created_ms;
      node.last_seen_ms = last_seen_ms;
      node.extra = std::move(extra);  // keeps the origin recorded at creation
      store_attributes(node.extra, std::move(attrs));
      rotated_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  evict_for_cap(evicted);
  warn_protected_evictions(protected_evicted, now_ms);
  warn_markers_dropped(markers_dropped, now_ms);
  if (done) done(status);
}

void MemoryStore::destroy(const TokenHash& key, DoneCallback done) {
  StoreStatus status = StoreStatus::kOk;
  {
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mu);
    const size_t slot = shard.find(key);
    if (slot != kNoSlot) {
      erase_session(shard, slot, Removal::kDestroyed);
    } else if (shard.markers.count(key) != 0) {
      status = StoreStatus::kNotFound;  // a rotated-away key: the caller must use the live key
    }
  }
  if (done) done(status);
}

size_t MemoryStore::reclaim_some(int64_t now_ms, size_t budget) {
  size_t freed = 0;
  size_t examined = 0;
  const size_t start = reclaim_cursor_.fetch_add(1, std::memory_order_relaxed);
  for (size_t k = 0; k < shard_count_ && examined < budget; ++k) {
    Shard& shard = shards_[(start + k) % shard_count_];
    std::lock_guard lock(shard.mu);
    const size_t forgotten = shard.forget_markers(now_ms, budget - examined);
    markers_.fetch_sub(static_cast<int64_t>(forgotten), std::memory_order_relaxed);
    examined += forgotten;
    // Each tail is its list's least recently seen; the first live one ends the walk of that list.
    // A session past its absolute timeout but still in use sits nearer the head: lookup removes it.
    for (Segment segment : {kProbation, kProtected}) {
      while (examined < budget && shard.lists[segment].tail != kNil) {
        ++examined;
        const Shard::Node& tail = shard.nodes[shard.lists[segment].tail];
        const ExpiryKind kind = expiry_of(tail.created_ms, tail.last_seen_ms, now_ms);
        if (kind == ExpiryKind::kNone) break;
        erase_session(
            shard, shard.find(tail.key),
            kind == ExpiryKind::kIdle ? Removal::kExpiredIdle : Removal::kExpiredAbsolute);
        ++freed;
      }
    }
  }
  return freed;
}

MemoryStore::Stats MemoryStore::stats() const {
  Stats s;
  s.created = created_.load(std::memory_order_relaxed);
  s.expired_idle = expired_idle_.load(std::memory_order_relaxed);
  s.expired_absolute = expired_absolute_.load(std::memory_order_relaxed);
  s.rotated = rotated_.load(std::memory_order_relaxed);
  s.destroyed = destroyed_.load(std::memory_order_relaxed);
  s.evicted = evicted_.load(std::memory_order_relaxed);
  s.evicted_protected = evicted_protected_.load(std::memory_order_relaxed);
  s.records_rejected = records_rejected_.load(std::memory_order_relaxed);
  s.active = static_cast<uint64_t>(std::max<int64_t>(0, active_.load(std::memory_order_relaxed)));
  s.markers = static_cast<uint64_t>(std::max<int64_t>(0, markers_.load(std::memory_order_relaxed)));
  s.markers_dropped = markers_dropped_.load(std::memory_order_relaxed);
  s.evicted_user_cap = evicted_user_cap_.load(std::memory_order_relaxed);
  s.indexed = users_->size();
  s.users = users_->users();
  return s;
}

}  // namespace sg
