// The check every session record read back from storage (snapshot file, Redis) passes before the
// gateway uses it. A stored record is untrusted input: a crafted snapshot or a value written into
// Redis by someone else must never inject a header, split a request on the pooled upstream
// connection, or live forever. So a record read back obeys the same rules as the application's
// directives (session_attributes.h) and sane times. Pure logic, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy_core/session/session_store.h"

namespace sg {

// Clocks of several gateway instances sharing one Redis differ a little; a record stamped
// slightly in the future by another instance is fine, one far in the future would never expire.
inline constexpr int64_t kRecordClockSkewMs = 60 * 1000;

enum class RecordError {
  kOk,
  kBadTimes,      // created or last-seen below 0, after now + skew, or last-seen before created
  kBadName,       // an attribute name that is not a folded token ("id" included)
  kBadValue,      // a value that is empty, has a byte outside 0x20-0x7E, or edge spaces
  kUnsorted,      // names not strictly increasing (unsorted or duplicated)
  kTooMany,       // more than max_attributes
  kTooManyBytes,  // names + values over max_attribute_bytes
  kBadOrigin,     // client address or user agent over its bound or not printable ASCII
};

// Short English text for logs.
const char* record_error_text(RecordError error);

// `text` made fit for a record's client address or user agent: bytes outside 0x20-0x7E become
// '?', and it is cut to `max_bytes`. What the gateway records always passes the check below.
std::string origin_text(std::string_view text, size_t max_bytes);
// The same into `out`, reusing its capacity: the gate records the origin of every request in case
// it creates a session, so this must not allocate per request.
void assign_origin_text(std::string& out, std::string_view text, size_t max_bytes);

// Checks `record` against the rules above at now_ms. Bounds of 0 mean unbounded.
RecordError check_session_record(const SessionRecord& record, int64_t now_ms,
                                 uint32_t max_attributes, uint32_t max_attribute_bytes);

}  // namespace sg
