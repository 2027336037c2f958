#include "proxy_core/session/session_record_check.h"

#include "proxy_core/session/session_attributes.h"

namespace sg {

namespace {

bool printable(std::string_view text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) return false;
  }
  return true;
}

}  // namespace

const char* record_error_text(RecordError error) {
  switch (error) {
    case RecordError::kOk:
      return "ok";
    case RecordError::kBadTimes:
      return "session times out of range";
    case RecordError::kBadName:
      return "attribute name is not a folded header token or is reserved";
    case RecordError::kBadValue:
      return "attribute value is empty or has a byte that is not printable ASCII";
    case RecordError::kUnsorted:
      return "attributes not sorted or not unique";
    case RecordError::kTooMany:
      return "too many session attributes";
    case RecordError::kTooManyBytes:
      return "session attributes too large";
    case RecordError::kBadOrigin:
      return "client address or user agent too long or not printable ASCII";
  }
  return "unknown record error";
}

void assign_origin_text(std::string& out, std::string_view text, size_t max_bytes) {
  out.assign(text.substr(0, max_bytes));
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) c = '?';
  }
}

std::string origin_text(std::string_view text, size_t max_bytes) {
  std::string out;
  assign_origin_text(out, text, max_bytes);
  return out;
}

RecordError check_session_record(const SessionRecord& record, int64_t now_ms,
                                 uint32_t max_attributes, uint32_t max_attribute_bytes) {
  // Written as subtraction-free comparisons: INT64_MIN or INT64_MAX must not overflow anything.
  const int64_t latest =
      now_ms > INT64_MAX - kRecordClockSkewMs ? INT64_MAX : now_ms + kRecordClockSkewMs;
  if (record.created_ms < 0 || record.created_ms > latest || record.last_seen_ms < 0 ||
      record.last_seen_ms > latest || record.last_seen_ms < record.created_ms)
    return RecordError::kBadTimes;
  if (max_attributes != 0 && record.attributes.size() > max_attributes)
    return RecordError::kTooMany;
  uint64_t bytes = 0;
  const std::string* previous = nullptr;
  for (const auto& [name, value] : record.attributes) {
    if (!is_http_token(name) || fold_attribute_name(name) != name || name == "id")
      return RecordError::kBadName;
    if (value.empty() || value.front() == ' ' || value.back() == ' ' || !printable(value))
      return RecordError::kBadValue;
    if (previous != nullptr && !(*previous < name)) return RecordError::kUnsorted;
    previous = &name;
    bytes += name.size() + value.size();
  }
  if (max_attribute_bytes != 0 && bytes > max_attribute_bytes) return RecordError::kTooManyBytes;
  // Shown by the admin API and the audit log: bounded like everything else read back.
  if (record.client_address.size() > kMaxClientAddressBytes ||
      record.user_agent.size() > kMaxUserAgentBytes || !printable(record.client_address) ||
      !printable(record.user_agent))
    return RecordError::kBadOrigin;
  return RecordError::kOk;
}

}  // namespace sg
