#include "proxy_core/config/config_policy.h"

#include <algorithm>

#include "proxy_core/base/ascii.h"
#include "proxy_core/http/path_match.h"

namespace sg::config_detail {
namespace {

// An attribute name as the session stores it (session_attributes.h, which depends on config and
// so is not included here): lowercase, '_' read as '-'.
std::string fold_attribute_name(std::string_view name) {
  std::string out(name);
  for (char& c : out)
    c = c == '_' ? '-' : ascii_lower(c);
  return out;
}

bool is_url_safe(std::string_view v) {
  return !v.empty() && !has_control(v) && v.find(' ') == std::string_view::npos;
}

std::string check_pattern(const std::string& v) {
  return !v.empty() && v[0] == '/' && is_url_safe(v)
             ? ""
             : expected("a path pattern starting with \"/\" (\"*\" matches any run)", v);
}

std::string check_login_url(const std::string& v) {
  const bool ok = v.empty() || ((v.rfind('/', 0) == 0 && v.rfind("//", 0) != 0) ||
                                v.rfind("https://", 0) == 0 || v.rfind("http://", 0) == 0);
  return ok && (v.empty() || is_url_safe(v)) && v.find('#') == std::string::npos
             ? ""
             : expected("a path (\"/login\") or an http(s) URL, without a fragment", v);
}

// "https://host[:port]": an origin as browsers send it in Origin (RFC 6454 §6.1).
std::string check_origin(const std::string& v) {
  const size_t sep = v.find("://");
  const std::string scheme = sep == std::string::npos ? "" : v.substr(0, sep);
  const std::string host = sep == std::string::npos ? "" : v.substr(sep + 3);
  return (scheme == "http" || scheme == "https") && !host.empty() &&
                 host.find_first_of("/?#@") == std::string::npos && is_url_safe(host)
             ? ""
             : expected("an origin such as \"https://app.example.com\" (no path)", v);
}

std::string check_attribute_name(const std::string& v) {
  return is_token(v) && fold_attribute_name(v) != "id"
             ? ""
             : expected("an attribute name (a header-name token, not \"Id\")", v);
}

// require = "User" | ["User", "Email"] | { Role = "admin", User = true }
void read_require(TableReader& entry, AccessRule& rule) {
  const toml::node* node = entry.take("require");
  const std::string what =
      "an attribute name, a list of them, or a table of name = \"value\" (or true: present)";
  if (node == nullptr) return;
  const auto add = [&](const toml::node& at, const std::string& name, const std::string* value) {
    if (const std::string problem = check_attribute_name(name); !problem.empty()) {
      entry.error(at, "require", problem);
      return;
    }
    rule.require.push_back({fold_attribute_name(name), value ? *value : "", value == nullptr});
  };
  if (const auto* table = node->as_table()) {
    for (const auto& [key, value] : *table) {
      const std::string name(key.str());
      if (const auto* text = value.as_string()) {
        const std::string v = text->get();
        if (v.empty() || has_control(v)) {
          entry.error(value, "require", expected("a non-empty value for " + name, v));
        } else {
          add(value, name, &v);
        }
      } else if (const auto* flag = value.as_boolean(); flag && flag->get()) {
        add(value, name, nullptr);
      } else {
        entry.error(value, "require",
                    "expected \"value\" or true for " + name + ", got " + describe(value));
      }
    }
  } else if (node->is_string() || node->is_array()) {
    std::vector<std::string> names;
    entry.string_list("require", names, check_attribute_name, false);
    for (const std::string& name : names)
      add(*node, name, nullptr);
  } else {
    entry.error(*node, "require", "expected " + what + ", got " + describe(*node));
  }
  if (const auto* table = node->as_table(); table != nullptr && table->empty())
    entry.error(*node, "require", "must name at least one attribute");
}

void read_rules(TableReader& t, AccessConfig& access) {
  for (TableReader& entry : t.table_array("rules")) {
    const toml::table* table = entry.table();
    const std::string& name = entry.name();
    AccessRule rule;
    entry.string_list("paths", rule.paths, check_pattern, false);
    entry.string_list(
        "methods", rule.methods,
        [](const std::string& v) {
          return is_token(v) ? "" : expected("a method such as \"POST\"", v);
        },
        true);
    read_require(entry, rule);
    if (table->get("paths") == nullptr) {
      t.context().diagnostics.error(pos_of(table->source()), name + ".paths: is required");
    }
    if (table->get("require") == nullptr) {
      t.context().diagnostics.error(pos_of(table->source()),
                                    name +
                                        ".require: is required (a rule without it allows "
                                        "everybody)");
    }
    entry.finish();
    access.rules.push_back(std::move(rule));
  }
}

}  // namespace

void read_access(TableReader t, AccessConfig& a) {
  t.string("login_url", a.login_url, check_login_url);
  t.string("return_param", a.return_param, [](const std::string& v) {
    const bool ok = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    });
    return ok ? "" : expected("a query parameter name (letters, digits, \"-\", \"_\", \".\")", v);
  });
  t.string_list("api_paths", a.api_paths, check_pattern, true);
  std::string signed_in = a.signed_in_attribute;
  t.string("signed_in_attribute", signed_in, check_attribute_name);
  a.signed_in_attribute = fold_attribute_name(signed_in);
  read_rules(t, a);
  t.finish();
}

void read_csrf(TableReader t, CsrfConfig& c) {
  t.choice("mode", c.mode,
           {{"off", CsrfMode::kOff},
            {"fetch-metadata", CsrfMode::kFetchMetadata},
            {"token", CsrfMode::kToken}});
  t.boolean("allow_same_site", c.allow_same_site);
  t.string_list("trusted_origins", c.trusted_origins, check_origin, true);
  t.choice("missing", c.missing, {{"allow", CsrfMissing::kAllow}, {"deny", CsrfMissing::kDeny}});
  t.string("form_field", c.form_field, [](const std::string& v) {
    return is_token(v) ? "" : expected("a form field name such as \"csrf_token\"", v);
  });
  // The gateway holds this much of a form body while it looks for the token.
  t.size("max_form_bytes", c.max_form_bytes, 64, 16u << 20);
  t.string_list("exempt", c.exempt, check_pattern, true);
  t.path("secret_file", c.secret_file);
  t.finish();
}

void read_upstream_signing(TableReader& t, UpstreamConfig& u) {
  t.boolean("sign", u.sign);
  std::vector<std::string> files;
  t.string_list(
      "sign_key_file", files,
      [](const std::string& v) { return v.empty() || has_control(v) ? expected("a file", v) : ""; },
      true);
  if (t.take("sign_key_file") != nullptr) {
    u.sign_key_file.clear();
    for (const std::string& file : files)
      u.sign_key_file.push_back(t.resolve(file));
  }
}

void validate_policy(const Config& c, const KeyPositions& positions, Diagnostics& diagnostics) {
  const AccessConfig& a = c.access;
  if (!a.rules.empty() && a.login_url.empty()) {
    diagnostics.error(positions.of({"access.login_url", "access.rules"}),
                      "access.rules: needs access.login_url, where browsers are sent to sign in");
  }
  if (!a.login_url.empty() && a.login_url[0] == '/') {
    const std::string_view login_path = path_without_query(a.login_url);
    for (size_t i = 0; i < a.rules.size(); ++i) {
      const auto& paths = a.rules[i].paths;
      if (std::any_of(paths.begin(), paths.end(),
                      [&](const std::string& p) { return path_matches(p, login_path); })) {
        diagnostics.warning(positions.of({"access.rules[" + std::to_string(i) + "]"}),
                            "access.rules[" + std::to_string(i) + "]: covers access.login_url " +
                                toml_quote(a.login_url) + ": browsers would be sent in a loop");
      }
    }
  }
  if (c.upstream.sign && c.upstream.sign_key_file.empty()) {
    diagnostics.error(positions.of({"upstream.sign"}),
                      "upstream.sign: needs upstream.sign_key_file, a file of 32 or more random "
                      "bytes");
  }
  if (c.csrf.mode == CsrfMode::kToken && c.session.store == StoreKind::kRedis &&
      c.csrf.secret_file.empty()) {
    diagnostics.warning(positions.of({"csrf.mode"}),
                        "csrf.mode: \"token\" with store = \"redis\" and no csrf.secret_file: each "
                        "instance derives its own tokens, so a form rendered through one instance "
                        "is refused by another; set csrf.secret_file");
  }
}

}  // namespace sg::config_detail
