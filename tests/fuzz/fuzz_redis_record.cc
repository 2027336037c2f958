// Fuzz target: a Redis hash read back under a session key (redis_codec.h, read_session_hash).
// Whatever is stored in Redis is untrusted: another client may have written it. The store turns
// an HGETALL reply into a session only through read_session_hash, so what that returns as a
// session must pass check_session_record; nothing else may crash or overflow.
//
// Input: byte 0 is max_attributes (0-15, 0 = unbounded), byte 1 a quarter of max_bytes (0 =
// unbounded); the rest is field, value, field, value, ... separated by NUL bytes (so that values
// may hold CR, LF and anything else a crafted hash would).
//
// Invariants:
// - kSession: check_session_record passes at the same now and bounds; attributes sorted and
//   unique; written back with session_hash_fields it reads back as the same record; the expiry
//   and TTL arithmetic is defined (UBSan in the fuzz build) and the TTL is at least 1;
// - kMarker: grace_until is not negative, and no session field came with it;
// - kInvalid: the check named a reason; kAbsent only for an empty field list.
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/session/session_record_check.h"
#include "proxy_core/store/redis_codec.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

constexpr int64_t kNow = 1'700'000'000'000;

std::vector<std::string_view> split_nul(std::string_view in) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= in.size(); ++i) {
    if (i == in.size() || in[i] == '\0') {
      out.push_back(in.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

}  // namespace

SG_FUZZ_ENTRY(redis_record) {
  if (size < 2) return 0;
  const uint32_t max_attributes = data[0] % 16;
  const uint32_t max_bytes = static_cast<uint32_t>(data[1]) * 4;
  const std::vector<std::string_view> parts = split_nul(sg_fuzz::as_text(data + 2, size - 2));
  sg::HashFields fields;
  for (size_t i = 0; i + 1 < parts.size(); i += 2)
    fields.emplace_back(parts[i], parts[i + 1]);

  const sg::StoredEntry e = sg::read_session_hash(fields, kNow, max_attributes, max_bytes);
  switch (e.kind) {
    case sg::StoredKind::kAbsent:
      SG_FUZZ_CHECK(fields.empty());
      break;
    case sg::StoredKind::kMalformed:
      break;
    case sg::StoredKind::kInvalid:
      SG_FUZZ_CHECK(e.error != sg::RecordError::kOk);
      break;
    case sg::StoredKind::kMarker:
      SG_FUZZ_CHECK(e.marker.grace_until_ms >= 0);
      for (const auto& [field, value] : fields)
        SG_FUZZ_CHECK(field == sg::kFieldRotatedTo || field == sg::kFieldGraceUntil);
      break;
    case sg::StoredKind::kSession: {
      const sg::SessionRecord& r = e.record;
      SG_FUZZ_CHECK(sg::check_session_record(r, kNow, max_attributes, max_bytes) ==
                    sg::RecordError::kOk);
      for (size_t i = 1; i < r.attributes.size(); ++i)
        SG_FUZZ_CHECK(r.attributes[i - 1].first < r.attributes[i].first);
      const std::vector<std::string> flat = sg::session_hash_fields(r);
      sg::HashFields again;
      for (size_t i = 0; i + 1 < flat.size(); i += 2)
        again.emplace_back(flat[i], flat[i + 1]);
      const sg::StoredEntry back = sg::read_session_hash(again, kNow, max_attributes, max_bytes);
      SG_FUZZ_CHECK(back.kind == sg::StoredKind::kSession);
      SG_FUZZ_CHECK(back.record.handle == r.handle);
      SG_FUZZ_CHECK(back.record.created_ms == r.created_ms);
      SG_FUZZ_CHECK(back.record.last_seen_ms == r.last_seen_ms);
      SG_FUZZ_CHECK(back.record.attributes == r.attributes);
      SG_FUZZ_CHECK(back.record.client_address == r.client_address);
      SG_FUZZ_CHECK(back.record.user_agent == r.user_agent);
      // The largest timeouts the configuration accepts are far below these.
      (void)sg::session_expiry(r, kNow, 365LL * 86'400'000, 365LL * 86'400'000);
      SG_FUZZ_CHECK(sg::session_ttl_ms(r, kNow, 365LL * 86'400'000, 365LL * 86'400'000) >= 1);
      break;
    }
  }
  return 0;
}
