// Names a user types: "did you mean" for a misspelt command, option or file key, and the tables
// that turn an option's named choices (--routing gate) into enum values and back.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace amalgam {

/// "; did you mean X?" for the name in `names` closest to `word` (by edit distance, a name that
/// starts with `word` counting as close), or "" when none is close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& names);

/// An option's choices: each value with its name, in the order messages list them.
template <typename E>
using NameTable = std::vector<std::pair<E, const char*>>;

/// "OPTION: expected a, b or c, got 'X'" (with a did-you-mean) for a name none of `names` is.
std::string unknown_choice(const std::string& option, const std::string& name,
                           const std::vector<std::string>& names);

/// The value called `name` in `table`; throws Error (unknown_choice) naming `option` otherwise.
template <typename E>
E parse_choice(const std::string& option, const std::string& name, const NameTable<E>& table) {
  std::vector<std::string> names;
  for (const auto& [value, text] : table) {
    if (name == text) return value;
    names.emplace_back(text);
  }
  throw Error(unknown_choice(option, name, names));
}

/// The name of `value` in `table` ("?" when it has none).
template <typename E>
const char* choice_name(E value, const NameTable<E>& table) {
  for (const auto& [v, text] : table)
    if (v == value) return text;
  return "?";
}

}  // namespace amalgam
