#include "teachers/conventions.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/log.h"
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

// The keys a user's sidecar may hold (docs/user-guide.md, "Your own teachers and images").
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

// A command-line default that the sidecar overrides with another value is named, so a user's
// --mean is never dropped unsaid (issue 16: it was).
void warn_overridden_defaults(const ModelRef& ref, const nlohmann::json& side,
                              const InputConventions& defaults, const InputSpec& in) {
  const auto same = [&](std::vector<double> given, const std::vector<double>& used) {
    if (given.size() == 1) given.assign(used.size(), given.front());
    return given == used;
  };
  const auto warn = [&](const char* key, const char* option) {
    log_warning(ref.path + ": its sidecar " + sidecar_path(ref.path) + " sets \"" + key +
                "\", so " + option +
                " does not apply to it (to override, attach it to this network: " + ref.path +
                ":LAYER," + std::string(option).substr(2) + "=...)");
  };
  const InputConventions& own = ref.input;
  if (own.channels == 0 && defaults.channels > 0 && side.contains("channels") &&
      defaults.channels != in.channels)
    warn("channels", "--channels");
  if (own.height == 0 && defaults.height > 0 && side.contains("input_size") &&
      (defaults.height != in.height || defaults.width != in.width))
    warn("input_size", "--input-size");
  if (own.mean.empty() && !defaults.mean.empty() && side.contains("mean") &&
      !same(defaults.mean, in.mean))
    warn("mean", "--mean");
  if (own.std.empty() && !defaults.std.empty() && side.contains("std") &&
      !same(defaults.std, in.std))
    warn("std", "--std");
}

}  // namespace

void parse_input_size(const std::string& text, InputConventions& conventions,
                      const std::string& option) {
  const auto x = text.find('x');
  conventions.height = positive_int(text.substr(0, x), option);
  conventions.width =
      x == std::string::npos ? conventions.height : positive_int(text.substr(x + 1), option);
}

bool ModelRef::has_options() const {
  return input.channels > 0 || input.height > 0 || !input.mean.empty() || !input.std.empty() ||
         !task.empty() || !class_names.empty();
}

ModelRef parse_model_ref(const std::string& text, const std::string& option) {
  ModelRef ref;
  // "PATH:LAYER" first; a path that itself holds ',' works as long as it names a file.
  std::vector<std::string> parts;
  if (std::filesystem::is_regular_file(text)) {
    parts = {text};
  } else {
    for (size_t begin = 0;;) {
      const size_t comma = text.find(',', begin);
      parts.push_back(text.substr(begin, comma - begin));
      if (comma == std::string::npos) break;
      begin = comma + 1;
    }
  }
  const std::string& head = parts.front();
  const auto colon = head.rfind(':');
  if (colon != std::string::npos && colon > 0 && head.find('/', colon) == std::string::npos &&
      std::filesystem::is_regular_file(head.substr(0, colon))) {
    ref.path = head.substr(0, colon);
    ref.layer = head.substr(colon + 1);
  } else {
    ref.path = head;
  }
  static const std::vector<std::string> keys = {"channels", "input-size", "mean",
                                                "std",      "task",       "class-names"};
  const std::string where = option + " " + text + ": ";
  std::string key;  // the key a bare value continues (mean, std and class-names take lists)
  for (size_t i = 1; i < parts.size(); ++i) {
    const auto eq = parts[i].find('=');
    std::string value = parts[i];
    if (eq != std::string::npos) {
      key = parts[i].substr(0, eq);
      value = parts[i].substr(eq + 1);
      AMALGAM_CHECK(std::find(keys.begin(), keys.end(), key) != keys.end(),
                    where + "unknown option '" + key + "'" + did_you_mean(key, keys) +
                        " (known: channels, input-size, mean, std, task, class-names)");
    } else {
      AMALGAM_CHECK(key == "mean" || key == "std" || key == "class-names",
                    where + "'" + value + "' is not KEY=VALUE");
    }
    AMALGAM_CHECK(!value.empty(), where + key + " has an empty value");
    if (key == "channels") {
      ref.input.channels = positive_int(value, where + "channels");
    } else if (key == "input-size") {
      parse_input_size(value, ref.input, where + "input-size");
    } else if (key == "mean" || key == "std") {
      double number = 0;
      size_t used = 0;
      try {
        number = std::stod(value, &used);
      } catch (const std::exception&) {
      }
      AMALGAM_CHECK(used == value.size() && std::isfinite(number),
                    where + key + ": '" + value + "' is not a number");
      (key == "mean" ? ref.input.mean : ref.input.std).push_back(number);
    } else if (key == "task") {
      ref.task = value;
    } else if (eq != std::string::npos && std::filesystem::is_regular_file(value)) {
      std::istringstream lines(read_whole_file(value));  // class-names=FILE: one name per line
      for (std::string line; std::getline(lines, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!line.empty()) ref.class_names.push_back(line);
      }
      AMALGAM_CHECK(!ref.class_names.empty(), where + "class-names: " + value + " names no class");
    } else {
      ref.class_names.push_back(value);
    }
  }
  return ref;
}

FileConventions resolve_conventions(const ModelRef& ref, const InputConventions& defaults) {
  const std::string& path = ref.path;
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
  const InputConventions& own = ref.input;
  InputSpec& in = result.input;
  try {
    result.task = !ref.task.empty() ? ref.task : side.value("task", std::string());
    result.class_names = !ref.class_names.empty()
                             ? ref.class_names
                             : side.value("class_names", std::vector<std::string>());
    result.layout = side.value("layout", std::string());
    in.channels = own.channels > 0
                      ? own.channels
                      : side.value("channels", defaults.channels > 0 ? defaults.channels : 3);
    in.height = defaults.height;
    in.width = defaults.width;
    if (own.height > 0) {
      in.height = own.height;
      in.width = own.width;
    } else if (side.contains("input_size")) {
      const auto& size = side.at("input_size");
      in.height = size.is_array() ? size.at(0).get<int64_t>() : size.get<int64_t>();
      in.width = size.is_array() ? size.at(1).get<int64_t>() : size.get<int64_t>();
    }
    const auto pick = [&](const std::vector<double>& mine, const char* key,
                          const std::vector<double>& fallback, double otherwise) {
      if (!mine.empty()) return mine;
      return side.value(key, fallback.empty() ? std::vector<double>{otherwise} : fallback);
    };
    in.mean = pick(own.mean, "mean", defaults.mean, 0.0);
    in.std = pick(own.std, "std", defaults.std, 1.0);
  } catch (const nlohmann::json::exception& e) {
    const std::string key = offending_key(side);
    const std::string what = e.what();
    throw Error(side_path + ": " + (key.empty() ? "bad entry: " + first_line(what) : key));
  }
  AMALGAM_CHECK(in.channels == 1 || in.channels == 3,
                path + ": channels must be 1 or 3, got " + std::to_string(in.channels));
  AMALGAM_CHECK(in.height > 0 && in.width > 0,
                path + ": input size unknown: give --input-size, \"input_size\" in " + side_path +
                    " or " + path + ":LAYER,input-size=N");
  AMALGAM_CHECK(in.height <= 8192 && in.width <= 8192,
                path + ": input size " + std::to_string(in.height) + "x" +
                    std::to_string(in.width) + " is above 8192x8192");
  in.mean = per_channel(in.mean, in.channels, path + ": mean");
  in.std = per_channel(in.std, in.channels, path + ": std");
  for (double s : in.std) AMALGAM_CHECK(s > 0, path + ": std values must be > 0");
  warn_overridden_defaults(ref, side, defaults, in);
  return result;
}

std::string layer_with_layout(const std::string& layer, const FileConventions& conventions) {
  if (layer.empty() || conventions.layout.empty() || layer.find('@') != std::string::npos)
    return layer;
  return layer + "@" + conventions.layout;
}

}  // namespace amalgam
