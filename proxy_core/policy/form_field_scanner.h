// Finds one field of an application/x-www-form-urlencoded body as the body streams past, without
// keeping the body: a state machine fed chunk by chunk, cut anywhere (inside a name, a value, a
// %XX escape). Pure logic, no I/O; fuzzed (tests/fuzz/fuzz_form_field.cc).
//
// - Pairs are separated by '&', name and value by the first '='; '+' reads as a space and %XX as
//   the byte (WHATWG URL "application/x-www-form-urlencoded" parsing). A malformed escape ("%zz",
//   "%4") spoils its pair: the name then matches nothing, a value is reported as kMalformed.
// - The first pair whose decoded name equals `field` decides; later ones are ignored.
// - Only the value being matched is kept, at most `max_value` bytes (longer: kTooLong, which the
//   caller treats as a mismatch). Memory use is bounded by `max_value`, not by the body.
// - When a byte past the first `max_bytes` arrives before the field is complete: kTooLarge (the
//   caller answers 413). The field's value ends at its '&' or at the end of the body.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sg {

class FormFieldScanner {
 public:
  enum class Result {
    kNeedMore,   // not found yet: feed more, or finish() at the end of the body
    kFound,      // value() holds the field's decoded value
    kMalformed,  // the field's value had a malformed escape
    kTooLong,    // the field's value was longer than max_value
    kNotFound,   // finish(): the body ended without the field
    kTooLarge,   // max_bytes consumed without the field
  };

  FormFieldScanner(std::string_view field, uint64_t max_bytes, size_t max_value = 256);

  // Consumes `chunk`; once the result is other than kNeedMore it stays so and input is ignored.
  Result feed(std::string_view chunk);
  // The end of the body: completes a field whose value ran to the end.
  Result finish();
  Result result() const { return result_; }
  std::string_view value() const { return value_; }
  uint64_t consumed() const { return consumed_; }

 private:
  enum class Part { kName, kValue };
  void byte(char c);
  void decoded(char c);
  void end_pair();

  std::string field_;
  uint64_t max_bytes_;
  size_t max_value_;
  uint64_t consumed_ = 0;
  Result result_ = Result::kNeedMore;
  Part part_ = Part::kName;
  int escape_ = 0;  // hex digits of a %XX still expected (0, 2 or 1)
  unsigned escape_value_ = 0;
  bool pair_bad_ = false;  // a malformed escape in this pair
  // In kName: the decoded name so far equals field_[0, matched_) (false once it differs).
  bool name_matches_ = true;
  size_t matched_ = 0;
  bool capturing_ = false;  // in kValue of the field
  bool value_too_long_ = false;
  std::string value_;
};

}  // namespace sg
