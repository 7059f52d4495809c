#include "teachers/teacher.h"

#include <cstdio>

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/fault_injection.h"
#include "core/log.h"
#include "data/dataset.h"
#include "models/aoti_network.h"
#include "models/checkpoint.h"
#include "models/torchscript_network.h"
#include "models/zoo.h"

namespace amalgam {
namespace {

// Two different images in [0,1] of `input`'s geometry, made without touching the random
// generator runs are seeded by.
at::Tensor probe_images(const InputSpec& input, c10::Device device) {
  const int64_t pixels = input.channels * input.height * input.width;
  const at::Tensor ramp = torch::arange(2 * pixels, torch::TensorOptions().device(device));
  return (ramp * 0.37).sin().mul(0.5).add(0.5).view({2, input.channels, input.height, input.width});
}

// A teacher reading more than 64x64 pixels runs in channels-last (NHWC) layout, weights and
// input: its convolutions take oneDNN's NHWC path, 1.23x faster for a TorchScript ResNet-18 at
// 224 px, batch 64, 2 cores, FP32 (2x under bf16 autocast). A frozen teacher only infers, so the
// layout changes its outputs by a rounding; at the demo's 28 px it stays as it was. Not for an
// AOTInductor package (its wrapper makes the input contiguous again: two copies for nothing),
// nor for a network whose forward fails or answers otherwise in it (a traced x.view(B, -1) on a
// channels-last map throws): those keep their weights as they were.
bool settle_channels_last(NetworkImpl& network) {
  if (network.input().height * network.input().width <= 64 * 64) return false;
  if (dynamic_cast<const AotiNetworkImpl*>(&network) != nullptr) return false;
  const auto parameters = network.parameters();
  const c10::Device device =
      parameters.empty() ? c10::Device(c10::kCPU) : parameters.front().device();
  torch::NoGradGuard no_grad;
  const at::Tensor probe = probe_images(network.input(), device);
  const at::Tensor want = network.forward(probe).logits;
  to_channels_last(network);
  try {
    const at::Tensor got = network.forward(probe.contiguous(at::MemoryFormat::ChannelsLast)).logits;
    const double scale = 1e-3 * (1.0 + want.abs().max().item<double>());
    if (got.sizes() == want.sizes() && (got - want).abs().max().item<double>() <= scale)
      return true;
  } catch (const std::exception&) {
  }
  to_memory_format(network, at::MemoryFormat::Contiguous);
  return false;
}

}  // namespace

Teacher make_teacher(Network network, TaskSpec task) {
  freeze(*network);
  Teacher teacher;
  teacher.channels_last = settle_channels_last(*network);
  teacher.network = std::move(network);
  teacher.task = std::move(task);
  teacher.feature_shape = feature_shape(*teacher.network);
  return teacher;
}

void save_teacher(const torch::nn::Module& network, const ModelSpec& spec, const TaskSpec& task,
                  const std::string& path, const nlohmann::json& extra) {
  nlohmann::json meta = extra;
  meta["role"] = "teacher";
  meta["model"] = spec;
  meta["task"] = task;
  save_network(network, path, meta);
}

namespace {

// A user's file as a network: a TorchScript file tapped at :LAYER, or an AOTInductor package
// whose outputs are (features, logits) or logits alone.
Network load_user_network(const ModelRef& ref, const FileConventions& conv, c10::Device device,
                          TeacherUse use) {
  if (is_aoti_package(ref.path)) {
    AMALGAM_CHECK(ref.layer.empty(),
                  ref.path + ": an AOTInductor package has no layers to tap; drop ':" + ref.layer +
                      "' (its features are its first output, see amalgam inspect)");
    const FeatureLayout layout = conv.layout.empty()
                                     ? FeatureLayout::kAuto
                                     : parse_feature_layout(conv.layout, sidecar_path(ref.path));
    return load_aoti_network(ref.path, conv.input, layout, device);
  }
  AMALGAM_CHECK(!ref.layer.empty() || use == TeacherUse::kLogitsOnly,
                ref.path +
                    ": a TorchScript teacher needs :LAYER, the submodule whose output is its "
                    "feature map (amalgam inspect " +
                    ref.path + " lists them)");
  return load_torchscript_network(ref.path, layer_with_layout(ref.layer, conv), conv.input, device);
}

Teacher load_user_teacher(const ModelRef& ref, c10::Device device,
                          const InputConventions& conventions, TeacherUse use) {
  const FileConventions conv = resolve_conventions(ref, conventions);
  Network network = load_user_network(ref, conv, device, use);
  freeze(*network);
  int64_t outputs = 0;
  const std::string traced_in_train_mode =
      ref.path +
      ": it answers in train mode (BatchNorm over the batch, or dropout) although amalgam set it "
      "to eval mode: torch.jit.trace and torch.export record the mode they ran in; call "
      "model.eval() before tracing or exporting and save it again";
  try {
    torch::NoGradGuard no_grad;
    const at::Tensor two = probe_images(conv.input, device);
    const ModelOutput both = network->forward(two);
    AMALGAM_CHECK(both.features.defined() || use == TeacherUse::kLogitsOnly,
                  ref.path +
                      ": the package returns logits only; amalgamation needs (features, logits) "
                      "from the exported module's forward");
    const at::Tensor pair = both.logits;
    outputs = pair.size(1);
    // A frozen teacher answers each image alone, the same every time.
    const at::Tensor alone = network->forward(two.slice(0, 0, 1)).logits;
    const double scale = 1e-3 * (1.0 + pair.abs().max().item<double>());
    AMALGAM_CHECK((alone[0] - pair[0]).abs().max().item<double>() <= scale &&
                      (network->forward(two).logits - pair).abs().max().item<double>() <= scale,
                  traced_in_train_mode);
  } catch (const Error&) {
    throw;  // already names the file (e.g. a feature layout that cannot be read)
  } catch (const std::exception& e) {  // LibTorch's errors and the TorchScript interpreter's
    const std::string what = first_line(e.what());
    AMALGAM_CHECK(std::string(e.what()).find("more than 1 value per channel when training") ==
                      std::string::npos,
                  traced_in_train_mode);
    throw Error(ref.path + ": forward fails on a " + std::to_string(conv.input.channels) + "x" +
                std::to_string(conv.input.height) + "x" + std::to_string(conv.input.width) +
                " input (check --input-size and --channels): " + what);
  }
  TaskSpec task;
  task.name = conv.task.empty() ? std::filesystem::path(ref.path).stem().string() : conv.task;
  for (int64_t i = 0; i < outputs; ++i) task.classes.push_back(i);
  task.class_names = conv.class_names;
  AMALGAM_CHECK(
      task.class_names.empty() || task.size() == static_cast<int64_t>(task.class_names.size()),
      (ref.class_names.empty() ? sidecar_path(ref.path) : ref.path + ",class-names") + ": " +
          std::to_string(task.class_names.size()) + " class names but the model has " +
          std::to_string(outputs) + " outputs");
  if (task.class_names.empty())
    for (int64_t i = 0; i < outputs; ++i)
      task.class_names.push_back(task.name + ":" + std::to_string(i));
  Teacher teacher = make_teacher(network, std::move(task));
  teacher.path = ref.layer.empty() ? ref.path : ref.path + ":" + ref.layer;
  teacher.file = ref.path;
  return teacher;
}

}  // namespace

Teacher load_teacher(const std::string& text, c10::Device device,
                     const InputConventions& conventions, TeacherUse use) {
  const ModelRef ref = parse_model_ref(text);
  AMALGAM_CHECK(std::filesystem::is_regular_file(ref.path), ref.path + ": no such model file");
  if (sidecar_format(ref.path) != "amalgam-network") {
    AMALGAM_CHECK(is_torchscript_file(ref.path),
                  ref.path + ": neither a teacher written by amalgam teach (its sidecar " +
                      sidecar_path(ref.path) +
                      " is missing) nor a TorchScript file or AOTInductor package");
    return load_user_teacher(ref, device, conventions, use);
  }
  AMALGAM_CHECK(ref.layer.empty(), ref.path +
                                       ": written by amalgam teach, its feature map is its last "
                                       "stage; drop ':" +
                                       ref.layer + "'");
  AMALGAM_CHECK(!ref.has_options(),
                text + ": written by amalgam teach, its conventions and classes are in " +
                    sidecar_path(ref.path) + "; drop the options after ','");
  const std::string& path = ref.path;
  SavedNetwork saved = load_network(path);
  AMALGAM_CHECK(
      saved.meta.contains("task"),
      sidecar_path(path) + ": no \"task\" entry; is this a teacher written by amalgam teach?");
  TaskSpec task;
  try {
    task = saved.meta.at("task").get<TaskSpec>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(sidecar_path(path) + ": \"task\": " + first_line(e.what()));
  }
  // load_network has read "model" as a ModelSpec already.
  const int64_t logits = saved.meta.at("model").get<ModelSpec>().num_classes;
  AMALGAM_CHECK(logits == task.size(), path + ": the network has " + std::to_string(logits) +
                                           " outputs but its task '" + task.name + "' has " +
                                           std::to_string(task.size()) + " classes");
  saved.network->to(device);
  Teacher teacher = make_teacher(saved.network, std::move(task));
  teacher.path = path;
  teacher.file = path;
  return teacher;
}

at::Tensor pad_rows(const at::Tensor& batch, int64_t rows) {
  const int64_t have = batch.size(0);
  if (have >= rows || have == 0) return batch;
  return torch::cat({batch, batch.slice(0, have - 1, have).expand({rows - have, -1, -1, -1})}, 0);
}

std::vector<ModelOutput> teacher_outputs(const std::vector<Teacher>& teachers,
                                         const at::Tensor& images) {
  torch::NoGradGuard no_grad;
  std::vector<ModelOutput> outputs;
  outputs.reserve(teachers.size());
  for (const auto& teacher : teachers) {
    outputs.push_back(teacher.network->forward(
        teacher.channels_last ? images.contiguous(at::MemoryFormat::ChannelsLast) : images));
    // A teacher that answers NaN or Inf (a broken export, a wrong normalisation far outside its
    // range) would poison every loss term: refused here, where its outputs are taken, by name.
    const ModelOutput& out = outputs.back();
    AMALGAM_CHECK(torch::isfinite(out.logits).all().item<bool>() &&
                      (!out.features.defined() || torch::isfinite(out.features).all().item<bool>()),
                  "--teacher: " + (teacher.path.empty() ? teacher.task.name : teacher.path) +
                      " gives non-finite outputs (NaN or Inf) on the transfer images; check the "
                      "file and its input conventions (--mean, --std, --input-size)");
  }
  return outputs;
}

std::vector<ModelOutput> TeacherOutputCache::gather(const at::Tensor& indices,
                                                    c10::Device device) const {
  std::vector<ModelOutput> result;
  for (const auto& o : outputs)
    result.push_back({o.features.index_select(0, indices).to(device, torch::kFloat32),
                      o.logits.index_select(0, indices).to(device, torch::kFloat32)});
  return result;
}

int64_t TeacherOutputCache::bytes() const {
  int64_t total = 0;
  for (const auto& o : outputs) total += o.features.nbytes() + o.logits.nbytes();
  return total;
}

int64_t teacher_cache_bytes(const std::vector<Teacher>& teachers, int64_t images,
                            Precision precision) {
  const int64_t feature_bytes = precision == Precision::kBf16 ? 2 : sizeof(float);
  int64_t per_image = 0;
  for (const auto& t : teachers)
    per_image += t.feature_shape[0] * t.feature_shape[1] * t.feature_shape[2] * feature_bytes +
                 t.task.size() * static_cast<int64_t>(sizeof(float));
  return per_image * images;
}

TeacherOutputCache cache_teacher_outputs(const std::vector<Teacher>& teachers,
                                         const at::Tensor& images, int64_t batch_size,
                                         c10::Device device, Precision precision) {
  AMALGAM_CHECK(batch_size > 0, "teacher cache: batch size must be > 0");
  const auto kept = precision == Precision::kBf16 ? torch::kBFloat16 : torch::kFloat32;
  std::vector<std::vector<at::Tensor>> features(teachers.size()), logits(teachers.size());
  for (int64_t begin = 0; begin < images.size(0); begin += batch_size) {
    if (begin > 0 && begin - batch_size < images.size(0) / 2 && begin >= images.size(0) / 2)
      fault_point(kFaultTeacherCache);  // tests: a signal half-way through the cache
    const at::Tensor chunk = images.slice(0, begin, begin + batch_size);
    const int64_t rows = chunk.size(0);
    std::vector<ModelOutput> outputs;
    {
      AutocastGuard autocast(precision, device);
      outputs = teacher_outputs(teachers, to_network_input(pad_rows(chunk, batch_size), device));
    }
    for (size_t i = 0; i < teachers.size(); ++i) {
      features[i].push_back(outputs[i].features.slice(0, 0, rows).to(torch::kCPU, kept));
      logits[i].push_back(outputs[i].logits.slice(0, 0, rows).to(torch::kCPU, torch::kFloat32));
    }
  }
  TeacherOutputCache cache;
  for (size_t i = 0; i < teachers.size(); ++i)
    cache.outputs.push_back({torch::cat(features[i], 0), torch::cat(logits[i], 0)});
  return cache;
}

std::vector<Teacher> load_teachers(const std::vector<std::string>& refs, c10::Device device,
                                   const InputConventions& conventions, TeacherUse use) {
  std::vector<Teacher> teachers;
  for (const auto& ref : refs) teachers.push_back(load_teacher(ref, device, conventions, use));
  const auto is_user_file = [](const Teacher& t) {
    return dynamic_cast<TorchScriptNetworkImpl*>(t.network.get()) != nullptr ||
           dynamic_cast<AotiNetworkImpl*>(t.network.get()) != nullptr;
  };
  // A user's teacher numbers its classes 0..k-1: give them ids no other teacher uses.
  std::set<int64_t> used;
  std::set<std::string> names;
  for (const auto& t : teachers) {
    if (is_user_file(t)) continue;
    used.insert(t.task.classes.begin(), t.task.classes.end());
    names.insert(t.task.name);
  }
  int64_t next = used.empty() ? 0 : *used.rbegin() + 1;
  for (auto& t : teachers) {
    if (!is_user_file(t)) continue;
    for (auto& c : t.task.classes) c = next++;
    std::string name = t.task.name;
    for (int i = 2; names.count(name); ++i) name = t.task.name + std::to_string(i);
    if (name != t.task.name) {
      log_warning(t.path + ": another teacher's task is also called '" + t.task.name +
                  "'; this one is called '" + name + "' (name it with " +
                  parse_model_ref(t.path).path + ":LAYER,task=NAME or \"task\" in its sidecar)");
      for (auto& c : t.task.class_names)  // default names "<task>:<i>" follow the new name
        if (c.rfind(t.task.name + ":", 0) == 0) c = name + c.substr(t.task.name.size());
    }
    t.task.name = name;
    names.insert(name);
  }
  check_teachers_compatible(teachers);
  return teachers;
}

std::string degenerate_teacher_warning(const Teacher& teacher, const at::Tensor& logits) {
  const int64_t classes = logits.size(1);
  const int64_t images = logits.size(0);
  if (classes < 2 || images == 0) return "";
  const auto warning = [&](const std::string& symptom) {
    return "teacher " + teacher.task.name + " (" +
           (teacher.path.empty() ? std::string("in memory") : teacher.path) + ") " + symptom +
           ": check its input normalisation (--mean/--std or its sidecar) and size";
  };
  char text[256];
  // Outputs that barely move away from uniform (a network fed inputs far outside what it was
  // trained on can flatten rather than saturate) say the same.
  const double top = torch::softmax(logits.to(torch::kFloat32), 1).amax(1).mean().item<double>();
  if (top <= 1.0 / static_cast<double>(classes) + 0.05) {
    std::snprintf(text, sizeof text,
                  "gives nearly uniform outputs on the %lld transfer images (mean top probability "
                  "%.3f for %lld classes)",
                  static_cast<long long>(images), top, static_cast<long long>(classes));
    return warning(text);
  }
  const at::Tensor counts = torch::bincount(logits.argmax(1).cpu(), {}, classes);
  const int64_t mode = counts.argmax().item<int64_t>();
  const double share = counts[mode].item<double>() / static_cast<double>(images);
  // Images outside a teacher's task pile into some class too (fmnist-3's 3-class teacher C put
  // 67% of the transfer set in "Bag"); a wrong normalisation puts nearly everything in one.
  if (share <= (classes == 2 ? 0.97 : 0.9)) return "";
  const std::string name = mode < static_cast<int64_t>(teacher.task.class_names.size())
                               ? teacher.task.class_names[mode]
                               : std::to_string(mode);
  std::snprintf(text, sizeof text,
                "for %.0f%% of the %lld transfer images: unless nearly all of them are outside "
                "its task",
                100.0 * share, static_cast<long long>(images));
  return warning("predicts class " + name + " " + text);
}

void check_teachers_compatible(const std::vector<Teacher>& teachers) {
  AMALGAM_CHECK(!teachers.empty(), "--teacher: at least one teacher is needed");
  std::vector<TaskSpec> tasks;
  for (const auto& t : teachers) tasks.push_back(t.task);
  check_disjoint(tasks);
}

InputSpec transfer_input(const std::vector<Teacher>& teachers) {
  AMALGAM_CHECK(!teachers.empty(), "--teacher: at least one teacher is needed");
  InputSpec input = teachers.front().network->input();
  for (const auto& t : teachers) {
    const InputSpec& in = t.network->input();
    if (in.channels > input.channels) {
      input.channels = in.channels;
      input.mean = in.mean;
      input.std = in.std;
    }
    input.height = std::max(input.height, in.height);
    input.width = std::max(input.width, in.width);
  }
  return input;
}

}  // namespace amalgam
