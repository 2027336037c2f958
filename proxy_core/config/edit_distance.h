// Edit distance for "did you mean" suggestions in configuration errors. Pure logic.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sg {

// Optimal-string-alignment distance, ASCII case-insensitive: insertions, deletions, substitutions
// and swaps of two adjacent characters each cost 1 ("cookie_nmae" is 1 from "cookie_name").
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate nearest to `word`, when it is near enough to be a likely typo: within 1 edit for
// words of up to 4 characters, within 2 otherwise. Ties go to the earlier candidate.
std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates);

}  // namespace sg
