// MemoryStore's user index: the UserIndex structure and the store operations that read it
// (memory_store_users.h explains the locking).
#include "proxy_core/store/memory_store_users.h"

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "proxy_core/store/memory_store.h"
#include "proxy_core/store/memory_store_shard.h"

namespace sg {

namespace memory_store_detail {

bool UserIndex::join(const std::string& user, const UserEntry& entry, uint32_t cap,
                     OnUserLimit on_limit, std::vector<UserEntry>& evicted) {
  Shard& shard = shard_for(user);
  std::lock_guard lock(shard.mu);
  auto it = shard.users.find(user);
  if (it != shard.users.end()) {
    std::vector<UserEntry>& list = it->second;
    for (const UserEntry& e : list)
      if (e.key == entry.key) return true;
    if (cap != 0 && list.size() >= cap) {
      if (on_limit == OnUserLimit::kReject) return false;
      while (!list.empty() && list.size() >= cap) {
        auto oldest = std::min_element(list.begin(), list.end(), [](const auto& a, const auto& b) {
          return a.created_ms < b.created_ms;
        });
        evicted.push_back(*oldest);
        list.erase(oldest);
        size_.fetch_sub(1, std::memory_order_relaxed);
      }
    }
    list.push_back(entry);
  } else {
    shard.users.emplace(user, std::vector<UserEntry>{entry});
    users_.fetch_add(1, std::memory_order_relaxed);
  }
  size_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void UserIndex::erase_at(Shard& shard,
                         std::unordered_map<std::string, std::vector<UserEntry>>::iterator it,
                         size_t index) {
  std::vector<UserEntry>& list = it->second;
  list.erase(list.begin() + static_cast<ptrdiff_t>(index));
  size_.fetch_sub(1, std::memory_order_relaxed);
  if (list.empty()) {
    shard.users.erase(it);  // the index never keeps a user without sessions
    users_.fetch_sub(1, std::memory_order_relaxed);
  }
}

void UserIndex::leave(const std::string& user, const TokenHash& key) {
  Shard& shard = shard_for(user);
  std::lock_guard lock(shard.mu);
  auto it = shard.users.find(user);
  if (it == shard.users.end()) return;
  for (size_t i = 0; i < it->second.size(); ++i) {
    if (it->second[i].key == key) {
      erase_at(shard, it, i);
      return;
    }
  }
}

void UserIndex::rekey(const std::string& user, const TokenHash& old_key, const TokenHash& new_key) {
  Shard& shard = shard_for(user);
  std::lock_guard lock(shard.mu);
  auto it = shard.users.find(user);
  if (it == shard.users.end()) return;
  for (UserEntry& e : it->second)
    if (e.key == old_key) e.key = new_key;
}

std::vector<UserEntry> UserIndex::entries(const std::string& user) const {
  const Shard& shard = shard_for(user);
  std::lock_guard lock(shard.mu);
  auto it = shard.users.find(user);
  return it == shard.users.end() ? std::vector<UserEntry>{} : it->second;
}

bool UserIndex::find_handle(const SessionHandle& handle, std::string& user,
                            UserEntry& entry) const {
  for (size_t i = 0; i < kShards; ++i) {
    const Shard& shard = shards_[i];
    std::lock_guard lock(shard.mu);
    for (const auto& [name, list] : shard.users) {
      for (const UserEntry& e : list) {
        if (e.handle == handle) {
          user = name;
          entry = e;
          return true;
        }
      }
    }
  }
  return false;
}

}  // namespace memory_store_detail

using memory_store_detail::kNoSlot;
using memory_store_detail::UserEntry;

namespace {

UserSession describe(const memory_store_detail::Shard::Node& node) {
  UserSession s;
  s.handle = node.handle;
  s.created_ms = node.created_ms;
  s.last_seen_ms = node.last_seen_ms;
  if (node.extra) {
    s.client_address = node.extra->client_address();
    s.user_agent = node.extra->user_agent();
  }
  return s;
}

}  // namespace

const std::string* MemoryStore::user_of(const SessionAttributes* attrs) const {
  if (attrs == nullptr || user_attribute_.empty()) return nullptr;
  auto it = std::lower_bound(attrs->begin(), attrs->end(), user_attribute_,
                             [](const auto& a, const std::string& n) { return a.first < n; });
  return it != attrs->end() && it->first == user_attribute_ ? &it->second : nullptr;
}

// One entry of `user`: under its session shard's lock, is it a live session of that user? Then
// `visit` sees it (and may remove it); a key that holds no session any more leaves the index.
void MemoryStore::visit_user(const std::string& user, int64_t now_ms, const TokenHash* except,
                             bool destroy, std::vector<UserSession>& out) {
  for (const UserEntry& e : users_->entries(user)) {
    if (except != nullptr && e.key == *except) continue;
    Shard& shard = shard_for(e.key);
    std::lock_guard lock(shard.mu);
    ExpiryKind expired;
    const size_t slot = find_live(shard, e.key, now_ms, expired);  // unindexes an expired one
    if (slot == kNoSlot) {
      users_->leave(user, e.key);  // gone (destroyed or rotated away meanwhile)
      continue;
    }
    Shard::Node& node = shard.node_at(slot);
    const std::string* owner = user_of(node.extra ? &node.extra->attrs : nullptr);
    if (owner == nullptr || *owner != user) continue;  // moved to another user meanwhile
    out.push_back(describe(node));
    if (destroy) erase_session(shard, slot, Removal::kDestroyed);
  }
}

void MemoryStore::list_user(const std::string& user, int64_t now_ms, UsersCallback done) {
  std::vector<UserSession> out;
  visit_user(user, now_ms, nullptr, /*destroy=*/false, out);
  std::sort(out.begin(), out.end(),
            [](const UserSession& a, const UserSession& b) { return a.created_ms < b.created_ms; });
  if (done) done(StoreStatus::kOk, std::move(out));
}

void MemoryStore::destroy_user(const std::string& user, const TokenHash* except, int64_t now_ms,
                               UsersCallback done) {
  std::vector<UserSession> out;
  visit_user(user, now_ms, except, /*destroy=*/true, out);
  if (done) done(StoreStatus::kOk, std::move(out));
}

void MemoryStore::destroy_handle(const SessionHandle& handle, int64_t now_ms, UsersCallback done) {
  std::vector<UserSession> out;
  std::string user;
  UserEntry entry;
  if (users_->find_handle(handle, user, entry)) {
    Shard& shard = shard_for(entry.key);
    std::lock_guard lock(shard.mu);
    ExpiryKind expired;
    const size_t slot = find_live(shard, entry.key, now_ms, expired);
    if (slot != kNoSlot && shard.node_at(slot).handle == handle) {
      Shard::Node& node = shard.node_at(slot);
      out.push_back(describe(node));
      erase_session(shard, slot, Removal::kDestroyed);
    } else if (slot == kNoSlot) {
      users_->leave(user, entry.key);
    }
  }
  const StoreStatus status = out.empty() ? StoreStatus::kNotFound : StoreStatus::kOk;
  if (done) done(status, std::move(out));
}

// Sessions pushed out of a user's index by the cap (evict_oldest) are destroyed after the
// locks of the write that pushed them out are released (memory_store_users.h: no session shard
// lock is ever taken while another one of an unrelated write is held).
void MemoryStore::evict_for_cap(const std::vector<UserEntry>& evicted) {
  for (const UserEntry& e : evicted) {
    Shard& shard = shard_for(e.key);
    std::lock_guard lock(shard.mu);
    const size_t slot = shard.find(e.key);
    if (slot == kNoSlot) continue;
    erase_session(shard, slot, Removal::kUserCap);
  }
}

// Before a capped join: entries of sessions that expired or ended leave the index first, so
// that only live sessions count toward the cap.
void MemoryStore::prune_user(const std::string& user, int64_t now_ms) {
  std::vector<UserSession> ignored;
  visit_user(user, now_ms, nullptr, /*destroy=*/false, ignored);
}

}  // namespace sg
