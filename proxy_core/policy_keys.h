// The key material of the request policy (issue 15), read from the files the configuration names:
// the CSRF token key (csrf.secret_file, or one random key per process) and the identity signing
// keys (upstream.sign_key_file, the first signs). Load it with each configuration (at start and
// on SIGHUP, on the main thread) beside the shared_ptr<const Config>: immutable afterwards, so
// every worker reads it without a lock. The random CSRF key is made once per process and kept
// across reloads, so a SIGHUP does not invalidate the forms users have open.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy_core/config/config.h"
#include "proxy_core/policy/csrf_token.h"
#include "proxy_core/policy/identity_signature.h"

namespace sg {

struct PolicyKeys {
  std::optional<CsrfKey> csrf;      // set when csrf.mode = "token"
  std::vector<SigningKey> signing;  // set when upstream.sign; signing[0] signs
};

// Null with `error` set (naming the file) when a file cannot be read or holds fewer than
// kMinPolicyKeyBytes (the configuration check refuses those too; a file may change in between),
// or when the CSPRNG fails.
std::shared_ptr<const PolicyKeys> load_policy_keys(const Config& config, std::string& error);

}  // namespace sg
