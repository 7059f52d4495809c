#include "teachers/conventions.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/names.h"
#include "models/checkpoint.h"

namespace amalgam {
namespace {

int64_t positive_int(const std::string& text, const std::string& option) {
  try {
    size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size() && v > 0) return v;
  } catch (const std::exception&) {
  }
  throw Error(option + ": '" + text + "' is not a positive integer");
}

std::vector<double> per_channel(std::vector<double> values, int64_t channels,
                                const std::string& what) {
  if (values.size() == 1) values.assign(static_cast<size_t>(channels), values.front());
  AMALGAM_CHECK(static_cast<int64_t>(values.size()) == channels,
                what + ": " + std::to_string(values.size()) + " values for " +
                    std::to_string(channels) + " channels (give one, or one per channel)");
  return values;
}

// The keys a user's sidecar may hold (README, "Your own teachers and images").
const std::vector<std::string>& sidecar_keys() {
  static const std::vector<std::string> keys = {"task",       "class_names", "layout", "channels",
                                                "input_size", "mean",        "std"};
  return keys;
}

// A sidecar amalgam did not write (no "format") is the user's: a misspelt key would otherwise be
// ignored silently, and a number where a list belongs is taken as one value for every channel.
void check_user_sidecar(nlohmann::json& side, const std::string& side_path) {
  if (side.contains("format")) return;  // written by amalgam teach or --export
  for (const auto& item : side.items())
    AMALGAM_CHECK(
        std::find(sidecar_keys().begin(), sidecar_keys().end(), item.key()) != sidecar_keys().end(),
        side_path + ": unknown key \"" + item.key() + "\"" +
            did_you_mean(item.key(), sidecar_keys()) +
            " (known: task, class_names, layout, channels, input_size, mean, std)");
  for (const char* key : {"mean", "std"})
    if (side.contains(key) && side[key].is_number()) side[key] = {side[key]};
}

// The key a json type error concerns: the first of `keys` whose value has the wrong type.
std::string offending_key(const nlohmann::json& side) {
  const auto wrong = [&](const char* key, auto check) {
    return side.contains(key) && !check(side.at(key));
  };
  const auto string = [](const nlohmann::json& v) { return v.is_string(); };
  const auto strings = [](const nlohmann::json& v) {
    if (!v.is_array()) return false;
    for (const auto& e : v)
      if (!e.is_string()) return false;
    return true;
  };
  const auto numbers = [](const nlohmann::json& v) {
    if (!v.is_array()) return false;
    for (const auto& e : v)
      if (!e.is_number()) return false;
    return true;
  };
  const auto integer = [](const nlohmann::json& v) { return v.is_number_integer(); };
  const auto size = [&](const nlohmann::json& v) {
    return v.is_number_integer() ||
           (v.is_array() && v.size() == 2 && integer(v.at(0)) && integer(v.at(1)));
  };
  if (wrong("task", string)) return "\"task\" must be a string";
  if (wrong("layout", string)) return "\"layout\" must be a string";
  if (wrong("class_names", strings)) return "\"class_names\" must be a list of strings";
  if (wrong("channels", integer)) return "\"channels\" must be an integer";
  if (wrong("input_size", size)) return "\"input_size\" must be N or [H, W]";
  if (wrong("mean", numbers)) return "\"mean\" must be a number or a list of numbers";
  if (wrong("std", numbers)) return "\"std\" must be a number or a list of numbers";
  return "";
}

}  // namespace

void parse_input_size(const std::string& text, InputConventions& conventions) {
  const auto x = text.find('x');
  conventions.height = positive_int(text.substr(0, x), "--input-size");
  conventions.width = x == std::string::npos ? conventions.height
                                             : positive_int(text.substr(x + 1), "--input-size");
}

ModelRef parse_model_ref(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon != std::string::npos && colon > 0 && text.find('/', colon) == std::string::npos &&
      std::filesystem::is_regular_file(text.substr(0, colon)))
    return {text.substr(0, colon), text.substr(colon + 1)};
  return {text, ""};
}

FileConventions resolve_conventions(const std::string& path, const InputConventions& options) {
  FileConventions result;
  nlohmann::json side = nlohmann::json::object();
  const std::string side_path = sidecar_path(path);
  if (std::filesystem::is_regular_file(side_path)) {
    side = read_json_file(side_path);
    AMALGAM_CHECK(side.is_object(), side_path + ": expected a JSON object");
    check_user_sidecar(side, side_path);
    // Checked before reading: the JSON library reads 2.5 or 1e300 as an integer without a word
    // (the latter undefined behaviour, found by fuzz_sidecar).
    const std::string wrong = offending_key(side);
    AMALGAM_CHECK(wrong.empty(), side_path + ": " + wrong);
  }
  InputSpec& in = result.input;
  try {
    result.task = side.value("task", std::string());
    result.class_names = side.value("class_names", std::vector<std::string>());
    result.layout = side.value("layout", std::string());
    in.channels = side.value("channels", options.channels > 0 ? options.channels : 3);
    in.height = options.height;
    in.width = options.width;
    if (side.contains("input_size")) {
      const auto& size = side.at("input_size");
      in.height = size.is_array() ? size.at(0).get<int64_t>() : size.get<int64_t>();
      in.width = size.is_array() ? size.at(1).get<int64_t>() : size.get<int64_t>();
    }
    in.mean = side.value("mean", options.mean.empty() ? std::vector<double>{0.0} : options.mean);
    in.std = side.value("std", options.std.empty() ? std::vector<double>{1.0} : options.std);
  } catch (const nlohmann::json::exception& e) {
    const std::string key = offending_key(side);
    const std::string what = e.what();
    throw Error(side_path + ": " + (key.empty() ? "bad entry: " + first_line(what) : key));
  }
  AMALGAM_CHECK(in.channels == 1 || in.channels == 3,
                path + ": channels must be 1 or 3, got " + std::to_string(in.channels));
  AMALGAM_CHECK(in.height > 0 && in.width > 0,
                path + ": input size unknown: give --input-size or \"input_size\" in " + side_path);
  AMALGAM_CHECK(in.height <= 8192 && in.width <= 8192,
                path + ": input size " + std::to_string(in.height) + "x" +
                    std::to_string(in.width) + " is above 8192x8192");
  in.mean = per_channel(in.mean, in.channels, path + ": mean");
  in.std = per_channel(in.std, in.channels, path + ": std");
  for (double s : in.std) AMALGAM_CHECK(s > 0, path + ": std values must be > 0");
  return result;
}

std::string layer_with_layout(const std::string& layer, const FileConventions& conventions) {
  if (layer.empty() || conventions.layout.empty() || layer.find('@') != std::string::npos)
    return layer;
  return layer + "@" + conventions.layout;
}

}  // namespace amalgam
