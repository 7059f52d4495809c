#include "core/json_file.h"

#include <cmath>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/names.h"

namespace amalgam {
namespace {

std::string known_list(const std::vector<std::string>& known) {
  std::string list;
  for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
  return list;
}

std::string joined(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

// "/train/lr" -> "train.lr"
std::string dotted(const std::string& pointer) {
  std::string path = pointer.substr(pointer.empty() ? 0 : 1);
  for (char& c : path)
    if (c == '/') c = '.';
  return path;
}

}  // namespace

nlohmann::json parse_json(const std::string& text, const std::string& where) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e400
    // "[json.exception.parse_error.101] parse error at line 3, column 1: syntax error while
    // parsing value - unexpected end of input; …": the position and the cause, without the id.
    std::string what = first_line(e.what());
    if (what.rfind("[json.exception.", 0) == 0) what = what.substr(what.find("] ") + 2);
    if (what.rfind("parse error at ", 0) == 0) what = what.substr(15);
    throw Error(where + ": not valid JSON (truncated or damaged?): " + what);
  }
}

nlohmann::json read_json_file(const std::string& path) {
  AMALGAM_CHECK(std::filesystem::is_regular_file(path), path + ": no such file");
  return parse_json(read_whole_file(path), path);
}

void check_keys(const nlohmann::json& object, const std::vector<std::string>& known,
                const std::string& where) {
  for (const auto& item : object.items())
    if (std::find(known.begin(), known.end(), item.key()) == known.end())
      throw Error(where + ": unknown key \"" + item.key() + "\"" + did_you_mean(item.key(), known) +
                  " (known: " + known_list(known) + ")");
}

std::string json_kind(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "a list";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::boolean:
      return "true/false";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "an integer";
    case nlohmann::json::value_t::number_float:
      return "a number";
    default:
      return "binary data";
  }
}

JsonFields::JsonFields(const nlohmann::json& object, std::string where)
    : object_(object), where_(std::move(where)) {
  AMALGAM_CHECK(object_.is_object(),
                where_ + ": expected a JSON object, got " + json_kind(object_));
}

const nlohmann::json& JsonFields::at(const std::string& key) const {
  if (!has(key)) throw Error(where_ + ": key \"" + key + "\" is missing");
  return object_.at(key);
}

JsonFields JsonFields::object(const std::string& key) const {
  static const nlohmann::json empty = nlohmann::json::object();
  if (!has(key)) return JsonFields(empty, where_ + " \"" + key + "\"");
  const nlohmann::json& value = object_.at(key);
  if (!value.is_object()) throw error(key, "must be an object, got " + json_kind(value));
  return JsonFields(value, where_ + " \"" + key + "\"");
}

Error JsonFields::error(const std::string& key, const std::string& message) const {
  return Error(where_ + ": \"" + key + "\" " + message);
}

namespace detail {

std::string failing_path(const nlohmann::json& value, const nlohmann::json& reference,
                         const std::function<void(const nlohmann::json&)>& read) {
  if (!value.is_object()) return "";
  const nlohmann::json flat = value.flatten();  // kept alive: items() only refers to it
  for (const auto& item : flat.items()) {
    const nlohmann::json::json_pointer pointer(item.key());
    nlohmann::json probe = reference;
    try {
      // value.at, not the flat leaf: flatten() turns an empty list or object into null.
      probe[pointer] = value.at(pointer);
      read(probe);
    } catch (const std::exception&) {
      return dotted(item.key());
    }
  }
  return "";
}

void check_number_range(const nlohmann::json& value, const std::string& where,
                        const std::string& path) {
  if (value.is_number_float() && !(std::abs(value.get<double>()) < 9.2e18))
    throw Error(where + ": \"" + path + "\" is out of range");
  if (value.is_object())
    for (const auto& item : value.items())
      check_number_range(item.value(), where, joined(path, item.key()));
  if (value.is_array())
    for (size_t i = 0; i < value.size(); ++i)
      check_number_range(value[i], where, joined(path, std::to_string(i)));
}

void check_like(const nlohmann::json& value, const nlohmann::json& reference,
                const std::string& where, const std::string& path) {
  if (reference.is_null()) return;
  const auto wrong = [&] {
    return Error(where + ": \"" + path + "\" must be " + json_kind(reference) + ", got " +
                 json_kind(value));
  };
  const bool same = reference.is_number_integer() ? value.is_number_integer()
                    : reference.is_number()       ? value.is_number()
                                                  : value.type() == reference.type();
  if (!same) {
    if (path.empty())
      throw Error(where + ": expected " + json_kind(reference) + ", got " + json_kind(value));
    throw wrong();
  }
  if (reference.is_object()) {
    std::vector<std::string> known;
    for (const auto& item : reference.items()) known.push_back(item.key());
    check_keys(value, known, path.empty() ? where : where + " \"" + path + "\"");
    for (const auto& item : value.items())
      check_like(item.value(), reference.at(item.key()), where, joined(path, item.key()));
  } else if (reference.is_array() && !reference.empty()) {
    for (size_t i = 0; i < value.size(); ++i)
      check_like(value[i], reference.front(), where, joined(path, std::to_string(i)));
  }
}

}  // namespace detail
}  // namespace amalgam
