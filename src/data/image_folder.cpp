#include "data/image_folder.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "data/decode_pool.h"
#include "data/image_decode.h"
#include "data/tar_shards.h"

namespace amalgam {
namespace fs = std::filesystem;
namespace {

// Image formats people keep that stb cannot decode: named when skipped, never skipped silently.
bool has_unreadable_image_extension(const fs::path& path) {
  const std::string ext = lower_extension(path.string());
  static const char* unreadable[] = {".webp", ".tif", ".tiff", ".heic", ".avif", ".jxl"};
  return std::any_of(std::begin(unreadable), std::end(unreadable),
                     [&](const char* k) { return ext == k; });
}

}  // namespace

void resolve_geometry(const std::vector<ImageFile>& files, ImageFolderOptions& options) {
  if (options.channels > 0 && options.height > 0 && options.width > 0) return;
  for (const auto& file : files) {
    std::string bytes;
    try {
      bytes = read_image_bytes(file);
    } catch (const Error&) {
      continue;
    }
    int w = 0, h = 0;
    bool grey = false;
    if (!image_header(bytes, &w, &h, &grey)) continue;
    if (options.channels <= 0) options.channels = grey ? 1 : 3;
    if (options.height <= 0) options.height = h;
    if (options.width <= 0) options.width = w;
    return;
  }
  throw Error("image folder: no readable image to take the input size from");
}

namespace {

// Decodes `files` into one uint8 batch; bad files fail or are dropped (per the policy).
at::Tensor decode_all(const std::vector<ImageFile>& files, const ImageFolderOptions& options,
                      std::vector<bool>* kept) {
  const auto n = static_cast<int64_t>(files.size());
  at::Tensor images =
      torch::empty({n, options.channels, options.height, options.width}, torch::kUInt8);
  std::vector<std::string> errors(files.size());
  parallel_decode(n, at::get_num_threads(), [&](int64_t i) {
    try {
      images[i].copy_(
          read_image(files[i], options.channels, options.height, options.width, options.jpeg));
    } catch (const Error& e) {
      errors[i] = e.what();
    }
  });
  kept->assign(files.size(), true);
  std::vector<int64_t> good;
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (errors[i].empty()) {
      good.push_back(i);
      continue;
    }
    AMALGAM_CHECK(options.on_bad_image == BadImagePolicy::kSkip,
                  errors[i] + " (use --on-bad-image skip to go on without it)");
    (*kept)[i] = false;
    if (++bad <= 10) log_info("skipping " + errors[i]);
  }
  if (bad > 10) log_info("skipped " + std::to_string(bad) + " unreadable images in all");
  if (bad == 0) return images;
  return images.index_select(0, torch::tensor(good, torch::kInt64));
}

}  // namespace

BadImagePolicy parse_bad_image_policy(const std::string& text) {
  if (text == "fail") return BadImagePolicy::kFail;
  if (text == "skip") return BadImagePolicy::kSkip;
  throw Error("--on-bad-image: expected skip or fail, got '" + text + "'");
}

std::vector<std::string> list_image_files(const std::string& root) {
  AMALGAM_CHECK(fs::is_directory(root), root + ": no such folder");
  std::vector<std::string> files;
  std::error_code ec;
  // Symlinked folders are followed once each (by canonical path): a link to a parent would
  // otherwise be walked again and again, the same images counted many times.
  std::set<fs::path> visited = {fs::canonical(root, ec)};
  std::set<fs::path> seen_files;
  int64_t duplicates = 0, unreadable = 0, apple_double = 0, shards = 0;
  for (fs::recursive_directory_iterator
           it(root, fs::directory_options::follow_directory_symlink, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec)) {
      if (!visited.insert(fs::canonical(it->path(), ec)).second) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    if (has_unreadable_image_extension(it->path())) ++unreadable;
    if (is_tar_shard_name(it->path().string())) ++shards;
    if (!has_image_extension(it->path().string())) continue;
    if (is_apple_double(it->path().string())) {
      ++apple_double;
      continue;
    }
    if (seen_files.insert(fs::canonical(it->path(), ec)).second)
      files.push_back(it->path().string());
    else
      ++duplicates;
  }
  AMALGAM_CHECK(!ec, root + ": cannot list: " + ec.message());
  if (duplicates > 0)
    log_warning(root + ": " + std::to_string(duplicates) +
                " image file(s) reached twice through symbolic links, counted once");
  if (apple_double > 0)
    log_warning(root + ": skipped " + std::to_string(apple_double) +
                " macOS metadata file(s) named ._*");
  if (unreadable > 0)
    log_warning(root + ": skipped " + std::to_string(unreadable) +
                " webp/tiff/heic/avif/jxl file(s); amalgam reads png, jpg, bmp, gif, tga and "
                "pnm (convert them first)");
  if (shards > 0)
    log_warning(root + ": skipped " + std::to_string(shards) +
                " .tar file(s) in this tree; name tar shards themselves to read them (--data "
                "'DIR/shard-{000000..000009}.tar')");
  std::sort(files.begin(), files.end());
  return files;
}

at::Tensor read_image(const ImageFile& image, int64_t channels, int64_t height, int64_t width,
                      JpegDecoder jpeg, const CropDraw& crop) {
  return decode_image(read_image_bytes(image), image.name(), channels, height, width, jpeg, crop);
}

std::vector<ImageFile> list_image_roots(const std::vector<std::string>& roots,
                                        BadImagePolicy policy) {
  AMALGAM_CHECK(!roots.empty(), "--data: no image folder given");
  std::vector<ImageFile> files;
  for (const auto& root : roots) {
    if (is_tar_shard_name(root)) {
      const auto members = list_shard_images(root, policy);
      files.insert(files.end(), members.begin(), members.end());
      continue;
    }
    if (fs::is_regular_file(root)) {  // one image named on its own
      AMALGAM_CHECK(has_image_extension(root),
                    root + ": not an image file amalgam reads (png, jpg, bmp, gif, tga, pnm)");
      files.emplace_back(root);
      continue;
    }
    AMALGAM_CHECK(fs::is_directory(root), root + ": no such file or folder");
    const auto found = list_image_files(root);
    AMALGAM_CHECK(!found.empty(),
                  root + ": no image files (png, jpg, bmp, gif, tga, pnm) in this tree");
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

at::Tensor load_image_tree(const std::vector<std::string>& roots, ImageFolderOptions options,
                           std::vector<ImageFile>* kept_files) {
  return load_image_files(list_image_roots(roots, options.on_bad_image), options, kept_files);
}

at::Tensor load_image_files(const std::vector<ImageFile>& files, ImageFolderOptions options,
                            std::vector<ImageFile>* kept_files) {
  resolve_geometry(files, options);
  std::vector<bool> kept;
  at::Tensor images = decode_all(files, options, &kept);
  AMALGAM_CHECK(images.size(0) > 0, "--data: none of the " + std::to_string(files.size()) +
                                        " image files could be read");
  if (kept_files != nullptr) {
    kept_files->clear();
    for (size_t i = 0; i < files.size(); ++i)
      if (kept[i]) kept_files->push_back(files[i]);
  }
  return images;
}

LabeledFolder load_labeled_folder(const std::string& root, ImageFolderOptions options) {
  AMALGAM_CHECK(!fs::is_regular_file(root),
                root +
                    ": a file; labeled images are read from a folder (root/<class>/ images), "
                    "and tar shards only as a transfer set");
  AMALGAM_CHECK(fs::is_directory(root), root + ": no such folder");
  std::vector<std::string> class_dirs;
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory()) class_dirs.push_back(entry.path().filename().string());
  std::sort(class_dirs.begin(), class_dirs.end());
  LabeledFolder folder;
  std::vector<ImageFile> files;
  std::vector<int64_t> labels;
  for (const auto& name : class_dirs) {
    const auto found = list_image_files((fs::path(root) / name).string());
    if (found.empty()) continue;
    for (const auto& f : found) {
      files.emplace_back(f);
      labels.push_back(static_cast<int64_t>(folder.class_names.size()));
    }
    folder.class_names.push_back(name);
  }
  AMALGAM_CHECK(!files.empty(),
                root + ": no class folders with images (expected root/<class>/<image files>)");
  resolve_geometry(files, options);
  std::vector<bool> kept;
  folder.data.images = decode_all(files, options, &kept);
  std::vector<int64_t> kept_labels;
  for (size_t i = 0; i < files.size(); ++i)
    if (kept[i]) kept_labels.push_back(labels[i]);
  AMALGAM_CHECK(!kept_labels.empty(), root + ": none of the image files could be read");
  folder.data.labels = torch::tensor(kept_labels, torch::kInt64);
  return folder;
}

bool is_idx_folder(const std::string& dir) {
  for (const char* name : {"train-images-idx3-ubyte", "train-images-idx3-ubyte.gz",
                           "t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"})
    if (fs::exists(fs::path(dir) / name)) return true;
  return false;
}

}  // namespace amalgam
