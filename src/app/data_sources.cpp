#include "app/data_sources.h"

#include <torch/torch.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "data/tar_shards.h"

namespace amalgam {
namespace {

ImageFolderOptions geometry_of(const DataSource& source, const InputSpec& input) {
  ImageFolderOptions options;
  options.channels = input.channels;
  options.height = input.height;
  options.width = input.width;
  options.on_bad_image = source.on_bad_image;
  return options;
}

// "3 folder(s)", "100 tar shard(s)", "2 folder(s) and 4 tar shard(s)".
std::string sources_text(const DataSource& source) {
  const auto shards = std::count_if(source.dirs.begin(), source.dirs.end(), is_tar_shard_name);
  const auto folders = static_cast<int64_t>(source.dirs.size()) - shards;
  const std::string shard_text = std::to_string(shards) + " tar shard(s)";
  if (shards == 0) return std::to_string(folders) + " folder(s)";
  return folders == 0 ? shard_text : std::to_string(folders) + " folder(s) and " + shard_text;
}

void require_folders(const DataSource& source) {
  AMALGAM_CHECK(!source.dirs.empty(), "--data: no folder given");
  for (const auto& dir : source.dirs)
    AMALGAM_CHECK(!is_idx_folder(dir),
                  "--data: " + dir + " holds IDX files; give it alone, not with image folders");
}

// The folders' files as an index decoded per batch; --limit keeps the files the in-memory path
// would keep when every file decodes.
TransferSet stream_files(const DataSource& source, std::vector<ImageFile> files,
                         const ImageFolderOptions& geometry) {
  const auto found = static_cast<int64_t>(files.size());
  ImageIndex index;
  for (const int64_t row : subsample_rows(found, source.limit, source.split_seed + 1))
    index.files.push_back(std::move(files[static_cast<size_t>(row)]));
  index.geometry = geometry;
  index.workers = source.workers > 0 ? source.workers : spare_cores();
  log_info("transfer set: " + std::to_string(found) + " images from " + sources_text(source) +
           (static_cast<int64_t>(index.files.size()) < found
                ? "; --limit keeps " + std::to_string(index.files.size())
                : "") +
           "; decoded they would take " +
           std::to_string(decoded_bytes(static_cast<int64_t>(index.files.size()), geometry) >> 20) +
           " MiB, over --image-memory " + std::to_string(source.image_memory_mib) +
           ", so they stream from disk, each batch decoded on " + std::to_string(index.workers) +
           " thread(s) (--workers)");
  return TransferSet(std::move(index));
}

// One line of transfer_index.txt: a file's path, or a shard member as
// "SHARD<TAB>MEMBER<TAB>OFFSET<TAB>SIZE".
ImageFile parse_index_line(const std::string& line, const std::string& path) {
  if (line.find('\t') == std::string::npos) return ImageFile(line);
  std::istringstream fields(line);
  std::string shard, member, offset, size;
  std::getline(fields, shard, '\t');
  std::getline(fields, member, '\t');
  std::getline(fields, offset, '\t');
  std::getline(fields, size, '\t');
  try {
    return ImageFile(shard, member, std::stoll(offset), std::stoll(size));
  } catch (const std::exception&) {
    throw Error(path + ": a damaged line: '" + line + "'");
  }
}

std::string index_line(const ImageFile& file) {
  if (!file.in_shard()) return file.path;
  return file.path + '\t' + file.member + '\t' + std::to_string(file.offset) + '\t' +
         std::to_string(file.size);
}

// A resumed run's streamed set: the files its index lists, in its order (--limit already applied).
TransferSet read_transfer_index(const DataSource& source, const InputSpec& input,
                                const std::string& path) {
  ImageIndex index;
  std::istringstream lines(read_whole_file(path));
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) index.files.push_back(parse_index_line(line, path));
  AMALGAM_CHECK(!index.files.empty(), path + ": lists no image file");
  index.geometry = geometry_of(source, input);
  resolve_geometry(index.files, index.geometry);
  index.workers = source.workers > 0 ? source.workers : spare_cores();
  log_info("transfer set: the " + std::to_string(index.files.size()) + " streamed images " + path +
           " lists, decoded per batch on " + std::to_string(index.workers) + " thread(s)");
  return TransferSet(std::move(index));
}

}  // namespace

void write_transfer_index(const TransferSet& transfer, const std::string& path) {
  if (!transfer.streams()) return;
  std::string text;
  for (const auto& file : transfer.files()) text += index_line(file) + '\n';
  write_text_atomically(path, text);
}

bool DataSource::is_idx() const {
  return dirs.size() == 1 && is_idx_folder(dirs.front());
}

TrainValSplit load_training_split(const DataSource& source) {
  AMALGAM_CHECK(source.limit >= 0, "--limit: must be >= 0 (0 = all images)");
  AMALGAM_CHECK(source.is_idx(), "--data: " + (source.dirs.empty() ? "" : source.dirs.front()) +
                                     " is not a folder of IDX files");
  TrainValSplit data = split_train_val(load_idx_split(source.dirs.front(), "train"),
                                       std::max<int64_t>(source.val_size, 0), source.split_seed);
  data.train = subsample(data.train, source.limit, source.split_seed + 1);
  return data;
}

TransferSet load_transfer_set(const DataSource& source, const InputSpec& input, LabeledImages* val,
                              const std::string& index_file) {
  if (source.is_idx()) {
    TrainValSplit data = load_training_split(source);
    *val = data.val;
    return strip_labels(data.train);
  }
  require_folders(source);
  *val = LabeledImages{};
  if (!index_file.empty() && std::filesystem::exists(index_file))
    return read_transfer_index(source, input, index_file);
  std::vector<ImageFile> files = list_image_roots(source.dirs, source.on_bad_image);
  ImageFolderOptions geometry = geometry_of(source, input);
  resolve_geometry(files, geometry);
  const auto found_files = static_cast<int64_t>(files.size());
  const int64_t kept = source.limit > 0 ? std::min(source.limit, found_files) : found_files;
  const int64_t bytes = decoded_bytes(kept, geometry);
  if (bytes > (source.image_memory_mib << 20))
    return stream_files(source, std::move(files), geometry);
  // The files listed above, read once: a second listing would repeat its warnings.
  at::Tensor images = load_image_files(files, geometry);
  const int64_t found = images.size(0);
  if (source.limit > 0)
    images = subsample({images, at::Tensor()}, source.limit, source.split_seed + 1).images;
  log_info("transfer set: " + std::to_string(found) + " images from " + sources_text(source) +
           (images.size(0) < found ? "; --limit keeps " + std::to_string(images.size(0)) : ""));
  return TransferSet(images);
}

LabeledImages load_scoring_set(const DataSource& source, const std::string& split,
                               const InputSpec& input, const std::vector<TaskSpec>& tasks) {
  if (source.is_idx()) {
    AMALGAM_CHECK(split == "test" || split == "val",
                  "--split: expected test or val, got '" + split + "'");
    return split == "test" ? load_idx_split(source.dirs.front(), "test")
                           : load_training_split(source).val;
  }
  require_folders(source);
  AMALGAM_CHECK(source.dirs.size() == 1, "--data: give one labeled folder to score on");
  const LabeledFolder folder = load_labeled_folder(source.dirs.front(), geometry_of(source, input));
  std::map<std::string, int64_t> id_of;
  std::string known;
  std::map<std::string, std::string> task_of;
  for (const auto& task : tasks)
    for (size_t i = 0; i < task.class_names.size(); ++i) {
      const std::string& name = task.class_names[i];
      AMALGAM_CHECK(!task_of.count(name),
                    source.dirs.front() + ": class '" + name + "' belongs to two tasks (" +
                        task_of[name] + " and " + task.name +
                        "), so a labeled folder cannot tell them apart; rename one teacher's "
                        "classes (PATH:LAYER,class-names=... or \"class_names\" in its sidecar)");
      task_of[name] = task.name;
      id_of[name] = task.classes[i];
      known += (known.empty() ? "" : ", ") + task.class_names[i];
    }
  std::vector<int64_t> folder_ids;
  int64_t matched = 0;
  for (const auto& name : folder.class_names) {
    const auto it = id_of.find(name);
    folder_ids.push_back(it == id_of.end() ? -1 : it->second);
    if (it == id_of.end())
      log_info("scoring: class folder '" + name + "' is no task's class; its images are left out");
    else
      ++matched;
  }
  AMALGAM_CHECK(matched > 0, source.dirs.front() +
                                 ": no class folder is named after a class of the "
                                 "models (" +
                                 known + ")");
  std::vector<int64_t> rows, labels;
  const auto label = folder.data.labels.accessor<int64_t, 1>();
  for (int64_t i = 0; i < folder.data.size(); ++i) {
    const int64_t id = folder_ids[static_cast<size_t>(label[i])];
    if (id < 0) continue;
    rows.push_back(i);
    labels.push_back(id);
  }
  return {folder.data.images.index_select(0, torch::tensor(rows, torch::kInt64)),
          torch::tensor(labels, torch::kInt64)};
}

LabeledFolder load_teaching_folder(const DataSource& source, const ImageFolderOptions& geometry) {
  require_folders(source);
  AMALGAM_CHECK(source.dirs.size() == 1, "--data: give one labeled folder to teach on");
  ImageFolderOptions options = geometry;
  options.on_bad_image = source.on_bad_image;
  return load_labeled_folder(source.dirs.front(), options);
}

std::string default_run_dir(const std::string& command) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &local);
  return "runs/" + command + "-" + stamp;
}

}  // namespace amalgam
