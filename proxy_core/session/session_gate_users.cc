// SessionGate and the per-user index (issue 14): the directives X-Session-Control: destroy-others
// and destroy-user, and what a login refused by session.max_per_user (on_limit = "reject") does.
#include <algorithm>

#include "proxy_core/base/clock.h"
#include "proxy_core/ops/audit_log.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/session/session_attributes.h"
#include "proxy_core/session/session_gate.h"
#include "proxy_core/session/session_record_check.h"
#include "proxy_core/session/token.h"

namespace sg {

namespace {

// The attribute that carries the notice: forwarded as <prefix>Limit ("X-Session-Limit: reached")
// on the session's next request like any attribute, then removed by that request's response.
constexpr const char* kLimitAttribute = "limit";
constexpr const char* kLimitValue = "reached";

}  // namespace

void SessionGate::audit_event(std::string_view event, std::string_view reason,
                              std::string_view handle, const std::string* user) const {
  AuditLog* log = process_audit_log();
  if (log == nullptr || !log->enabled()) return;
  AuditEvent e;
  e.event = event;
  e.reason = reason;
  e.session = handle;
  if (user != nullptr) e.user = *user;
  assign_origin_text(client_address_, client_address_view_, kMaxClientAddressBytes);
  e.client = client_address_;
  e.request_id = request_id_;
  log->write(e);
}

// The session's user as read at request time, or null.
const std::string* SessionGate::record_user() const {
  const std::string name = fold_attribute_name(config_->session.user_attribute);
  for (const auto& [attr, value] : record_.attributes)
    if (attr == name) return &value;
  return nullptr;
}

const std::string* SessionGate::rotated_user(const SessionChange& change) const {
  const std::string name = fold_attribute_name(config_->session.user_attribute);
  for (const auto& [attr, value] : change.set)
    if (attr == name) return &value;
  if (std::find(change.remove.begin(), change.remove.end(), name) != change.remove.end())
    return nullptr;
  return record_user();
}

// destroy-others ends every other session of this session's user, then the rest of the response
// applies to this one (a rotate, attributes). destroy-user ends them all: this one is destroyed
// like X-Session-Control: destroy (its cookie expires). A session without a user has no others:
// the directive is refused and counted.
void SessionGate::user_directive(Directives d, std::function<void()> done) {
  const bool all = d.destroy_user;
  d.destroy_others = d.destroy_user = false;
  const std::string* user = record_user();
  if (user == nullptr) {
    ++rejected_directives_;
    SG_LOG_WARN("session %s: %s ignored: the session has no user", handle_hex_.c_str(),
                all ? "destroy-user" : "destroy-others");
    apply_directives(std::move(d), std::move(done));
    return;
  }
  if (all) d.destroy = true;
  Ticket epoch = ticket();
  store_->destroy_user(
      *user, all ? nullptr : &key_, unix_now_ms(),
      [this, epoch, d = std::move(d), done, all](StoreStatus s,
                                                 std::vector<UserSession> ended) mutable {
        if (stale(epoch)) return;
        if (s != StoreStatus::kOk) {
          store_failed(all ? "destroy-user" : "destroy-others");
        } else {
          for (const UserSession& u : ended)
            audit_event("destroyed", "user-revoke", handle_to_hex(u.handle), record_user());
          SG_LOG_INFO("session %s: %zu session(s) of its user ended by %s", handle_hex_.c_str(),
                      ended.size(), all ? "destroy-user" : "destroy-others");
        }
        apply_directives(std::move(d), std::move(done));
      });
}

// The store refused to add the session to its user's index (max_per_user, on_limit = "reject"):
// the user directive is dropped (a rotation with it does not happen: a login must not
// half-happen), the rest of the change is applied, and the session carries the notice to the
// application's next request.
void SessionGate::limit_reached(Directives d, std::function<void()> done) {
  ++rejected_directives_;
  SG_LOG_WARN("session %s: user directive refused: the user is at session.max_per_user",
              handle_hex_.c_str());
  const std::string user_name = fold_attribute_name(config_->session.user_attribute);
  for (const auto& [attr, value] : d.change.set)
    if (attr == user_name) audit_event("limit", "max-per-user", handle_hex_, &value);
  const std::string name = fold_attribute_name(config_->session.user_attribute);
  std::erase_if(d.change.set,
                [&](const auto& kv) { return kv.first == name || kv.first == kLimitAttribute; });
  std::erase(d.change.remove, std::string(kLimitAttribute));
  d.change.set.emplace_back(kLimitAttribute, kLimitValue);
  d.change.max_per_user = 0;
  d.rotate = false;
  d.followed = true;  // written to key_ as it is
  modify_directive(std::move(d), std::move(done));
}

// The notice is shown once: the response to the request that carried it removes it, unless that
// response writes the attribute itself.
void SessionGate::clear_limit_notice(SessionChange& change) const {
  bool noticed = false;
  for (const auto& [attr, value] : record_.attributes)
    noticed = noticed || (attr == kLimitAttribute && value == kLimitValue);
  if (!noticed) return;
  for (const auto& kv : change.set)
    if (kv.first == kLimitAttribute) return;
  if (std::find(change.remove.begin(), change.remove.end(), kLimitAttribute) == change.remove.end())
    change.remove.emplace_back(kLimitAttribute);
}

}  // namespace sg
