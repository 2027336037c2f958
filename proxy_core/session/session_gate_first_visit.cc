// SessionGate, session.create = "on_return": a first visit is not stored; its token is
// self-certifying (first_visit_token.h) and the session is stored when the client comes back with
// it, or when the application writes to it on the first response.
#include <algorithm>

#include "proxy_core/base/clock.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/session/session_gate.h"
#include "proxy_core/session/session_record_check.h"
#include "proxy_core/session/token.h"

namespace sg {

const FirstVisitKey* SessionGate::first_visit_key() {
  // Looked up again only when the configuration changes (reload), not for every request.
  if (first_visit_key_config_ != config_) {
    std::string error;
    first_visit_key_ = sg::first_visit_key(config_->session.secret_file, error);
    first_visit_key_config_ = config_;
    if (!first_visit_key_) SG_LOG_ERROR("%s", error.c_str());
  }
  return first_visit_key_.get();
}

// A candidate the store does not know: is it a first-visit token of ours coming back? Not when
// the store knew it (expired, or a rotation marker): a stored session never comes back this way.
void SessionGate::note_first_visit(size_t index, const LookupResult& r) {
  if (config_->session.create != SessionCreate::kOnReturn || first_visit_index_ >= 0 ||
      r.expired != ExpiryKind::kNone || r.rotated != RotatedKey::kNo)
    return;
  const FirstVisitKey* fv = first_visit_key();
  if (fv == nullptr ||
      !fv->verify(candidates_[index], first_visit_handle_, first_visit_created_ms_))
    return;
  // The timeouts count from the first visit, the session's last sighting until now.
  const int64_t now = unix_now_ms();
  const SessionConfig& sc = config_->session;
  const int64_t age = now - first_visit_created_ms_;
  if (age < -kRecordClockSkewMs || age >= sc.idle_timeout.count() ||
      age >= sc.absolute_timeout.count())
    return;
  first_visit_index_ = static_cast<int>(index);
}

// The client came back: store its session now, created and last seen at the first visit (the
// response-time refresh then moves last-seen and renews the cookie as for any session).
void SessionGate::store_first_visit(Done done) {
  const size_t index = static_cast<size_t>(first_visit_index_);
  token_.assign(candidates_[index]);
  key_ = key_of(token_);
  record_ = SessionRecord{};
  record_.handle = first_visit_handle_;
  record_.created_ms = record_.last_seen_ms = first_visit_created_ms_;
  record_origin();
  record_.client_address = client_address_;
  record_.user_agent = user_agent_;
  Ticket epoch = ticket();
  store_->create(key_, record_, [this, epoch, done](StoreStatus s) mutable {
    if (stale(epoch)) return;
    if (s == StoreStatus::kOk) {
      event_ = "stored";
      audit_event("created", "on-return", handle_to_hex(record_.handle), nullptr);
      first_visit_stored(/*retried=*/false, std::move(done));
    } else {
      // Taken: a parallel request or another instance stored it first. Read theirs.
      first_visit_stored(/*retried=*/true, std::move(done));
    }
  });
}

void SessionGate::first_visit_stored(bool retried, Done done) {
  if (!retried) {
    active_ = true;
    finish_request(std::move(done));
    return;
  }
  Ticket epoch = ticket();
  store_->lookup(key_, unix_now_ms(), [this, epoch, done](LookupResult r) mutable {
    if (stale(epoch)) return;
    if (r.status == StoreStatus::kUnavailable) {
      unavailable(std::move(done));
      return;
    }
    if (r.status != StoreStatus::kOk || !r.record) {
      // The key is taken by something that is not a live session (a rotation marker whose
      // session ended): the token stays retired, the client is a new visitor.
      create_session(std::move(done));
      return;
    }
    in_grace_ = r.rotated == RotatedKey::kInGrace;
    if (in_grace_) key_ = r.live_key;
    record_ = std::move(*r.record);
    active_ = true;
    finish_request(std::move(done));
  });
}

// The application writes to a session not stored yet: store it (empty, as of the first visit),
// then apply the write as for any session. A collision means it was stored meanwhile: go on.
void SessionGate::create_then(std::function<void()> next) {
  key_ = key_of(token_);  // not computed for a first visit that the application does not write
  Ticket epoch = ticket();
  store_->create(key_, record_, [this, epoch, next](StoreStatus s) {
    if (stale(epoch)) return;
    unstored_ = false;
    if (s == StoreStatus::kOk)
      audit_event("created", "first-write", handle_to_hex(record_.handle), nullptr);
    next();
  });
}

// A first-visit token certifies itself, so ending its session in the store is not enough: a copy
// of the cookie would store the session again, with the same handle (and whatever the application
// keeps under it), until idle_timeout after the first visit. Retiring rotates the token's session
// away with no grace: the token's key becomes a rotation marker that lives idle_timeout from now,
// longer than the token's own window, and that no create can take (a create on a taken key
// fails). Three store operations, only for a first-visit token that is logged out or destroyed.
void SessionGate::retire_first_visit(std::string_view token,
                                     std::function<void(StoreStatus)> done) {
  SessionRecord record;
  const FirstVisitKey* fv =
      config_->session.create == SessionCreate::kOnReturn ? first_visit_key() : nullptr;
  if (fv == nullptr || !fv->verify(token, record.handle, record.created_ms)) {
    done(StoreStatus::kOk);  // a random token: its rotation or destroy already ended it
    return;
  }
  std::string fresh;
  if (!generate_token(fresh)) {
    done(StoreStatus::kUnavailable);
    return;
  }
  const TokenHash key = hash_token(token);  // not key_of: the connection's cache stays as it is
  const TokenHash moved = hash_token(fresh);
  record.last_seen_ms = std::max(record.created_ms, unix_now_ms());
  Ticket epoch = ticket();
  // The create fails when the key is taken (a live session or already a marker): either way the
  // rotate that follows decides.
  store_->create(key, record, [this, epoch, key, moved, done](StoreStatus) {
    if (stale(epoch)) return;
    store_->rotate(key, moved, SessionChange{}, /*grace_ms=*/0, unix_now_ms(),
                   [this, epoch, moved, done](StoreStatus s) {
                     if (stale(epoch)) return;
                     if (s == StoreStatus::kNotFound) {  // a marker already: retired before
                       done(StoreStatus::kOk);
                       return;
                     }
                     if (s != StoreStatus::kOk) {
                       done(s);
                       return;
                     }
                     store_->destroy(moved, [epoch, done](StoreStatus d) {
                       if (stale(epoch)) return;
                       done(d);
                     });
                   });
  });
}

}  // namespace sg
