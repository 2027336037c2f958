// SessionGate: the session side of one exchange. It reads our cookie from the request, resolves
// or creates the session through the (asynchronous) SessionStore, says which trusted headers to
// inject and which Cookie value to forward, then applies the application's directives from the
// response (rotate, destroy, set attributes) and says which Set-Cookie to add.
//
// One per Exchange (exchange.h), reset for every request. Loop thread only. The token lives only
// here and in the Set-Cookie we send: never in logs, never in an upstream header.
//
// Integrity (issue 13): a returning visit costs the store one lookup and nothing else. Every
// write happens when the response arrives, as ONE per-field SessionChange on the session's live
// key (attribute sets and removes, and last-seen when the idle refresh is due), so a slow request
// can neither put back an attribute another request removed nor re-create a destroyed session.
// The refresh Set-Cookie is sent only when that modify succeeded, i.e. the token is still live
// (after a rotation by another request the old key is a marker and modify finds nothing).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proxy_core/config/config.h"
#include "proxy_core/http/cookie.h"
#include "proxy_core/http/header_rewrite.h"
#include "proxy_core/http/http_message.h"
#include "proxy_core/ops/metrics.h"
#include "proxy_core/session/first_visit_token.h"
#include "proxy_core/session/session_attributes.h"
#include "proxy_core/session/session_cookie.h"
#include "proxy_core/session/session_store.h"
#include "proxy_core/session/token.h"

namespace sg {

class SessionGate {
 public:
  enum class Outcome {
    kProceed,      // forward the request (with or without a session)
    kUnavailable,  // the store failed (fail_closed), or a logout the store did not confirm: 503
    kLogout,       // logout_path: the session is gone; answer 303 to logout_redirect
  };
  using Done = std::function<void(Outcome)>;

  void reset();
  // The client's address and the request's id, for the session record (address and user agent are
  // recorded when a session is created) and the audit log. Call after reset() and before
  // begin(); empty when unknown. Not copied: both must stay valid, as `request` given to
  // begin(), until the request's response is done (the exchange keeps them). `digests`: the
  // client connection's token digest cache (may be null: the gate's own is used).
  void set_client(std::string_view address, std::string_view request_id,
                  TokenDigestCache* digests = nullptr);
  // Starts resolving the session of `request`. `done` may run before begin() returns.
  // `metrics` (the worker's) counts store failures and rotated-token replays; may be null.
  void begin(const Config& config, SessionStore* store, WorkerMetrics* metrics, bool tls,
             const MessageHead& request, Done done);
  // Applies the application's directives in `response` (and strips nothing: the response builder
  // drops every header under the prefix). `done` may run before on_response() returns.
  void on_response(const MessageHead& response, std::function<void()> done);

  // For the upstream request.
  // The first injected_count() entries of injected() are this request's trusted headers (the
  // list keeps spare entries so that their strings are reused across requests).
  const HeaderList& injected() const { return injected_; }
  size_t injected_count() const { return injected_count_; }
  bool replace_cookie() const { return replace_cookie_; }
  std::string_view cookie_value() const { return cookie_value_; }
  // For the request policy (issue 15): the session's attributes as read at request time (null
  // when the request has no session: excluded path, store failed open), and the live session's
  // store key (for a grace request the live session's, not the old token's; computed here for a
  // first visit that is not stored yet, whose key it will be). Null without a session.
  const SessionAttributes* attributes() const { return active_ ? &record_.attributes : nullptr; }
  const TokenHash* live_key();
  // For the client response.
  const HeaderList& response_headers() const { return response_headers_; }
  bool sets_cookie() const { return sets_cookie_; }
  // Issue 14. session.status_path: the gateway answers this request itself with status_body()
  // (200) when it has a session, else 401 with kNoSessionBody; nothing was created or written.
  bool status_request() const { return status_; }
  std::string status_body(int64_t now_ms) const;
  // The stored session of this request, for watching a tunnel it opens (session_watch.h); null
  // without one or for a first visit not stored yet (nothing to revoke).
  const SessionHandle* stored_handle() const {
    return active_ && !unstored_ ? &record_.handle : nullptr;
  }
  // The session's user (session.user_attribute) as read at request time, or null.
  const std::string* session_user() const { return active_ ? record_user() : nullptr; }
  // For the access log.
  std::string_view handle() const { return handle_hex_; }
  std::string_view event() const { return event_; }
  // Application directives refused in the last response (bad name, value or bounds).
  unsigned rejected_directives() const { return rejected_directives_; }

 private:
  // What the response asked for, validated against the record read at request time.
  struct Directives {
    bool rotate = false, destroy = false;
    bool destroy_others = false;  // X-Session-Control: destroy-others (the user's other sessions)
    bool destroy_user = false;    // X-Session-Control: destroy-user (all of them, this one too)
    bool refresh = false;         // the idle refresh is due (last_seen_ms in change)
    unsigned attribute_directives = 0;  // accepted Set- directives (rejected if the store refuses)
    bool followed = false;              // already sent on to the live key after a rotation
    SessionChange change;
  };
  void lookup_next(Done done);
  // `r` by reference: its record is moved into the gate (a copy per request saved).
  void on_lookup(size_t index, const TokenHash& key, LookupResult& r, Done done);
  void on_replay(const LookupResult& r, Done done);
  TokenHash key_of(const std::string& token);
  void on_found(Done done);
  void unavailable(Done done);
  void store_failed(const char* what);
  void create_session(Done done);
  // session.create = "on_return" (first_visit_token.h).
  const FirstVisitKey* first_visit_key();
  void note_first_visit(size_t index, const LookupResult& r);
  void store_first_visit(Done done);
  void first_visit_stored(bool retried, Done done);
  void create_then(std::function<void()> next);
  void finish_request(Done done);
  void add_set_cookie(bool expire);
  void read_directives(const MessageHead& response, Directives& d);
  void on_first_visit_response(Directives d, std::function<void()> done);
  void apply_directives(Directives d, std::function<void()> done);
  void destroy_directive(std::function<void()> done);
  void rotate_directive(Directives d, std::function<void()> done);
  void modify_directive(Directives d, std::function<void()> done);
  void refused_by_bounds(const Directives& d);
  // session_gate_users.cc: the user index's directives and the per-user cap.
  const std::string* record_user() const;
  // The session's user once `change` is applied, or null.
  const std::string* rotated_user(const SessionChange& change) const;
  void user_directive(Directives d, std::function<void()> done);
  void limit_reached(Directives d, std::function<void()> done);
  void clear_limit_notice(SessionChange& change) const;
  // One audit line (ops/audit_log.h) about `handle` (hex) with this request's client and id.
  void audit_event(std::string_view event, std::string_view reason, std::string_view handle,
                   const std::string* user) const;
  void record_origin();  // client_address_ and user_agent_, from set_client's and begin's

  const Config* config_ = nullptr;
  SessionStore* store_ = nullptr;
  WorkerMetrics* metrics_ = nullptr;
  bool tls_ = false;
  // Asynchronous answers must not touch a gate that moved on (next request) or is gone (closed
  // connection): they carry a Ticket, checked by stale(). One allocation per connection.
  struct Ticket {
    std::weak_ptr<uint64_t> alive;  // points at generation_ while the gate lives
    uint64_t generation;
  };
  Ticket ticket() const { return {alive_, generation_}; }
  static bool stale(const Ticket& t) {
    std::shared_ptr<uint64_t> g = t.alive.lock();
    return g == nullptr || *g != t.generation;
  }
  void set_handle_hex();
  static bool is_passive(const SessionConfig& sc, const MessageHead& request,
                         std::string_view path);
  void destroy_live(unsigned index, Done done);  // logout with several live sessions: all of them
  void retire_candidates(size_t index, bool destroyed, Done done);
  void destroy_session(const TokenHash& key, std::function<void(StoreStatus)> done);
  void follow_rotation(std::function<void(bool found)> next);
  void retire_first_visit(std::string_view token, std::function<void(StoreStatus)> done);
  std::shared_ptr<uint64_t> alive_ = std::make_shared<uint64_t>(0);
  uint64_t& generation_ = *alive_;
  bool active_ = false;  // this request has a session (not excluded, store usable)
  bool is_new_ = false;
  bool logout_ = false;
  bool in_grace_ = false;       // the token is a rotated-away one inside rotation_grace
  bool unconfirmed_ = false;    // logout: a destroy the store did not confirm
  bool unstored_ = false;       // on_return: a first visit, not in the store (yet)
  bool passive_ = false;        // passive_paths or <prefix>Passive: 1: no idle refresh
  bool status_ = false;         // session.status_path: answered locally, never creates
  int first_visit_index_ = -1;  // the candidate that is a returning first-visit token
  SessionHandle first_visit_handle_{};
  int64_t first_visit_created_ms_ = 0;
  std::shared_ptr<const FirstVisitKey> first_visit_key_;  // for first_visit_key_config_
  const Config* first_visit_key_config_ = nullptr;
  std::string candidates_[kMaxTokenCandidates];  // copied out of the request head
  TokenHash live_keys_[kMaxTokenCandidates];     // the live keys of the sessions found (unique)
  size_t candidate_count_ = 0;
  std::vector<std::string_view> fields_, values_, shaped_;  // scratch, reused
  size_t injected_count_ = 0;
  size_t next_candidate_ = 0;
  unsigned valid_found_ = 0;
  unsigned rejected_directives_ = 0;
  TokenHash key_{};  // the session's live key (for a grace request: not the token's digest)
  TokenDigestCache own_digests_;               // when set_client names none
  TokenDigestCache* digests_ = &own_digests_;  // the connection's (see key_of)
  std::string token_;
  SessionRecord record_;
  HeaderList injected_;
  bool replace_cookie_ = false;
  std::string cookie_value_;
  HeaderList response_headers_;
  bool sets_cookie_ = false;
  std::string handle_hex_;
  std::string event_;
  std::string_view client_address_view_;  // set_client
  std::string_view request_id_;
  const MessageHead* request_ = nullptr;  // begin's
  mutable std::string client_address_;    // bounded copies, made when needed (record_origin,
                                          // audit_event)
  std::string user_agent_;
};

}  // namespace sg
