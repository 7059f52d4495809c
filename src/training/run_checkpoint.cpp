#include "training/run_checkpoint.h"

#include <torch/torch.h>

#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "distributed/process_group.h"
#include "training/options_json.h"

namespace amalgam {
namespace {

constexpr const char* kFormat = "amalgam-run-checkpoint";

void write_module(torch::serialize::OutputArchive& root, const std::string& key,
                  torch::nn::Module* module) {
  if (module == nullptr) return;
  torch::serialize::OutputArchive archive;
  module->save(archive);
  root.write(key, archive);
}

void read_module(torch::serialize::InputArchive& root, const std::string& key,
                 torch::nn::Module* module) {
  if (module == nullptr) return;
  torch::serialize::InputArchive archive;
  root.read(key, archive);
  module->load(archive);
}

}  // namespace

void save_run_checkpoint(const std::string& path, const RunModules& modules,
                         const RunProgress& progress, const nlohmann::json& fingerprint) {
  const nlohmann::json meta = {
      {"epoch", progress.epoch},     {"step", progress.step}, {"global_step", progress.global_step},
      {"partial", progress.partial}, {"seen", progress.seen}, {"history", progress.history},
      {"fingerprint", fingerprint}};
  torch::serialize::OutputArchive root;
  root.write("format", c10::IValue(std::string(kFormat)));
  root.write("progress", c10::IValue(meta.dump()));
  write_module(root, "student", modules.student);
  write_module(root, "objective", modules.objective);
  torch::serialize::OutputArchive optimizer;
  modules.optimizer->save(optimizer);
  root.write("optimizer", optimizer);
  {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    root.write("cpu_generator", generator.get_state());
  }
  // Into memory first: LibTorch's zip writer throws from a destructor on a short write (full
  // disk), which would end the process instead of reporting the error.
  std::ostringstream bytes;
  root.save_to(bytes);
  write_bytes_atomically(path, bytes.str());
}

RunProgress load_run_checkpoint(const std::string& path, const RunModules& modules,
                                const nlohmann::json& fingerprint) {
  AMALGAM_CHECK(std::filesystem::is_regular_file(path), path + ": no run checkpoint here");
  return load_run_checkpoint_bytes(read_whole_file(path), path, modules, fingerprint);
}

RunProgress load_run_checkpoint_bytes(const std::string& bytes, const std::string& path,
                                      const RunModules& modules,
                                      const nlohmann::json& fingerprint) {
  torch::serialize::InputArchive root;
  nlohmann::json meta;
  try {
    root.load_from(bytes.data(), bytes.size());
    c10::IValue format, progress;
    AMALGAM_CHECK(
        root.try_read("format", format) && format.isString() && format.toStringRef() == kFormat,
        path + ": not an amalgam run checkpoint");
    root.read("progress", progress);
    meta = nlohmann::json::parse(progress.toStringRef());
  } catch (const c10::Error& e) {
    throw Error(path + ": not an amalgam run checkpoint (" +
                first_line(e.what_without_backtrace()) + ")");
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": damaged run checkpoint (" + first_line(e.what()) + ")");
  }
  AMALGAM_CHECK(meta.value("fingerprint", nlohmann::json()) == fingerprint,
                path +
                    ": written by a run with other options, teachers or data; resume it with the "
                    "run's own config.json");
  try {
    read_module(root, "student", modules.student);
    read_module(root, "objective", modules.objective);
    torch::serialize::InputArchive optimizer;
    root.read("optimizer", optimizer);
    modules.optimizer->load(optimizer);
    at::Tensor state;
    root.read("cpu_generator", state);
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(state);
  } catch (const c10::Error& e) {
    throw Error(path + ": run checkpoint does not fit this run (" +
                first_line(e.what_without_backtrace()) + ")");
  }
  RunProgress progress;
  meta.at("epoch").get_to(progress.epoch);
  meta.at("step").get_to(progress.step);
  meta.at("global_step").get_to(progress.global_step);
  meta.at("partial").get_to(progress.partial);
  meta.at("seen").get_to(progress.seen);
  meta.at("history").get_to(progress.history);
  return progress;
}

RunCheckpointer::RunCheckpointer(std::string path, RunModules modules, nlohmann::json fingerprint)
    : path_(std::move(path)), modules_(modules), fingerprint_(std::move(fingerprint)) {}

RunProgress RunCheckpointer::restore(ProcessGroup* group) {
  RunProgress progress;
  if (group != nullptr) {
    // Rank 0 alone keeps the run directory; the others restore from its bytes.
    const std::string bytes =
        group->broadcast_bytes(group->rank() == 0 ? read_whole_file(path_) : "");
    progress = load_run_checkpoint_bytes(bytes, path_, modules_, fingerprint_);
  } else {
    progress = load_run_checkpoint(path_, modules_, fingerprint_);
  }
  saved_step_ = progress.global_step;
  return progress;
}

void RunCheckpointer::save(const RunProgress& progress) {
  if (path_.empty()) return;
  save_run_checkpoint(path_, modules_, progress, fingerprint_);
  saved_step_ = progress.global_step;
}

std::string RunCheckpointer::kept() const {
  if (path_.empty()) return "";
  if (saved_step_ < 0) return "; no checkpoint had been written yet";
  return "; the last good checkpoint, after step " + std::to_string(saved_step_) +
         " of the run, is kept in " + path_;
}

}  // namespace amalgam
