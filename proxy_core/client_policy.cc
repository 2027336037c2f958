// ClientConnection, issue 15's request policy (README "Access rules, CSRF defence and the signed
// identity header"): between the session gate and the upstream, the access rules and the CSRF
// check decide whether the request is forwarded; when it is, the exchange adds its own headers
// under the prefix (<prefix>Csrf, then <prefix>Signature, last). The decisions themselves are the
// pure modules of proxy_core/policy/; this file only runs them on the exchange. Each feature off
// costs one test of the configuration.
#include "proxy_core/base/clock.h"
#include "proxy_core/chunk_bufs.h"
#include "proxy_core/client_connection.h"
#include "proxy_core/http/path_match.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/policy/access_policy.h"
#include "proxy_core/policy/csrf_policy.h"
#include "proxy_core/worker.h"

namespace sg {

void ClientConnection::run_policy() {
  const MessageHead& req = request_parser_.head();
  if (!config_->access.rules.empty() && !access_allowed(req)) return;
  if (config_->csrf.mode != CsrfMode::kOff) {
    check_csrf_then_forward(req);
    return;
  }
  forward_request();
}

// False when the request was answered here (303, 401 or 403): it never reaches the application.
bool ClientConnection::access_allowed(const MessageHead& req) {
  PolicyDecision d = decide_access(config_->access, req, SessionView{session_.attributes()});
  if (d.allowed()) return true;
  worker_->metrics().access_denied[static_cast<int>(d.outcome) - 1].add();
  SG_LOG_DEBUG("request %s: access %s by rule %d", request_id_.c_str(),
               access_outcome_name(d.outcome), d.rule);
  HeaderList extra;
  if (!d.location.empty()) extra.emplace_back("Location", std::move(d.location));
  send_local(d.status, d.body, ex_.close_after, &extra, d.content_type);
  return false;
}

void ClientConnection::check_csrf_then_forward(const MessageHead& req) {
  csrf_token_.clear();
  const TokenHash* live = session_.live_key();
  if (config_->csrf.mode == CsrfMode::kToken && keys_ != nullptr && keys_->csrf && live != nullptr)
    csrf_token_ = keys_->csrf->token_for(*live);
  const bool https =
      tls_ != nullptr || (peer_trusted_ && request_scheme(req) == ClientScheme::kHttps);
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
  ex_.hold = ExchangeState::Hold::kScanning;
  if (ex_.request_done) {  // no body at all: the field is missing
    form_scanned();
    return;
  }
  state_ = State::kForward;  // read and parse the body (ex_.upstream is null)
  if (ex_.expect_continue) {
    write_client("HTTP/1.1 100 Continue\r\n\r\n");
    ex_.expect_continue = false;
  }
  request_parser_.resume();
  process_pending();
}

void ClientConnection::refuse_csrf(int reason) {
  const auto r = static_cast<CsrfReason>(reason);
  worker_->metrics().csrf_refused[reason].add();
  std::string session(session_.handle().empty() ? std::string_view("-") : session_.handle());
  SG_LOG_INFO("request %s: %s %.*s refused by the CSRF check (%s), session %s", request_id_.c_str(),
              request_parser_.head().method.c_str(),
              static_cast<int>(path_without_query(request_parser_.head().target).size()),
              path_without_query(request_parser_.head().target).data(), csrf_reason_name(r),
              session.c_str());
  const bool too_large = r == CsrfReason::kFormTooLarge;
  ex_.hold = ExchangeState::Hold::kNone;  // the rest of the body is discarded
  held_body_.clear();
  const int status = too_large ? 413 : 403;
  // 413: the client may still be sending a large body; close rather than read it all.
  if (too_large) ex_.close_after = true;
  send_local(status, std::string(status_reason(status)) + "\n", ex_.close_after);
}

// Body bytes (de-chunked) while the token is looked for, or while a passed body waits for the
// upstream connection (bounded by one read: reading stops while connecting).
void ClientConnection::hold_body(const char* data, size_t len) {
  if (timer_kind_ == TimerKind::kActivity) arm_timer(TimerKind::kActivity);
  if (ex_.hold == ExchangeState::Hold::kHolding) {
    if (ex_.upstream == nullptr || closing_) {  // the connect failed and was answered: discard
      ex_.hold = ExchangeState::Hold::kNone;
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
void ClientConnection::form_scanned() {
  if (ex_.hold != ExchangeState::Hold::kScanning) return;  // held: send_held_body ends it
  FormFieldScanner::Result r = ex_.request_done ? form_scan_->finish() : form_scan_->result();
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
  ex_.hold = ExchangeState::Hold::kHolding;
  forward_request();
}

// The upstream is connected and has the head: the held bytes go first, then the body streams.
bool ClientConnection::send_held_body() {
  ex_.hold = ExchangeState::Hold::kNone;
  int r = 0;
  if (!held_body_.empty()) {
    if (ex_.request_framing == BodyFraming::kChunked) {
      ChunkBufs chunk(held_body_.data(), held_body_.size(), out_);
      r = ex_.upstream->write(chunk.bufs, ChunkBufs::kCount);
    } else {
      r = ex_.upstream->write(held_body_);
    }
  }
  if (r == 0 && ex_.request_done && ex_.request_framing == BodyFraming::kChunked)
    r = ex_.upstream->write(kLastChunk);
  held_body_.clear();
  if (r != 0) {
    ex_.upstream->fail(r);
    return false;
  }
  return true;
}

// <prefix>Csrf (token mode, with a session) and <prefix>Signature (upstream.sign) for the
// upstream head; null when neither is on.
const HeaderList* ClientConnection::policy_headers(const MessageHead& req) {
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
