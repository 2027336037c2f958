// Validation and application of the application's `X-Session-Set-<Name>: <value>` directives to a
// session's attribute list. Pure logic, no I/O.
//
// Decisions (the contract says only "bounded in count and bytes", "CR, LF, NUL or other control
// bytes ... are refused"):
// - Names are RFC 9110 §5.6.2 tokens. They are folded to lowercase and '_' to '-' before storage
//   and comparison: header names are case-insensitive (RFC 9110 §5.1), and CGI, PHP and WSGI map
//   '_' and '-' to one variable, so "User_Id" and "user-id" must be one attribute, not two the
//   application cannot tell apart. "id" is refused: X-Session-Id is the handle.
// - Values: leading and trailing SP/HTAB are trimmed (that is OWS, not part of a field value,
//   RFC 9110 §5.5); what remains must be visible ASCII or SP (0x20-0x7E). HTAB inside, obs-text
//   (0x80-0xFF), CR, LF, NUL and other controls are refused: the value is re-injected as a request
//   header and must survive every parser on the way unchanged.
// - An empty value (after trimming) removes the attribute.
// - Bounds: at most max_attributes entries, and the sum of name + value sizes of all entries at
//   most max_bytes. A refused directive changes nothing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sg {

using SessionAttributes = std::vector<std::pair<std::string, std::string>>;  // sorted, unique

enum class AttributeError {
  kOk,
  kBadName,       // empty, not a token, or reserved ("id")
  kBadValue,      // a byte outside 0x20-0x7E after trimming
  kTooMany,       // would exceed max_attributes
  kTooManyBytes,  // would exceed max_bytes
};

// Short English text for logs ("attribute value has a control byte").
const char* attribute_error_text(AttributeError error);

// True when `name` is a non-empty RFC 9110 token (tchar only).
bool is_http_token(std::string_view name);

// The stored form of an attribute name: lowercase, '_' read as '-'.
std::string fold_attribute_name(std::string_view name);

// Sets (or, for an empty value, removes) attribute `name` in `attrs`, which is sorted by folded
// name with unique names. On any error `attrs` is unchanged. Removing an absent name is kOk.
AttributeError apply_attribute(SessionAttributes& attrs, std::string_view name,
                               std::string_view value, uint32_t max_attributes, uint32_t max_bytes);

}  // namespace sg
