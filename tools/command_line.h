// The command line as text, around CLI11's parse: the options of a --config file merged in
// before it; the one-line explanation of a usage error, and the options --resume refuses, after.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "app/commands.h"

namespace amalgam {

/// argv without the program, with the options of `--config FILE` (a JSON object whose keys are
/// options of the command given: "epochs": 3, "teacher": ["a.pt:layer4", "b.pt:features"],
/// "flip": true) appended where the command line does not give them. Every key must be an option
/// of that command and every value of the option's kind; a run's own config.json is named as
/// such. Throws Error naming the file and the key.
std::vector<std::string> arguments_with_config(const CLI::App& app, int argc, char** argv);

/// The one line of a command-line error: the unknown command or option named, with the one meant
/// where a known name is close, or CLI11's own message.
std::string explain_usage_error(const CLI::App& app, const std::vector<std::string>& args,
                                const CLI::ParseError& e);

/// --resume continues a run with the options in its config.json: any other option given to `cmd`
/// would be ignored, so it is refused by name (--threads, --epochs, logging and the ranks'
/// options may change). Throws Error.
void refuse_options_on_resume(const CLI::App& cmd);

/// What `cmd`'s --resume may change, from the options given to it (parsed into `train`).
ResumeOverrides resume_overrides(const CLI::App& cmd, const TrainOptions& train);

}  // namespace amalgam
