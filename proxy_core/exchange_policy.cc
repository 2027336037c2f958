// Exchange, issue 15's request policy (README "Access rules, CSRF defence and the signed
// identity header"): between the session gate and the upstream, the access rules and the CSRF
// check decide whether the request is forwarded; when it is, the exchange adds its own headers
// under the prefix (<prefix>Csrf, then <prefix>Signature, last). The decisions themselves are the
// pure modules of proxy_core/policy/; this file only runs them on the exchange. Each feature off
// costs one test of the configuration.
#include "proxy_core/base/clock.h"
#include "proxy_core/chunk_bufs.h"
#include "proxy_core/exchange.h"
#include "proxy_core/http/path_match.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/policy/access_policy.h"
#include "proxy_core/policy/csrf_policy.h"

namespace sg {

void Exchange::run_policy() {
  const MessageHead& req = (*request_);
  if (!config_->access.rules.empty() && !access_allowed(req)) return;
  if (config_->csrf.mode != CsrfMode::kOff) {
    check_csrf_then_forward(req);
    return;
  }
  forward_request();
}

// False when the request was answered here (303, 401 or 403): it never reaches the application.
bool Exchange::access_allowed(const MessageHead& req) {
  PolicyDecision d = decide_access(config_->access, req, SessionView{session_.attributes()});
  if (d.allowed()) return true;
  services_->metrics().access_denied[static_cast<int>(d.outcome) - 1].add();
  SG_LOG_DEBUG("request %s: access %s by rule %d", request_id_.c_str(),
               access_outcome_name(d.outcome), d.rule);
  HeaderList extra;
  if (!d.location.empty()) extra.emplace_back("Location", std::move(d.location));
  send_local(d.status, d.body, close_after_, &extra, d.content_type);
  return false;
}

void Exchange::check_csrf_then_forward(const MessageHead& req) {
  csrf_token_.clear();
  const TokenHash* live = session_.live_key();
  if (config_->csrf.mode == CsrfMode::kToken && keys_ != nullptr && keys_->csrf && live != nullptr)
    csrf_token_ = keys_->csrf->token_for(*live);
  const ClientFacts& client = downstream_->client();
  const bool https = client.tls || (client.trusted && request_scheme(req) == ClientScheme::kHttps);
  CsrfDecision d = check_csrf(config_->csrf, req, https, csrf_token_);
  switch (d.verdict) {
    case CsrfVerdict::kAllow:
      forward_request();
      return;
    case CsrfVerdict::kScanBody:
      break;
    case CsrfVerdict::kRefuse:
    case CsrfVerdict::kTooLarge:
      refuse_csrf(static_cast<int>(d.reason));
      return;
  }
  // An urlencoded body without the header: hold it (bounded) until the field is found. The
  // upstream is not connected yet, so nothing of it can reach the application before the check.
  form_scan_.emplace(config_->csrf.form_field, config_->csrf.max_form_bytes);
  held_body_.clear();
  hold_ = Hold::kScanning;
  if (request_done_) {  // no body at all: the field is missing
    form_scanned();
    return;
  }
  phase_ = Phase::kForward;  // read and parse the body (upstream_ is null)
  if (expect_continue_) {
    downstream_->send_continue();
    expect_continue_ = false;
  }
  downstream_->deliver_request_body();
}

void Exchange::refuse_csrf(int reason) {
  const auto r = static_cast<CsrfReason>(reason);
  services_->metrics().csrf_refused[reason].add();
  std::string session(session_.handle().empty() ? std::string_view("-") : session_.handle());
  SG_LOG_INFO("request %s: %s %.*s refused by the CSRF check (%s), session %s", request_id_.c_str(),
              (*request_).method.c_str(),
              static_cast<int>(path_without_query((*request_).target).size()),
              path_without_query((*request_).target).data(), csrf_reason_name(r), session.c_str());
  const bool too_large = r == CsrfReason::kFormTooLarge;
  hold_ = Hold::kNone;  // the rest of the body is discarded
  held_body_.clear();
  const int status = too_large ? 413 : 403;
  // 413: the client may still be sending a large body; close rather than read it all.
  if (too_large) close_after_ = true;
  send_local(status, std::string(status_reason(status)) + "\n", close_after_);
}

// Body bytes (de-chunked) while the token is looked for, or while a passed body waits for the
// upstream connection (bounded by one read: reading stops while connecting).
void Exchange::hold_body(const char* data, size_t len) {
  downstream_->touch_client_timer();
  if (hold_ == Hold::kHolding) {
    if (upstream_ == nullptr || closed_) {  // the connect failed and was answered: discard
      hold_ = Hold::kNone;
      held_body_.clear();
      return;
    }
    held_body_.append(data, len);
    return;
  }
  FormFieldScanner::Result r = form_scan_->feed(std::string_view(data, len));
  if (r == FormFieldScanner::Result::kTooLarge) {
    form_scanned();
    return;
  }
  held_body_.append(data, len);  // within max_form_bytes, or the bytes that held the field
  if (r != FormFieldScanner::Result::kNeedMore) form_scanned();
}

// The scan ended (the field, the end of the body, or the bound): decide.
void Exchange::form_scanned() {
  if (hold_ != Hold::kScanning) return;  // held: send_held_body ends it
  FormFieldScanner::Result r = request_done_ ? form_scan_->finish() : form_scan_->result();
  std::optional<std::string_view> found;
  if (r == FormFieldScanner::Result::kFound) found = form_scan_->value();
  // A malformed or too long value is a wrong token, not a missing one.
  if (r == FormFieldScanner::Result::kMalformed || r == FormFieldScanner::Result::kTooLong)
    found = std::string_view();
  CsrfDecision d = check_form_token(found, r == FormFieldScanner::Result::kTooLarge, csrf_token_);
  if (d.verdict != CsrfVerdict::kAllow) {
    refuse_csrf(static_cast<int>(d.reason));
    return;
  }
  hold_ = Hold::kHolding;
  forward_request();
}

// The upstream is connected and has the head: the held bytes go first, then the body streams.
bool Exchange::send_held_body() {
  hold_ = Hold::kNone;
  int r = 0;
  if (!held_body_.empty()) {
    if (request_framing_ == BodyFraming::kChunked) {
      ChunkBufs chunk(held_body_.data(), held_body_.size(), chunk_scratch_);
      r = upstream_->write(chunk.bufs, ChunkBufs::kCount);
    } else {
      r = upstream_->write(held_body_);
    }
  }
  if (r == 0 && request_done_ && request_framing_ == BodyFraming::kChunked)
    r = upstream_->write(kLastChunk);
  held_body_.clear();
  if (r != 0) {
    upstream_->fail(r);
    return false;
  }
  return true;
}

// <prefix>Csrf (token mode, with a session) and <prefix>Signature (upstream.sign) for the
// upstream head; null when neither is on.
const HeaderList* Exchange::policy_headers(const MessageHead& req) {
  const bool token = config_->csrf.mode == CsrfMode::kToken;
  if (!token && !config_->upstream.sign) return nullptr;
  policy_headers_.clear();
  const std::string& prefix = config_->session.header_prefix;
  if (token && !csrf_token_.empty())
    policy_headers_.emplace_back(prefix + std::string(kCsrfHeaderSuffix), csrf_token_);
  if (config_->upstream.sign && keys_ != nullptr && !keys_->signing.empty()) {
    std::string signature =
        sign_identity(keys_->signing[0], req.method, req.target, session_.injected(),
                      session_.injected_count(), prefix, unix_now_ms() / 1000, &policy_headers_);
    policy_headers_.emplace_back(prefix + std::string(kSignatureHeaderSuffix),
                                 std::move(signature));
  }
  return &policy_headers_;
}

}  // namespace sg
