#include "app/run_outputs.h"

#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "models/checkpoint.h"

namespace amalgam {
namespace {

// What an amalgamate run writes in its directory: a new run there replaces all of them, so no
// file of an older run (metrics.jsonl is appended to) is mixed into the new one.
const char* const kRunFiles[] = {
    "config.json",      "checkpoint.pt",      "metrics.jsonl",  "student.pt",  "student.json",
    "student.block.pt", "student.block.json", "embedding.json", "report.html", kTransferIndexFile};

}  // namespace

bool holds_a_run(const std::string& dir) {
  for (const char* name : kRunFiles)
    if (std::filesystem::exists(std::filesystem::path(dir) / name)) return true;
  return false;
}

void remove_old_run(const std::string& dir) {
  for (const char* name : kRunFiles) std::filesystem::remove(std::filesystem::path(dir) / name);
}

void check_export_target(const std::string& option, const std::string& path,
                         const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  AMALGAM_CHECK(fs::path(path).extension() == ".pt", option + ": '" + path + "' should end in .pt");
  const fs::path target = fs::weakly_canonical(path);
  const fs::path target_sidecar = fs::weakly_canonical(sidecar_path(path));
  for (const std::string& model : inputs) {
    for (const std::string& input : {model, sidecar_path(model)}) {
      if (!fs::exists(input)) continue;
      const fs::path canonical = fs::weakly_canonical(input);
      AMALGAM_CHECK(
          canonical != target && canonical != target_sidecar,
          option + ": " + path + " would overwrite " + input + ", an input; choose another path");
    }
  }
  const fs::path folder = target.parent_path();
  AMALGAM_CHECK(!fs::exists(folder) || fs::is_directory(folder),
                option + ": " + folder.string() + " is not a folder");
  ensure_directory(folder.string());
}

}  // namespace amalgam
