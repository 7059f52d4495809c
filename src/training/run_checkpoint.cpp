#include "training/run_checkpoint.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "distributed/process_group.h"
#include "training/options_json.h"

namespace amalgam {
namespace {

constexpr const char* kFormat = "amalgam-run-checkpoint";

// LibTorch's archive reader crashes on some damaged bytes (SIGSEGV, std::out_of_range; found by
// fuzz_checkpoint), so the archive is sealed behind a header holding its length and CRC-32,
// checked before LibTorch reads a byte: magic, then little-endian uint64 length, uint32 CRC.
constexpr char kMagic[] = "amalgam run checkpoint 2\n";
constexpr size_t kMagicSize = sizeof kMagic - 1;
constexpr size_t kHeaderSize = kMagicSize + 8 + 4;

void put_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint64_t get_le(const std::string& in, size_t at, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i)
    value |= uint64_t{static_cast<unsigned char>(in[at + i])} << (8 * i);
  return value;
}

}  // namespace

std::string seal_run_checkpoint(const std::string& archive) {
  std::string out(kMagic, kMagicSize);
  put_le(out, archive.size(), 8);
  put_le(out, crc32_of(archive.data(), archive.size()), 4);
  return out + archive;
}

namespace {

// The archive inside `bytes`; throws Error naming `path` unless header, length and CRC agree.
std::string unsealed(const std::string& bytes, const std::string& path) {
  AMALGAM_CHECK(bytes.size() >= kHeaderSize && bytes.compare(0, kMagicSize, kMagic) == 0,
                path + ": not an amalgam run checkpoint (or one of an older amalgam)");
  const uint64_t size = get_le(bytes, kMagicSize, 8);
  AMALGAM_CHECK(size == bytes.size() - kHeaderSize, path +
                                                        ": truncated or damaged run checkpoint (" +
                                                        std::to_string(bytes.size() - kHeaderSize) +
                                                        " of " + std::to_string(size) + " bytes)");
  const std::string archive = bytes.substr(kHeaderSize);
  AMALGAM_CHECK(get_le(bytes, kMagicSize + 8, 4) == crc32_of(archive.data(), archive.size()),
                path + ": damaged run checkpoint (checksum mismatch)");
  return archive;
}

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

// The progress record of a checkpoint, every key and range checked: a damaged one must stop
// the resume with its name, not resume at a wrong step.
RunProgress read_progress(const nlohmann::json& meta, const std::string& where) {
  const JsonFields fields(meta, where);
  fields.only({"epoch", "step", "global_step", "partial", "seen", "history", "reference_loss",
               "fingerprint"});
  RunProgress progress;
  progress.epoch = fields.get<int64_t>("epoch");
  progress.step = fields.get<int64_t>("step");
  progress.global_step = fields.get<int64_t>("global_step");
  progress.seen = fields.get<int64_t>("seen");
  for (const char* key : {"epoch", "step", "global_step", "seen"})
    if (fields.get<int64_t>(key) < 0) throw fields.error(key, "must not be negative");
  if (progress.step > progress.global_step) throw fields.error("step", "exceeds \"global_step\"");
  const nlohmann::json& partial = fields.at("partial");
  if (!partial.is_object())
    throw fields.error("partial", "must be an object, got " + json_kind(partial));
  for (const auto& [term, value] : partial.items())
    if (!value.is_number() || !std::isfinite(value.get<double>()))
      throw fields.error("partial", "holds \"" + term + "\", not a finite number");
  progress.partial = partial.get<LossValues>();
  progress.history =
      read_struct<std::vector<EpochStats>>(fields.at("history"), where + " \"history\"");
  if (meta.contains("reference_loss")) {  // checkpoints before the divergence guard lack it
    progress.reference_loss = fields.get<double>("reference_loss");
    if (!std::isfinite(progress.reference_loss) || progress.reference_loss < 0)
      throw fields.error("reference_loss", "must be a finite number >= 0");
  }
  return progress;
}

// The first key where the fingerprint a checkpoint recorded and this run's differ ("" = none).
// Fields resumable today, and keys a checkpoint of an older amalgam did not record, are skipped.
std::string fingerprint_change(nlohmann::json recorded, const nlohmann::json& current) {
  if (!recorded.is_object() || !current.is_object()) return "fingerprint";
  // An older amalgam recorded the objective in its flat form, and training options without the
  // ones added since (their defaults): both compared as today's.
  for (const char* key : {"objective", "train"}) {
    if (!recorded.contains(key)) continue;
    try {
      recorded[key] = std::string(key) == "objective"
                          ? nlohmann::json(recorded.at(key).get<ObjectiveConfig>())
                          : nlohmann::json(recorded.at(key).get<TrainOptions>());
    } catch (const std::exception&) {
      return key;
    }
  }
  for (const auto& field : resumable_fields()) {
    const nlohmann::json::json_pointer pointer(field);
    if (recorded.contains(pointer)) recorded[pointer.parent_pointer()].erase(pointer.back());
  }
  for (const auto& [key, value] : current.items())
    if (recorded.contains(key) && recorded.at(key) != value) return key;
  for (const auto& [key, value] : recorded.items())
    if (!current.contains(key)) return key;
  return "";
}

}  // namespace

void save_run_checkpoint(const std::string& path, const RunModules& modules,
                         const RunProgress& progress, const nlohmann::json& fingerprint) {
  const nlohmann::json meta = {{"epoch", progress.epoch},
                               {"step", progress.step},
                               {"global_step", progress.global_step},
                               {"partial", progress.partial},
                               {"seen", progress.seen},
                               {"history", progress.history},
                               {"reference_loss", progress.reference_loss},
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
  write_bytes_atomically(path, seal_run_checkpoint(bytes.str()));
}

RunProgress load_run_checkpoint(const std::string& path, const RunModules& modules,
                                const nlohmann::json& fingerprint) {
  AMALGAM_CHECK(std::filesystem::is_regular_file(path), path + ": no run checkpoint here");
  return load_run_checkpoint_bytes(read_whole_file(path), path, modules, fingerprint);
}

RunProgress load_run_checkpoint_bytes(const std::string& bytes, const std::string& path,
                                      const RunModules& modules,
                                      const nlohmann::json& fingerprint) {
  const std::string archive = unsealed(bytes, path);
  torch::serialize::InputArchive root;
  nlohmann::json meta;
  try {
    root.load_from(archive.data(), archive.size());
    c10::IValue format, progress;
    AMALGAM_CHECK(
        root.try_read("format", format) && format.isString() && format.toStringRef() == kFormat,
        path + ": not an amalgam run checkpoint");
    root.read("progress", progress);
    AMALGAM_CHECK(progress.isString(), path + ": damaged run checkpoint (no progress record)");
    meta = parse_json(progress.toStringRef(), path + " (progress record)");
  } catch (const c10::Error& e) {
    throw Error(path + ": not an amalgam run checkpoint (" +
                first_line(e.what_without_backtrace()) + ")");
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // LibTorch's unpickler throws std::out_of_range too
    throw Error(path + ": not an amalgam run checkpoint (" + first_line(e.what()) + ")");
  }
  const RunProgress progress = read_progress(meta, path + " (progress record)");
  const std::string change =
      fingerprint_change(meta.value("fingerprint", nlohmann::json()), fingerprint);
  AMALGAM_CHECK(change != "teacher_checksums",
                path +
                    ": a teacher file has changed since the run began (its checksum differs); "
                    "--resume cannot continue it: put the run's own teacher files back, or "
                    "start a new run");
  AMALGAM_CHECK(change.empty(),
                path + ": written by a run with other options, teachers or data (\"" + change +
                    "\" differs); --resume continues a run only with its own config.json");
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
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(path + ": damaged run checkpoint (" + first_line(e.what()) + ")");
  }
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
