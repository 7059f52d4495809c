// libFuzzer target: a --config file (arguments_with_config, then CLI11's parse of the result)
// for a command with options of every kind the tool has: integer, number, text, repeated text and
// flag. Any input must end in amalgam::Error or a CLI11 parse error, never a crash.
#include <cstdint>
#include <string>
#include <vector>

#include "command_line.h"
#include "core/error.h"
#include "fuzz_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = amalgam_fuzz::write_input("options.json", data, size);
  CLI::App app("fuzz");
  CLI::App* cmd = app.add_subcommand("amalgamate");
  int64_t epochs = 0;
  double lr = 0;
  std::string routing;
  std::vector<std::string> teachers;
  bool flip = false;
  cmd->add_option("--epochs", epochs);
  cmd->add_option("--lr", lr);
  cmd->add_option("--routing", routing)->check(CLI::IsMember({"gate", "none", "concatenated"}));
  cmd->add_option("--teacher", teachers);
  cmd->add_flag("--flip", flip);
  std::vector<std::string> argv_text = {"amalgam", "amalgamate", "--config", path};
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  try {
    std::vector<std::string> args =
        amalgam::arguments_with_config(app, static_cast<int>(argv.size()), argv.data());
    std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
    app.parse(args);
  } catch (const amalgam::Error&) {
  } catch (const CLI::ParseError&) {
  }
  return 0;
}
