// "Did you mean": the closest of a set of names to a misspelt one, for the messages that refuse
// an unknown command, option or file key.
#pragma once

#include <string>
#include <vector>

namespace amalgam {

/// "; did you mean X?" for the name in `names` closest to `word` (by edit distance, a name that
/// starts with `word` counting as close), or "" when none is close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& names);

}  // namespace amalgam
