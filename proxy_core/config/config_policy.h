// Internal to the configuration loader: the request-policy sections of issue 15, [access] with
// [[access.rules]], [csrf], and the signing keys of [upstream] (proxy_core/policy/ applies them).
#pragma once

#include "proxy_core/config/config_reader.h"

namespace sg::config_detail {

void read_access(TableReader t, AccessConfig& access);
void read_csrf(TableReader t, CsrfConfig& csrf);
// upstream.sign and upstream.sign_key_file, read from the [upstream] table.
void read_upstream_signing(TableReader& t, UpstreamConfig& upstream);
// Checks that span several of those keys (login_url with rules, sign with its keys, ...).
void validate_policy(const Config& config, const KeyPositions& positions, Diagnostics& diagnostics);

}  // namespace sg::config_detail
