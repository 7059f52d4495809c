// Where a command's images come from: one folder of MNIST-family IDX files (the built-in data),
// or folders of image files (a user's data).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image_folder.h"
#include "data/transfer_set.h"
#include "models/network.h"

namespace amalgam {

/// --image-memory that holds any set in memory (MiB, shifted to bytes without overflow).
constexpr int64_t kUnlimitedImageMemory = INT64_MAX >> 20;

/// The data options every command shares.
struct DataSource {
  std::vector<std::string> dirs{"/usr/share/datasets/fashion-mnist"};  ///< --data (repeatable)
  int64_t val_size = 5000;  ///< IDX: training images held out; folders: -1 = a tenth
  uint64_t split_seed = kDefaultSplitSeed;  ///< seed of the train/validation split
  int64_t limit = 0;                        ///< at most this many training images (0 = all)
  BadImagePolicy on_bad_image = BadImagePolicy::kFail;  ///< --on-bad-image
  /// --image-memory: a folder transfer set decoding to more MiB than this streams from disk.
  /// 2 GiB holds 14,000 images at 3x224x224, or a 32-px set of 680,000, decoded once.
  int64_t image_memory_mib = 2048;
  int workers = 0;  ///< --workers: decode threads of a streamed set (0 = the cores left, >= 1)
  /// Whether the source is one IDX folder (otherwise image folders).
  bool is_idx() const;
};

/// An IDX source's training split, after holding out val_size images, at most `limit` of them.
TrainValSplit load_training_split(const DataSource& source);

/// The transfer set: an IDX source's training split (its validation split goes to `*val`), or
/// every image under the image folders at `input`'s geometry (`*val` left empty): decoded into
/// memory when that fits source.image_memory_mib, otherwise an index of the files streamed.
/// `index_file`, when it names a file (a resumed run's transfer_index.txt), lists a streamed set's
/// files, one per line, and the folders are not scanned again.
TransferSet load_transfer_set(const DataSource& source, const InputSpec& input, LabeledImages* val,
                              const std::string& index_file = "");

/// Writes a streamed set's file list to `path` (one per line), for load_transfer_set on resume;
/// nothing for a set held in memory.
void write_transfer_index(const TransferSet& transfer, const std::string& path);

/// Labeled images to score `tasks` on: an IDX source's "test" or "val" split, or one labeled
/// folder (root/<class>/...) whose class folders are matched to the tasks' class names; labels
/// become the matching classes' ids and images of other classes are left out.
LabeledImages load_scoring_set(const DataSource& source, const std::string& split,
                               const InputSpec& input, const std::vector<TaskSpec>& tasks);

/// A labeled folder for teaching, decoded at the geometry given (0 = as the first image).
LabeledFolder load_teaching_folder(const DataSource& source, const ImageFolderOptions& geometry);

/// "runs/<command>-YYYYmmdd-HHMMSS": where a run goes when --out is not given.
std::string default_run_dir(const std::string& command);

}  // namespace amalgam
