#include "models/checkpoint.h"

#include <torch/torch.h>

#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "models/torchscript_network.h"
#include "models/zoo.h"

namespace amalgam {
namespace {

constexpr const char* kFormat = "amalgam-network";
constexpr int kVersion = 1;

}  // namespace

std::string sidecar_path(const std::string& weights_path) {
  return std::filesystem::path(weights_path).replace_extension(".json").string();
}

std::string sidecar_format(const std::string& weights_path) {
  const std::string side = sidecar_path(weights_path);
  if (!std::filesystem::is_regular_file(side)) return "";
  // A damaged sidecar is named here: taken for absent, it would make the file look like a
  // TorchScript file without one.
  const nlohmann::json meta = read_json_file(side);
  if (!meta.is_object() || !meta.contains("format") || !meta.at("format").is_string()) return "";
  return meta.at("format").get<std::string>();
}

void save_network(const torch::nn::Module& network, const std::string& path, nlohmann::json meta) {
  meta["format"] = kFormat;
  meta["version"] = kVersion;
  // A user's TorchScript network is saved as TorchScript (architecture and weights together);
  // zoo networks as a weights archive rebuilt from the sidecar's options.
  auto* scripted = dynamic_cast<TorchScriptNetworkImpl*>(const_cast<torch::nn::Module*>(&network));
  // Into memory first: LibTorch's zip writer throws from a destructor on a short write (full
  // disk), which would end the process instead of reporting the error.
  std::ostringstream bytes;
  if (scripted != nullptr) {
    scripted->module().save(bytes);
  } else {
    torch::serialize::OutputArchive archive;
    network.save(archive);
    archive.save_to(bytes);
  }
  // An older model file goes first and the sidecar is written next: the model file appears last,
  // so a present model file is a whole one and never an older one beside a newer sidecar.
  std::filesystem::remove(path);
  write_text_atomically(sidecar_path(path), meta.dump(2) + "\n");
  write_bytes_atomically(path, bytes.str());
}

SavedNetwork load_network(const std::string& path) {
  AMALGAM_CHECK(std::filesystem::is_regular_file(path), path + ": no such model file");
  const std::string side = sidecar_path(path);
  AMALGAM_CHECK(std::filesystem::is_regular_file(side),
                path + ": sidecar " + side + " is missing (models written by amalgam have one)");
  SavedNetwork saved;
  saved.meta = read_json_file(side);
  AMALGAM_CHECK(saved.meta.is_object() && saved.meta.value("format", nlohmann::json()) == kFormat,
                side + ": not an amalgam model sidecar (no \"format\": \"" + kFormat + "\")");
  const ModelSpec spec =
      read_struct<ModelSpec>(JsonFields(saved.meta, side).at("model"), side + " \"model\"");
  if (spec.arch == "torchscript") {
    saved.network = load_torchscript_network(path, spec.layer, spec.input, at::kCPU);
    return saved;
  }
  saved.network = make_network(spec);
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    saved.network->load(archive);
  } catch (const c10::Error& e) {
    throw Error(path + ": weights do not load into a " + spec.arch + ": " +
                first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {  // LibTorch's unpickler throws std::out_of_range too
    throw Error(path + ": damaged weights file: " + first_line(e.what()));
  }
  return saved;
}

}  // namespace amalgam
