// SessionGate, response side: the application's directives and the idle refresh become one
// store operation on the session's live key (session_gate.h explains why at response time).
#include <algorithm>

#include "proxy_core/base/clock.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/session/session_attributes.h"
#include "proxy_core/session/session_gate.h"
#include "proxy_core/session/token.h"

namespace sg {

namespace {

// The last directive for a name wins: drop an earlier set or remove of the same name, so that the
// store never has to order a set and a remove of one attribute within a change.
void forget_name(SessionChange& change, const std::string& name) {
  std::erase_if(change.set, [&](const auto& kv) { return kv.first == name; });
  std::erase(change.remove, name);
}

}  // namespace

void SessionGate::read_directives(const MessageHead& response, Directives& d) {
  const SessionConfig& sc = config_->session;
  const std::string& prefix = sc.header_prefix;
  // The early refusal: each directive is tried on the attributes read at request time. The store
  // checks the bounds again on the result, which may hold another request's changes too.
  SessionAttributes attrs = record_.attributes;
  for (size_t i = 0; i < response.header_count; ++i) {
    const HeaderField& f = response.headers[i];
    if (f.name.size() <= prefix.size() || !iequals(f.name.substr(0, prefix.size()), prefix))
      continue;
    std::string_view rest = std::string_view(f.name).substr(prefix.size());
    std::string_view value = trim_ows(f.value);
    if (iequals(rest, "Control")) {
      if (iequals(value, "rotate")) {
        d.rotate = true;
      } else if (iequals(value, "destroy")) {
        d.destroy = true;
      } else {
        ++rejected_directives_;
        SG_LOG_WARN("session %s: unknown %s value ignored", handle_hex_.c_str(), f.name.c_str());
      }
    } else if (rest.size() > 4 && iequals(rest.substr(0, 4), "Set-")) {
      AttributeError e =
          apply_attribute(attrs, rest.substr(4), value, sc.max_attributes, sc.max_attribute_bytes);
      if (e != AttributeError::kOk) {
        ++rejected_directives_;
        SG_LOG_WARN("session %s: attribute directive ignored: %s", handle_hex_.c_str(),
                    attribute_error_text(e));
        continue;
      }
      std::string name = fold_attribute_name(rest.substr(4));
      forget_name(d.change, name);
      if (value.empty()) {
        d.change.remove.push_back(std::move(name));
      } else {
        d.change.set.emplace_back(std::move(name), std::string(value));
      }
      ++d.attribute_directives;
    }
  }
  d.change.max_attributes = sc.max_attributes;
  d.change.max_attribute_bytes = sc.max_attribute_bytes;
}

void SessionGate::on_response(const MessageHead& response, std::function<void()> done) {
  if (!active_ || store_ == nullptr) {
    done();
    return;
  }
  Directives d;
  read_directives(response, d);
  if (unstored_) {
    on_first_visit_response(std::move(d), std::move(done));
    return;
  }
  if (d.destroy) {
    destroy_directive(std::move(done));
    return;
  }
  // Refresh last-seen and the cookie's expiry at most once per tenth of idle_timeout, so most
  // responses carry no Set-Cookie and most visits write nothing. Never for a grace request: its
  // token is no longer the live one, and a Set-Cookie with it would undo the rotation.
  const int64_t now = unix_now_ms();
  if (!in_grace_ && now - record_.last_seen_ms >= config_->session.idle_timeout.count() / 10) {
    d.refresh = true;
    d.change.last_seen_ms = now;
  }
  if (d.rotate) {
    rotate_directive(std::move(d), std::move(done));
  } else if (!d.change.empty()) {
    modify_directive(std::move(d), std::move(done));
  } else {
    done();
  }
}

// A first visit of create = "on_return": stored only if the application writes to it.
void SessionGate::on_first_visit_response(Directives d, std::function<void()> done) {
  if (d.destroy) {  // nothing stored, and the token never reaches the client: the cookie expires
    event_ = "destroyed";
    add_set_cookie(/*expire=*/true);
    done();
  } else if (d.rotate) {
    create_then([this, d = std::move(d), done]() mutable {
      rotate_directive(std::move(d), std::move(done));
    });
  } else if (!d.change.set.empty()) {
    create_then([this, d = std::move(d), done]() mutable {
      modify_directive(std::move(d), std::move(done));
    });
  } else {
    done();  // removes on an empty session change nothing
  }
}

// The client gets the expiring cookie whatever the store said; a destroy the store did not
// confirm is counted and logged (the revocation wrapper queues its retry).
void SessionGate::destroy_directive(std::function<void()> done) {
  event_ = "destroyed";
  Ticket epoch = ticket();
  destroy_session(key_, [this, epoch, done](StoreStatus s) {
    if (stale(epoch)) return;
    if (s != StoreStatus::kOk) store_failed("destroy directive");
    retire_first_visit(token_, [this, epoch, done](StoreStatus r) {
      if (stale(epoch)) return;
      if (r != StoreStatus::kOk) store_failed("first-visit token retirement");
      add_set_cookie(/*expire=*/true);
      done();
    });
  });
}

// New token, same handle and attributes, with the response's changes applied in the same step
// (login: rotate and set the user). The old token keeps serving for rotation_grace.
void SessionGate::rotate_directive(Directives d, std::function<void()> done) {
  std::string fresh;
  if (!generate_token(fresh)) {
    SG_LOG_ERROR("RAND_bytes failed: session %s not rotated", handle_hex_.c_str());
    done();
    return;
  }
  const int64_t now = unix_now_ms();
  d.change.last_seen_ms = now;
  TokenHash new_key = hash_token(fresh);
  Ticket epoch = ticket();
  auto answered = [this, epoch, done, fresh = std::move(fresh), new_key, d](StoreStatus s) mutable {
    if (stale(epoch)) return;
    if (s == StoreStatus::kOk) {
      token_ = std::move(fresh);
      key_ = new_key;
      in_grace_ = false;
      event_ = "rotated";
      add_set_cookie(/*expire=*/false);
    } else if (s == StoreStatus::kRejected) {
      // Not rotated at all: a login whose user does not fit must not half-happen.
      refused_by_bounds(d);
    } else if (s == StoreStatus::kUnavailable) {
      store_failed("rotate");
    }  // kNotFound: the session ended or was rotated meanwhile; nothing to send
    done();
  };
  // A rotation marker lives idle_timeout (memory store): the grace window ends by then at most.
  const SessionConfig& sc = config_->session;
  const int64_t grace_ms = std::min(sc.rotation_grace.count(), sc.idle_timeout.count());
  store_->rotate(key_, new_key, d.change, grace_ms, now, std::move(answered));
}

// One atomic per-field change on the live key. Only a kOk proves the token is still live, so
// only then does the refresh Set-Cookie go out. kNotFound (destroyed, expired or rotated away
// meanwhile) sends no cookie of ours at all: an expiring one would also erase the new token a
// concurrent rotation just gave the browser (same name, path and domain).
void SessionGate::modify_directive(Directives d, std::function<void()> done) {
  Ticket epoch = ticket();
  const int64_t now = unix_now_ms();
  store_->modify(key_, d.change, now, [this, epoch, done, d](StoreStatus s) mutable {
    if (stale(epoch)) return;
    if (s == StoreStatus::kOk) {
      if (d.refresh) add_set_cookie(/*expire=*/false);
      done();
      return;
    }
    if (s == StoreStatus::kUnavailable) store_failed("modify");
    if (s == StoreStatus::kNotFound && (!d.change.set.empty() || !d.change.remove.empty()) &&
        !d.followed) {
      // A login on a parallel request may have rotated the session meanwhile: the application
      // wrote to this session, so the write follows it to its live key (inside the grace window
      // only). Without the old token's refresh cookie: that token is no longer the live one.
      follow_rotation([this, d = std::move(d), done](bool found) mutable {
        if (!found) {
          SG_LOG_WARN("session %s: %u attribute directive(s) dropped: the session ended",
                      handle_hex_.c_str(), d.attribute_directives);
          done();
          return;
        }
        d.followed = true;
        d.refresh = false;
        modify_directive(std::move(d), std::move(done));
      });
      return;
    }
    if (s != StoreStatus::kRejected) {
      done();
      return;
    }
    refused_by_bounds(d);
    if (!d.refresh) {
      done();
      return;
    }
    // The attributes did not fit together with another request's; the refresh still does.
    Directives refresh_only;
    refresh_only.refresh = true;
    refresh_only.change.last_seen_ms = d.change.last_seen_ms;
    modify_directive(std::move(refresh_only), std::move(done));
  });
}

// After a write found no live session under key_: is key_ now a rotation marker inside its grace
// window? Then key_ becomes the live key and next(true); otherwise next(false).
void SessionGate::follow_rotation(std::function<void(bool found)> next) {
  Ticket epoch = ticket();
  store_->lookup(key_, unix_now_ms(), [this, epoch, next](LookupResult r) {
    if (stale(epoch)) return;
    if (r.status != StoreStatus::kOk || r.rotated != RotatedKey::kInGrace || !r.record) {
      next(false);
      return;
    }
    key_ = r.live_key;
    next(true);
  });
}

void SessionGate::refused_by_bounds(const Directives& d) {
  rejected_directives_ += d.attribute_directives;
  SG_LOG_WARN("session %s: %u attribute directive(s) refused by the store: over the bounds",
              handle_hex_.c_str(), d.attribute_directives);
}

}  // namespace sg
