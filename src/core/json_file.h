// JSON a user or a crash hands us (sidecars, a run's config.json, metrics.jsonl, checkpoint
// metadata): every error is one line naming the file and the key, and a key nobody reads is
// refused with the key meant instead of being ignored.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace amalgam {

/// `text` parsed as JSON; throws Error "WHERE: not valid JSON (…)", e.g. for a truncated file.
nlohmann::json parse_json(const std::string& text, const std::string& where);

/// The JSON document in the file `path`; errors name the path.
nlohmann::json read_json_file(const std::string& path);

/// Throws Error "WHERE: unknown key "K"; did you mean X? (known: …)" for the first key of
/// `object` not in `known`.
void check_keys(const nlohmann::json& object, const std::vector<std::string>& known,
                const std::string& where);

/// How a message names a JSON value's type: "a string", "a list", "an integer", …
std::string json_kind(const nlohmann::json& value);

/// One JSON object, read key by key with its types checked strictly (no number read as a
/// string, no true read as 1); every error names `where` (the file) and the key.
class JsonFields {
 public:
  /// Throws Error unless `object` is a JSON object; `object` must outlive this reader.
  JsonFields(const nlohmann::json& object, std::string where);
  /// Whether the object holds `key`.
  bool has(const std::string& key) const { return object_.contains(key); }
  /// The value of `key` as T; throws Error naming the key when it is missing or of another type.
  template <typename T>
  T get(const std::string& key) const;
  /// The value of `key` as T, or `fallback` when the key is absent (a wrong type still throws).
  template <typename T>
  T get(const std::string& key, const T& fallback) const {
    return has(key) ? get<T>(key) : fallback;
  }
  /// The value of `key`; throws Error naming the key when it is missing.
  const nlohmann::json& at(const std::string& key) const;
  /// A reader for the object under `key` (absent: an empty object).
  JsonFields object(const std::string& key) const;
  /// Throws Error for a key not in `known` (check_keys).
  void only(const std::vector<std::string>& known) const { check_keys(object_, known, where_); }
  /// An Error "WHERE: "KEY" MESSAGE", for checks of a value's range.
  Error error(const std::string& key, const std::string& message) const;
  /// The file (and place in it) errors name.
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json& object_;
  std::string where_;
};

namespace detail {
/// Whether `value` has the type a C++ value of `T` reads from, strictly.
template <typename T>
bool holds(const nlohmann::json& value) {
  if constexpr (std::is_same_v<T, bool>)
    return value.is_boolean();
  else if constexpr (std::is_integral_v<T>) {
    if (value.is_number_unsigned())
      return value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max());
    return value.is_number_integer() && value.get<int64_t>() >= std::numeric_limits<T>::min() &&
           (std::is_unsigned_v<T> || value.get<int64_t>() <= std::numeric_limits<T>::max());
  } else if constexpr (std::is_floating_point_v<T>)
    return value.is_number();
  else if constexpr (std::is_same_v<T, std::string>)
    return value.is_string();
  else
    return true;  // containers and structs: their own from_json checks
}
/// "an integer", "a number", … for T.
template <typename T>
const char* kind_of() {
  if constexpr (std::is_same_v<T, bool>)
    return "true or false";
  else if constexpr (std::is_integral_v<T>)
    return "an integer";
  else if constexpr (std::is_floating_point_v<T>)
    return "a number";
  else if constexpr (std::is_same_v<T, std::string>)
    return "a string";
  else
    return "of another type";
}
/// The path ("a.b.0") of the first value of `value` that makes `read` throw when it replaces the
/// same place in `reference`; "" when none does alone.
std::string failing_path(const nlohmann::json& value, const nlohmann::json& reference,
                         const std::function<void(const nlohmann::json&)>& read);
/// Throws Error for a number anywhere in `value` that no int64 can hold (reading it as an integer
/// would be undefined behaviour; fuzz_sidecar found 4.4e104 among a head's class ids).
void check_number_range(const nlohmann::json& value, const std::string& where,
                        const std::string& path);
/// Throws Error for a key of `value` (recursively into objects) absent from `reference`, or a
/// value whose type differs from the reference value's.
void check_like(const nlohmann::json& value, const nlohmann::json& reference,
                const std::string& where, const std::string& path);
}  // namespace detail

template <typename T>
T JsonFields::get(const std::string& key) const {
  const nlohmann::json& value = at(key);
  if (!detail::holds<T>(value))
    throw error(key, std::string("must be ") + detail::kind_of<T>() + ", got " + json_kind(value));
  try {
    return value.get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw error(key, "has the wrong type (" + first_line(e.what()) + ")");
  }
}

/// `value` read as T, a type with a default value and nlohmann to_json/from_json: a key that
/// json(T{}) lacks is refused (into nested objects too), a value of another type than T's own
/// is named by its path ("train.lr"), and an Error of T's from_json gets that path too.
template <typename T>
T read_struct(const nlohmann::json& value, const std::string& where) {
  const nlohmann::json reference = T{};
  detail::check_number_range(value, where, "");
  detail::check_like(value, reference, where, "");
  const auto read = [](const nlohmann::json& j) { (void)j.get<T>(); };
  try {
    return value.get<T>();
  } catch (const std::exception& e) {
    const std::string path = detail::failing_path(value, reference, read);
    throw Error(where + ": " + (path.empty() ? "" : "\"" + path + "\": ") + first_line(e.what()));
  }
}

}  // namespace amalgam
