// `amalgam inspect` and `amalgam report`: a model file's layers, and a run's HTML report.
#include <cstdio>
#include <filesystem>

#include "app/commands.h"
#include "core/error.h"
#include "models/aoti_network.h"
#include "models/torchscript_network.h"
#include "reporting/report.h"
#include "teachers/conventions.h"

namespace amalgam {

int run_inspect(const InspectCommand& c) {
  // The file's sidecar fills what the options leave open, as when it is amalgamated.
  const ModelRef ref = parse_model_ref(c.model, "inspect");
  AMALGAM_CHECK(std::filesystem::is_regular_file(ref.path), ref.path + ": no such model file");
  const InputSpec input = resolve_conventions(ref, c.data.input).input;
  std::printf("%s", (is_aoti_package(ref.path) ? inspect_aoti(ref.path, input)
                                               : inspect_torchscript(ref.path, input))
                        .c_str());
  return 0;
}

int run_report(const std::string& run_dir) {
  std::printf("report -> %s\n", write_report(run_dir).c_str());
  return 0;
}

}  // namespace amalgam
