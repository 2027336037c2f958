#include "proxy_core/policy/form_field_scanner.h"

namespace sg {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

FormFieldScanner::FormFieldScanner(std::string_view field, uint64_t max_bytes, size_t max_value)
    : field_(field), max_bytes_(max_bytes), max_value_(max_value) {
  value_.reserve(max_value_);
}

FormFieldScanner::Result FormFieldScanner::feed(std::string_view chunk) {
  for (char c : chunk) {
    if (result_ != Result::kNeedMore) return result_;
    if (consumed_ == max_bytes_) {
      result_ = Result::kTooLarge;
      return result_;
    }
    ++consumed_;
    byte(c);
  }
  return result_;
}

FormFieldScanner::Result FormFieldScanner::finish() {
  if (result_ != Result::kNeedMore) return result_;
  if (escape_ != 0) pair_bad_ = true;  // "%4" at the very end
  end_pair();
  if (result_ == Result::kNeedMore) result_ = Result::kNotFound;
  return result_;
}

void FormFieldScanner::byte(char c) {
  if (escape_ != 0) {
    const int digit = hex_digit(c);
    if (digit >= 0) {
      escape_value_ = escape_value_ * 16 + static_cast<unsigned>(digit);
      if (--escape_ == 0) decoded(static_cast<char>(escape_value_));
      return;
    }
    // Not a hex digit: the escape is malformed; the byte itself is read normally below.
    escape_ = 0;
    pair_bad_ = true;
  }
  switch (c) {
    case '&':
      end_pair();
      return;
    case '=':
      if (part_ == Part::kName) {
        part_ = Part::kValue;
        capturing_ = !pair_bad_ && name_matches_ && matched_ == field_.size();
        return;
      }
      decoded(c);  // a '=' inside a value is part of it
      return;
    case '%':
      escape_ = 2;
      escape_value_ = 0;
      return;
    case '+':
      decoded(' ');
      return;
    default:
      decoded(c);
  }
}

void FormFieldScanner::decoded(char c) {
  if (part_ == Part::kName) {
    if (name_matches_ && matched_ < field_.size() && field_[matched_] == c) {
      ++matched_;
    } else {
      name_matches_ = false;
    }
    return;
  }
  if (!capturing_) return;
  if (value_.size() == max_value_) {
    value_too_long_ = true;
    return;
  }
  value_ += c;
}

void FormFieldScanner::end_pair() {
  if (capturing_) {
    result_ = pair_bad_ ? Result::kMalformed : value_too_long_ ? Result::kTooLong : Result::kFound;
    return;
  }
  // A name without '=' ("csrf_token&...") is a field with an empty value (WHATWG).
  if (part_ == Part::kName && !pair_bad_ && name_matches_ && !field_.empty() &&
      matched_ == field_.size()) {
    result_ = Result::kFound;
    return;
  }
  part_ = Part::kName;
  escape_ = 0;
  pair_bad_ = false;
  name_matches_ = true;
  matched_ = 0;
}

}  // namespace sg
