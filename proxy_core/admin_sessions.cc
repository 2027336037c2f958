#include "proxy_core/admin_sessions.h"

#include <llhttp.h>

#include <fstream>
#include <iterator>

#include "proxy_core/ops/audit_log.h"
#include "proxy_core/session/token.h"

namespace sg {

namespace {

constexpr std::string_view kPath = "/sessions";

AdminReply text(int status, std::string body) {
  return AdminReply{status, std::move(body), false};
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20 || u > 0x7e) {
      out.append("\\u00");
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The value of `name` in the query of `target`, percent-decoded; false when absent or malformed.
bool query_value(std::string_view target, std::string_view name, std::string& out) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return false;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos || pair.substr(0, eq) != name) continue;
    out.clear();
    std::string_view v = pair.substr(eq + 1);
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] != '%') {
        out.push_back(v[i]);
        continue;
      }
      if (i + 2 >= v.size()) return false;
      const int hi = hex_digit(v[i + 1]);
      const int lo = hex_digit(v[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    }
    return true;
  }
  return false;
}

bool parse_handle(std::string_view hex, SessionHandle& out) {
  if (hex.size() != 32) return false;
  for (size_t i = 0; i < 16; ++i) {
    const int hi = hex_digit(hex[2 * i]);
    const int lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

// The token in the file, without a trailing newline; empty when unreadable.
std::string read_token(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string token{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
    token.pop_back();
  return token;
}

// 0 when authorized, else the status to answer.
int authorize(const MessageHead& req, const std::string& token_file) {
  const std::string expected = read_token(token_file);
  if (expected.empty()) return 503;
  const HeaderField* auth = req.find("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth == nullptr || auth->value.size() <= kBearer.size() ||
      !iequals(std::string_view(auth->value).substr(0, kBearer.size()), kBearer))
    return 401;
  // Digests of both: equal length, so the comparison says nothing about the token's length.
  const bool ok = constant_time_equal(hash_token(std::string_view(auth->value).substr(7)),
                                      hash_token(expected));
  return ok ? 0 : 401;
}

}  // namespace

bool is_sessions_path(std::string_view path) {
  return path == kPath || (path.size() > kPath.size() && path.substr(0, kPath.size()) == kPath &&
                           path[kPath.size()] == '/');
}

std::string sessions_json(std::string_view user, const std::vector<UserSession>& sessions) {
  std::string out = "{\"user\":";
  append_json_string(out, user);
  out.append(",\"sessions\":[");
  for (size_t i = 0; i < sessions.size(); ++i) {
    const UserSession& s = sessions[i];
    if (i != 0) out.push_back(',');
    out.append("{\"handle\":\"" + handle_to_hex(s.handle) +
               "\",\"created_ms\":" + std::to_string(s.created_ms) +
               ",\"last_seen_ms\":" + std::to_string(s.last_seen_ms) + ",\"client_address\":");
    append_json_string(out, s.client_address);
    out.append(",\"user_agent\":");
    append_json_string(out, s.user_agent);
    out.push_back('}');
  }
  out.append("]}\n");
  return out;
}

void handle_sessions_request(const MessageHead& req, const std::string& token_file,
                             SessionStore* store, int64_t now_ms,
                             std::function<void(AdminReply)> reply) {
  if (token_file.empty()) {
    reply(text(404, "not found\n"));
    return;
  }
  if (int refused = authorize(req, token_file); refused != 0) {
    reply(text(refused, refused == 401 ? "unauthorized\n" : "admin.token_file unreadable\n"));
    return;
  }
  if (store == nullptr) {
    reply(text(503, "no session store on the admin listener\n"));
    return;
  }
  const std::string_view target = req.target;
  const std::string_view path = target.substr(0, target.find('?'));
  auto answered = [reply](std::string user, bool list) {
    return [reply, user = std::move(user), list](StoreStatus s, std::vector<UserSession> v) {
      if (s != StoreStatus::kOk) {
        reply(text(503, "session store unavailable\n"));
      } else if (list) {
        reply(AdminReply{200, sessions_json(user, v), true});
      } else {
        for (const UserSession& u : v)
          audit(AuditEvent{"destroyed", "admin", handle_to_hex(u.handle), user, u.client_address,
                           ""});
        std::string body = "{\"user\":";
        append_json_string(body, user);
        reply(AdminReply{200, body + ",\"destroyed\":" + std::to_string(v.size()) + "}\n", true});
      }
    };
  };
  if (path == kPath) {
    std::string user;
    if (!query_value(target, "user", user) || user.empty()) {
      reply(text(400, "missing ?user=\n"));
      return;
    }
    if (req.method_id == HTTP_GET) {
      store->list_user(user, now_ms, answered(user, true));
    } else if (req.method_id == HTTP_DELETE) {
      store->destroy_user(user, nullptr, now_ms, answered(user, false));
    } else {
      reply(text(405, "method not allowed\n"));
    }
    return;
  }
  SessionHandle handle;
  if (!parse_handle(path.substr(kPath.size() + 1), handle)) {
    reply(text(404, "not found\n"));
    return;
  }
  if (req.method_id != HTTP_DELETE) {
    reply(text(405, "method not allowed\n"));
    return;
  }
  store->destroy_handle(handle, now_ms, [reply](StoreStatus s, std::vector<UserSession> v) {
    if (s == StoreStatus::kNotFound) {
      reply(text(404, "no such session\n"));
    } else if (s != StoreStatus::kOk) {
      reply(text(503, "session store unavailable\n"));
    } else {
      for (const UserSession& u : v)
        audit(AuditEvent{"destroyed", "admin", handle_to_hex(u.handle), "", u.client_address, ""});
      reply(AdminReply{200, "{\"destroyed\":" + std::to_string(v.size()) + "}\n", true});
    }
  });
}

}  // namespace sg
