#include "proxy_core/session_gate.h"

#include "proxy_core/cookie.h"
#include "proxy_core/gateway_state.h"
#include "proxy_core/log.h"
#include "proxy_core/path_match.h"
#include "proxy_core/session_attributes.h"
#include "proxy_core/set_cookie.h"
#include "proxy_core/token.h"

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

// A keep-alive connection sends the same cookie with every request: remembering the last
// token's digest saves a SHA-256 per request. The token only ever meets its own digest here.
TokenHash SessionGate::key_of(const std::string& token) {
  if (token.size() != last_token_.size() || token != last_token_) {
    last_token_ = token;
    last_key_ = hash_token(token);
  }
  return last_key_;
}

void SessionGate::reset() {
  // Callbacks from an earlier request (a slow store) carry an older generation and do nothing.
  ++generation_;
  active_ = is_new_ = logout_ = sets_cookie_ = replace_cookie_ = false;
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
}

void SessionGate::begin(const Config& config, SessionStore* store, Counter* store_errors, bool tls,
                        const MessageHead& request, Done done) {
  config_ = &config;
  store_ = store;
  store_errors_ = store_errors;
  tls_ = tls;
  const SessionConfig& sc = config.session;

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
// exactly one is a live session; otherwise the request is treated as having none.
void SessionGate::lookup_next(Done done) {
  if (next_candidate_ >= candidate_count_) {
    if (valid_found_ == 1) {
      on_found(std::move(done));
    } else if (logout_) {
      // Several live sessions in one request (a cookie planted from a sibling domain, say):
      // logging out must not leave any of them alive on the server.
      destroy_live(0, std::move(done));
    } else {
      create_session(std::move(done));
    }
    return;
  }
  size_t index = next_candidate_++;
  TokenHash key = key_of(candidates_[index]);
  Ticket epoch = ticket();
  store_->lookup(key, unix_now_ms(), [this, epoch, key, index, done](LookupResult r) mutable {
    if (stale(epoch)) return;
    if (r.status == StoreStatus::kUnavailable) {
      unavailable(std::move(done));
      return;
    }
    if (r.status == StoreStatus::kOk && r.record) {
      live_keys_[valid_found_] = key;
      if (++valid_found_ == 1) {
        key_ = key;
        token_.assign(candidates_[index]);
        record_ = std::move(*r.record);
      }
    }
    lookup_next(std::move(done));
  });
}

void SessionGate::destroy_live(unsigned index, Done done) {
  if (index >= valid_found_) {
    if (index > 0) event_ = "destroyed";
    add_set_cookie(/*expire=*/true);
    done(Outcome::kLogout);
    return;
  }
  Ticket epoch = ticket();
  store_->destroy(live_keys_[index], [this, epoch, index, done](StoreStatus) mutable {
    if (stale(epoch)) return;
    destroy_live(index + 1, std::move(done));
  });
}

void SessionGate::unavailable(Done done) {
  SG_LOG_WARN("session store unavailable");
  if (store_errors_ != nullptr) store_errors_->add();
  if (config_->redis_store.on_unavailable == OnUnavailable::kFailOpen &&
      config_->session.store == StoreKind::kRedis) {
    done(Outcome::kProceed);  // no session, no cookie
  } else {
    done(Outcome::kUnavailable);
  }
}

void SessionGate::on_found(Done done) {
  const SessionConfig& sc = config_->session;
  if (logout_) {
    Ticket epoch = ticket();
    set_handle_hex();
    event_ = "destroyed";
    store_->destroy(key_, [this, epoch, done](StoreStatus) {
      if (stale(epoch)) return;
      add_set_cookie(/*expire=*/true);
      done(Outcome::kLogout);
    });
    return;
  }
  active_ = true;
  int64_t now = unix_now_ms();
  // Refresh last-seen and the cookie's expiry at most once per tenth of idle_timeout, so most
  // responses carry no Set-Cookie and most requests write nothing to the store.
  if (now - record_.last_seen_ms >= sc.idle_timeout.count() / 10) {
    record_.last_seen_ms = now;
    add_set_cookie(/*expire=*/false);
    Ticket epoch = ticket();
    store_->update(key_, record_, [this, epoch, done](StoreStatus s) {
      if (stale(epoch)) return;
      if (s == StoreStatus::kUnavailable) {
        unavailable(std::move(done));
        return;
      }
      finish_request(std::move(done));
    });
    return;
  }
  finish_request(std::move(done));
}

void SessionGate::create_session(Done done) {
  if (logout_) {
    done(Outcome::kLogout);
    return;
  }
  record_ = SessionRecord{};
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

void SessionGate::on_response(const MessageHead& response, std::function<void()> done) {
  if (!active_ || store_ == nullptr) {
    done();
    return;
  }
  const SessionConfig& sc = config_->session;
  const std::string& prefix = sc.header_prefix;
  bool rotate = false, destroy = false, changed = false;
  SessionAttributes attrs = record_.attributes;
  for (size_t i = 0; i < response.header_count; ++i) {
    const HeaderField& f = response.headers[i];
    if (f.name.size() <= prefix.size() || !iequals(f.name.substr(0, prefix.size()), prefix))
      continue;
    std::string_view rest = std::string_view(f.name).substr(prefix.size());
    std::string_view value = trim_ows(f.value);
    if (iequals(rest, "Control")) {
      if (iequals(value, "rotate")) {
        rotate = true;
      } else if (iequals(value, "destroy")) {
        destroy = true;
      } else {
        ++rejected_directives_;
        SG_LOG_WARN("session %s: unknown %s value ignored", handle_hex_.c_str(), f.name.c_str());
      }
    } else if (rest.size() > 4 && iequals(rest.substr(0, 4), "Set-")) {
      AttributeError e =
          apply_attribute(attrs, rest.substr(4), value, sc.max_attributes, sc.max_attribute_bytes);
      if (e == AttributeError::kOk) {
        changed = true;
      } else {
        ++rejected_directives_;
        SG_LOG_WARN("session %s: attribute directive ignored: %s", handle_hex_.c_str(),
                    attribute_error_text(e));
      }
    }
  }
  Ticket epoch = ticket();
  if (destroy) {
    event_ = "destroyed";
    store_->destroy(key_, [this, epoch, done](StoreStatus) {
      if (stale(epoch)) return;
      add_set_cookie(/*expire=*/true);
      done();
    });
    return;
  }
  record_.attributes = std::move(attrs);
  if (rotate) {
    // New token, same handle and attributes; the old token stops working at once.
    std::string fresh;
    if (!generate_token(fresh)) {
      SG_LOG_ERROR("RAND_bytes failed: session %s not rotated", handle_hex_.c_str());
      done();
      return;
    }
    TokenHash old_key = key_;
    token_ = std::move(fresh);
    key_ = key_of(token_);
    record_.last_seen_ms = unix_now_ms();
    event_ = "rotated";
    store_->rotate(old_key, key_, record_, [this, epoch, done](StoreStatus s) {
      if (stale(epoch)) return;
      if (s == StoreStatus::kOk) add_set_cookie(/*expire=*/false);
      done();
    });
    return;
  }
  if (changed) {
    store_->update(key_, record_, [epoch, done](StoreStatus) {
      if (stale(epoch)) return;
      done();
    });
    return;
  }
  done();
}

}  // namespace sg
