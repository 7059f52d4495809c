// The command line as text, around CLI11's parse: the options of a --config file merged in
// before it; the one-line explanation of a usage error, and the options --resume refuses, after.
#include "command_line.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <set>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/names.h"

namespace amalgam {
namespace {

// The command called `name`, or nullptr when there is none.
const CLI::App* named_command(const CLI::App& app, const std::string& name) {
  for (const CLI::App* c : app.get_subcommands(std::function<bool(const CLI::App*)>()))
    if (c->get_name() == name) return c;
  return nullptr;
}

std::vector<std::string> option_names(const CLI::App& cmd) {
  std::vector<std::string> names;
  for (const CLI::Option* option : cmd.get_options())
    for (const std::string& name : option->get_lnames()) names.push_back("--" + name);
  return names;
}

}  // namespace

std::vector<std::string> arguments_with_config(const CLI::App& app, int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto it = std::find(args.begin(), args.end(), "--config");
  if (it == args.end()) return args;
  AMALGAM_CHECK(it + 1 != args.end(), "--config: needs a JSON file");
  const std::string path = *(it + 1);
  args.erase(it, it + 2);
  const nlohmann::json config = parse_json(read_whole_file(path), path);
  AMALGAM_CHECK(config.is_object(), path + ": expected a JSON object of option names and values");
  AMALGAM_CHECK(!(config.contains("command") && config.contains("networks")),
                path + ": the record of a run, not a file of options; continue that run with " +
                    "--resume " + std::filesystem::path(path).parent_path().string());
  const CLI::App* cmd = nullptr;
  for (const std::string& a : args)
    if (!cmd) cmd = named_command(app, a);
  AMALGAM_CHECK(cmd != nullptr, "--config: give the command (amalgamate, eval, ...) before it");
  std::vector<std::string> keys;
  for (const CLI::Option* option : cmd->get_options())
    for (const std::string& name : option->get_lnames()) keys.push_back(name);
  std::set<std::string> given;
  for (const auto& a : args)
    if (a.rfind("--", 0) == 0) given.insert(a.substr(0, a.find('=')));
  for (const auto& item : config.items()) {
    // Named copies, not a structured binding: the lambda below captures them (clang 14 cannot).
    const std::string key = item.key();
    const nlohmann::json& value = item.value();
    std::string name = key;
    std::replace(name.begin(), name.end(), '_', '-');
    const CLI::Option* option = std::find(keys.begin(), keys.end(), name) == keys.end() ||
                                        name == "config" || name == "help"
                                    ? nullptr
                                    : cmd->get_option_no_throw("--" + name);
    AMALGAM_CHECK(option != nullptr, path + ": unknown key \"" + key + "\" (not an option of " +
                                         cmd->get_name() + ")" + did_you_mean(name, keys));
    const bool flag = option->get_expected_max() == 0;  // CLI11 flags take no value
    AMALGAM_CHECK(!flag || value.is_boolean(), path + ": \"" + key + "\" must be true or false");
    AMALGAM_CHECK(flag || value.is_string() || value.is_number() || value.is_array(),
                  path + ": \"" + key + "\" must be a string, a number or a list of them");
    if (given.count("--" + name)) continue;
    const auto text = [&](const nlohmann::json& v) {
      AMALGAM_CHECK(v.is_string() || v.is_number(),
                    path + ": \"" + key + "\" must be a string, a number or a list of them");
      return v.is_string() ? v.get<std::string>() : v.dump();
    };
    if (flag) {
      if (value.get<bool>()) args.push_back("--" + name);
    } else if (value.is_array()) {
      for (const auto& v : value) {
        args.push_back("--" + name);
        args.push_back(text(v));
      }
    } else {
      args.push_back("--" + name);
      args.push_back(text(value));
    }
  }
  return args;
}

std::string explain_usage_error(const CLI::App& app, const std::vector<std::string>& args,
                                const CLI::ParseError& e) {
  std::vector<std::string> commands;
  for (const CLI::App* cmd : app.get_subcommands({})) commands.push_back(cmd->get_name());
  std::string all;
  for (const std::string& name : commands) all += (all.empty() ? "" : ", ") + name;
  const auto first = std::find_if(args.begin(), args.end(),
                                  [](const std::string& a) { return a.rfind('-', 0) != 0; });
  if (first == args.end()) return "a command is required: " + all;
  const CLI::App* cmd = named_command(app, *first);
  if (!cmd)
    return "'" + *first + "' is not a command" + did_you_mean(*first, commands) +
           " (commands: " + all + ")";
  std::vector<std::string> known = option_names(*cmd);
  for (const std::string& name : option_names(app)) known.push_back(name);
  for (const std::string& arg : args) {
    if (arg.rfind("--", 0) != 0) continue;
    const std::string name = arg.substr(0, arg.find('='));
    if (std::find(known.begin(), known.end(), name) == known.end())
      return name + ": not an option of " + cmd->get_name() + did_you_mean(name, known) +
             " (amalgam " + cmd->get_name() + " --help lists them)";
  }
  return first_line(e.what()) + " (see --help)";
}

void refuse_options_on_resume(const CLI::App& cmd) {
  static const std::set<std::string> allowed = {
      "--resume",   "--threads", "--nproc",        "--rank",       "--world-size",
      "--dist-url", "--epochs",  "--dist-timeout", "--dist-iface", "--quiet",
      "--verbose",  "--config",  "--help",         "--lr",         "--max-loss-growth"};
  for (const CLI::Option* option : cmd.get_options()) {
    const std::string name = option->get_name(false, false);
    if (option->count() == 0 || allowed.count(name)) continue;
    const std::string hint =
        name == "--export" ? "; export a finished run with: amalgam export RUN_DIR --out FILE.pt"
                           : "; start a new run with --out to change them";
    throw Error(name + ": not applied on --resume (the run continues with the options in its " +
                "config.json)" + hint);
  }
}

ResumeOverrides resume_overrides(const CLI::App& cmd, const TrainOptions& train) {
  ResumeOverrides overrides;
  overrides.threads = train.threads;
  if (cmd.count("--epochs") > 0) overrides.epochs = train.epochs;
  if (cmd.count("--lr") > 0) overrides.lr = train.lr;
  if (cmd.count("--max-loss-growth") > 0) overrides.max_loss_growth = train.max_loss_growth;
  return overrides;
}

}  // namespace amalgam
