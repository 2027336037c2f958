#include "proxy_core/session/session_gate.h"

#include "proxy_core/base/clock.h"
#include "proxy_core/http/cookie.h"
#include "proxy_core/http/path_match.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/session/session_attributes.h"
#include "proxy_core/session/session_cookie.h"
#include "proxy_core/session/session_record_check.h"
#include "proxy_core/session/session_status.h"
#include "proxy_core/session/token.h"

namespace sg {

namespace {

// "user" -> "User", "tenant-id" -> "Tenant-Id": the conventional spelling of header names.
void append_header_case(std::string& out, std::string_view name) {
  bool upper = true;
  for (char c : name) {
    out.push_back(upper && c >= 'a' && c <= 'z' ? char(c - 32) : c);
    upper = c == '-';
  }
}

}  // namespace

void SessionGate::set_handle_hex() {
  handle_hex_.resize(32);
  handle_to_hex(record_.handle, std::span<char, 32>(handle_hex_.data(), 32));
}

// A passive request (session.passive_paths, or the client's own <prefix>Passive: 1) is served as
// any other but does not move last-seen: polling must not keep an abandoned session alive. The
// header can only shorten the client's own session, so it is taken from anyone.
bool SessionGate::is_passive(const SessionConfig& sc, const MessageHead& request,
                             std::string_view path) {
  for (const std::string& pattern : sc.passive_paths)
    if (path_matches(pattern, path)) return true;
  const std::string& prefix = sc.header_prefix;
  for (size_t i = 0; i < request.header_count; ++i) {
    const std::string_view name = request.headers[i].name;
    if (name.size() == prefix.size() + 7 && iequals(name.substr(0, prefix.size()), prefix) &&
        iequals(name.substr(prefix.size()), "Passive") && trim_ows(request.headers[i].value) == "1")
      return true;
  }
  return false;
}

// A keep-alive connection sends the same cookie with every request: remembering the last
// token's digest saves a SHA-256 per request. The token only ever meets its own digest here.
TokenHash SessionGate::key_of(const std::string& token) {
  return digests_->digest_of(token);
}

void SessionGate::reset() {
  // Callbacks from an earlier request (a slow store) carry an older generation and do nothing.
  ++generation_;
  active_ = is_new_ = logout_ = in_grace_ = unconfirmed_ = unstored_ = passive_ = status_ = false;
  sets_cookie_ = replace_cookie_ = false;
  first_visit_index_ = -1;
  rejected_directives_ = 0;
  token_.clear();
  candidate_count_ = 0;
  record_.attributes.clear();
  record_.created_ms = record_.last_seen_ms = 0;
  injected_count_ = 0;  // the strings keep their capacity for the next request
  cookie_value_.clear();
  response_headers_.clear();
  handle_hex_.clear();
  event_.clear();
  client_address_view_ = {};
  request_id_ = {};
  digests_ = &own_digests_;  // a connection's cache is named again by set_client
  request_ = nullptr;
}

const TokenHash* SessionGate::live_key() {
  if (!active_) return nullptr;
  if (unstored_) key_ = key_of(token_);  // the key its store write will use (create_then)
  return &key_;
}

void SessionGate::set_client(std::string_view address, std::string_view request_id,
                             TokenDigestCache* digests) {
  digests_ = digests != nullptr ? digests : &own_digests_;
  client_address_view_ = address;
  request_id_ = request_id.substr(0, 128);
}

// Only when a session is created or an audit line written, not for every request: a returning
// visit copies neither its address nor its user agent.
void SessionGate::record_origin() {
  assign_origin_text(client_address_, client_address_view_, kMaxClientAddressBytes);
  const HeaderField* agent = request_ != nullptr ? request_->find("user-agent") : nullptr;
  assign_origin_text(user_agent_, agent ? agent->value : std::string_view(), kMaxUserAgentBytes);
}

void SessionGate::begin(const Config& config, SessionStore* store, WorkerMetrics* metrics, bool tls,
                        const MessageHead& request, Done done) {
  config_ = &config;
  store_ = store;
  metrics_ = metrics;
  tls_ = tls;
  const SessionConfig& sc = config.session;
  request_ = &request;

  // Our cookie never reaches the application, excluded path or not.
  fields_.clear();
  for (size_t i = 0; i < request.header_count; ++i)
    if (iequals(request.headers[i].name, "cookie")) fields_.push_back(request.headers[i].value);
  find_cookie_values(fields_, sc.cookie_name, values_);
  if (!values_.empty()) {
    replace_cookie_ = true;
    cookie_value_ = remove_cookie(fields_, sc.cookie_name);
  }
  // Copies (into strings that keep their capacity): the request head may be reused before an
  // asynchronous store answers.
  token_candidates(values_, shaped_);
  for (std::string_view t : shaped_)
    candidates_[candidate_count_++].assign(t);

  std::string_view path = path_without_query(request.target);
  passive_ = is_passive(sc, request, path);
  // The status endpoint only looks: it is passive, and it never creates a session.
  status_ = !sc.status_path.empty() && path == sc.status_path;
  passive_ = passive_ || status_;
  if (!sc.logout_path.empty() && path == sc.logout_path) {
    logout_ = true;
  } else {
    for (const std::string& pattern : sc.exclude)
      if (path_matches(pattern, path)) {
        done(Outcome::kProceed);  // no session, no cookie
        return;
      }
  }
  if (store_ == nullptr) {
    done(Outcome::kProceed);
    return;
  }
  valid_found_ = 0;
  next_candidate_ = 0;
  lookup_next(std::move(done));
}

// Looks the candidates up one after another. Several cookies with our name are accepted only if
// exactly one session is live among them (a token inside its rotation grace counts as its
// session); otherwise the request is treated as having none.
void SessionGate::lookup_next(Done done) {
  if (next_candidate_ >= candidate_count_) {
    if (valid_found_ == 1) {
      on_found(std::move(done));
    } else if (logout_) {
      // Several live sessions in one request (a cookie planted from a sibling domain, say):
      // logging out must not leave any of them alive on the server.
      destroy_live(0, std::move(done));
    } else if (status_) {
      done(Outcome::kProceed);  // no live session: nothing to report, nothing created
    } else if (valid_found_ == 0 && first_visit_index_ >= 0) {
      store_first_visit(std::move(done));
    } else {
      create_session(std::move(done));
    }
    return;
  }
  size_t index = next_candidate_++;
  TokenHash key = key_of(candidates_[index]);
  const int64_t now = unix_now_ms();
  {
    // A store that answers at once (memory, a hit of the Redis local cache): no callback, no
    // ticket (nothing can go stale).
    LookupResult r;
    if (store_->lookup_now(key, now, r)) {
      on_lookup(index, key, r, std::move(done));
      return;
    }
  }
  Ticket epoch = ticket();
  store_->lookup(key, now,
                 [this, epoch, key, index, done = std::move(done)](LookupResult r) mutable {
                   if (stale(epoch)) return;
                   on_lookup(index, key, r, std::move(done));
                 });
}

void SessionGate::on_lookup(size_t index, const TokenHash& key, LookupResult& r, Done done) {
  if (r.status == StoreStatus::kUnavailable) {
    unavailable(std::move(done));
    return;
  }
  if (r.rotated == RotatedKey::kReplay) {
    on_replay(r, std::move(done));
    return;
  }
  if (r.status == StoreStatus::kNotFound) note_first_visit(index, r);
  if (r.status == StoreStatus::kOk && r.record) {
    const bool grace = r.rotated == RotatedKey::kInGrace;
    const TokenHash live = grace ? r.live_key : key;
    unsigned seen = 0;
    while (seen < valid_found_ && live_keys_[seen] != live)
      ++seen;
    if (seen == valid_found_) live_keys_[valid_found_++] = live;
    // The first token of a session, or its live token after a grace one (the browser sent both).
    if (seen == 0 && (valid_found_ == 1 || (in_grace_ && !grace))) {
      key_ = live;
      in_grace_ = grace;
      token_.assign(candidates_[index]);
      record_ = std::move(*r.record);
    }
  }
  lookup_next(std::move(done));
}

// A rotated-away token after its grace window: the browser should have the new one, so this is
// likely a copy of the old cookie (stolen, or a stale tab). The request goes on as a new visitor.
void SessionGate::on_replay(const LookupResult& r, Done done) {
  if (metrics_ != nullptr) metrics_->rotated_token_replays.add();
  std::string handle = r.record ? handle_to_hex(r.record->handle) : std::string("(ended)");
  SG_LOG_WARN("session %s: rotated token presented after the grace window", handle.c_str());
  audit_event("replay", "", r.record ? std::string_view(handle) : std::string_view(), nullptr);
  if (!r.record || config_->session.on_rotated_replay != OnRotatedReplay::kDestroy) {
    lookup_next(std::move(done));
    return;
  }
  Ticket epoch = ticket();
  store_->destroy(r.live_key, [this, epoch, handle, done](StoreStatus s) mutable {
    if (stale(epoch)) return;
    if (s != StoreStatus::kOk) {
      store_failed("destroy after a replay");
    } else {
      SG_LOG_WARN("session %s: destroyed after a rotated-token replay", handle.c_str());
      audit_event("destroyed", "replay", handle, nullptr);
    }
    lookup_next(std::move(done));
  });
}

// Logout: every live session the request presented ends. The client is told it logged out only
// when the store confirmed every destroy (a wrapper that refuses the token locally and retries
// reports kOk); otherwise 503 with Retry-After, so the browser does not believe a logout that
// did not happen.
void SessionGate::destroy_live(unsigned index, Done done) {
  if (index >= valid_found_) {
    retire_candidates(0, index > 0, std::move(done));
    return;
  }
  Ticket epoch = ticket();
  destroy_session(live_keys_[index], [this, epoch, index, done](StoreStatus s) mutable {
    if (stale(epoch)) return;
    if (s != StoreStatus::kOk) {
      unconfirmed_ = true;
      store_failed("logout destroy");
    }
    destroy_live(index + 1, std::move(done));
  });
}

// Ends the session whose live key `key` was when this request read it. A parallel request may
// have rotated it since (the same browser's login): `key` is then a rotation marker, which
// destroy() does not touch, and the session lives on under its new key. So a destroy that finds
// nothing looks the key up again and ends the live session the marker leads to, inside the grace
// window or after it. kOk when no live session is left.
void SessionGate::destroy_session(const TokenHash& key, std::function<void(StoreStatus)> done) {
  Ticket epoch = ticket();
  store_->destroy(key, [this, epoch, key, done](StoreStatus s) {
    if (stale(epoch)) return;
    if (s != StoreStatus::kNotFound) {
      done(s);
      return;
    }
    store_->lookup(key, unix_now_ms(), [this, epoch, key, done](LookupResult r) {
      if (stale(epoch)) return;
      if (r.status == StoreStatus::kUnavailable) {
        done(StoreStatus::kUnavailable);
      } else if (r.rotated != RotatedKey::kNo && r.record && r.live_key != key) {
        store_->destroy(r.live_key, [epoch, done](StoreStatus d) {
          if (stale(epoch)) return;
          done(d == StoreStatus::kNotFound ? StoreStatus::kOk : d);
        });
      } else {
        done(StoreStatus::kOk);  // gone: destroyed or expired meanwhile
      }
    });
  });
}

// After the live sessions: every first-visit token the request presented is retired too, so that
// no copy of the cookie can store its session again (retire_first_visit).
void SessionGate::retire_candidates(size_t index, bool destroyed, Done done) {
  if (index >= candidate_count_) {
    if (unconfirmed_) {
      done(Outcome::kUnavailable);
      return;
    }
    if (destroyed) {
      event_ = "destroyed";
      audit_event("destroyed", "logout", handle_hex_, record_user());
    }
    add_set_cookie(/*expire=*/true);
    done(Outcome::kLogout);
    return;
  }
  Ticket epoch = ticket();
  retire_first_visit(candidates_[index], [this, epoch, index, destroyed, done](StoreStatus s) {
    if (stale(epoch)) return;
    if (s != StoreStatus::kOk) {
      unconfirmed_ = true;
      store_failed("first-visit token retirement");
    }
    retire_candidates(index + 1, destroyed, std::move(done));
  });
}

void SessionGate::store_failed(const char* what) {
  SG_LOG_WARN("session store: %s not confirmed", what);
  if (metrics_ != nullptr) metrics_->store_errors.add();
}

void SessionGate::unavailable(Done done) {
  SG_LOG_WARN("session store unavailable");
  if (metrics_ != nullptr) metrics_->store_errors.add();
  // logout_path is the gateway's own: never forwarded, even with fail_open (the application
  // would answer it, and the client would believe it logged out).
  if (!logout_ && config_->redis_store.on_unavailable == OnUnavailable::kFailOpen &&
      config_->session.store == StoreKind::kRedis) {
    done(Outcome::kProceed);  // no session, no cookie
  } else {
    done(Outcome::kUnavailable);
  }
}

// A returning visit writes nothing here: the idle refresh is decided when the response arrives.
void SessionGate::on_found(Done done) {
  if (logout_) {
    set_handle_hex();
    destroy_live(0, std::move(done));
    return;
  }
  active_ = true;
  finish_request(std::move(done));
}

void SessionGate::create_session(Done done) {
  if (logout_) {
    done(Outcome::kLogout);
    return;
  }
  record_ = SessionRecord{};
  record_origin();
  record_.client_address = client_address_;
  record_.user_agent = user_agent_;
  if (config_->session.create == SessionCreate::kOnReturn) {
    // A cookie and a handle, no store write: the token itself says it is ours and when it began.
    const FirstVisitKey* fv = first_visit_key();
    if (fv == nullptr || !fv->issue(unix_now_ms(), token_, record_.handle, record_.created_ms)) {
      SG_LOG_ERROR("cannot issue a first-visit token: refusing to create a session");
      done(Outcome::kUnavailable);
      return;
    }
    record_.last_seen_ms = record_.created_ms;  // key_ waits for a write (create_then)
    is_new_ = unstored_ = active_ = true;
    event_ = "new";
    add_set_cookie(/*expire=*/false);
    finish_request(std::move(done));
    return;
  }
  // A CSPRNG failure must not produce a guessable session: fail closed.
  if (!generate_token(token_) || !generate_handle(record_.handle)) {
    SG_LOG_ERROR("RAND_bytes failed: refusing to create a session");
    done(Outcome::kUnavailable);
    return;
  }
  record_.created_ms = record_.last_seen_ms = unix_now_ms();
  key_ = key_of(token_);
  is_new_ = true;
  Ticket epoch = ticket();
  store_->create(key_, record_, [this, epoch, done](StoreStatus s) {
    if (stale(epoch)) return;
    if (s != StoreStatus::kOk) {
      unavailable(std::move(done));
      return;
    }
    active_ = true;
    event_ = "new";
    add_set_cookie(/*expire=*/false);
    audit_event("created", "", handle_to_hex(record_.handle), nullptr);
    finish_request(std::move(done));
  });
}

void SessionGate::finish_request(Done done) {
  const std::string& prefix = config_->session.header_prefix;
  set_handle_hex();
  auto next = [this]() -> std::pair<std::string, std::string>& {
    if (injected_count_ == injected_.size()) injected_.emplace_back();
    return injected_[injected_count_++];
  };
  auto& id = next();
  id.first.assign(prefix).append("Id");
  id.second.assign(handle_hex_);
  for (const auto& [attr, value] : record_.attributes) {
    auto& h = next();
    h.first.assign(prefix);
    append_header_case(h.first, attr);
    h.second.assign(value);
  }
  done(Outcome::kProceed);
}

void SessionGate::add_set_cookie(bool expire) {
  const SessionConfig& sc = config_->session;
  bool secure = cookie_secure_effective(sc, tls_);
  // Only one Set-Cookie of ours per response: the last decision (rotate, destroy) wins.
  for (auto it = response_headers_.begin(); it != response_headers_.end();)
    it = it->first == "Set-Cookie" ? response_headers_.erase(it) : it + 1;
  response_headers_.emplace_back(
      "Set-Cookie", expire ? build_expired_cookie(sc, secure)
                           : build_session_cookie(sc, token_, secure, unix_now_ms() / 1000));
  sets_cookie_ = true;
}

std::string SessionGate::status_body(int64_t now_ms) const {
  const SessionConfig& sc = config_->session;
  return render_session_status(now_ms, record_.created_ms, record_.last_seen_ms,
                               sc.idle_timeout.count(), sc.absolute_timeout.count(), record_user());
}

}  // namespace sg
