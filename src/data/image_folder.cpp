#include "data/image_folder.h"

#include <stb_image.h>
#include <stb_image_resize.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "core/error.h"
#include "core/log.h"

namespace amalgam {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kMaxPixels = int64_t{1} << 26;  // 8192x8192: refuse larger before decoding

std::string lower_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext;
}

bool has_image_extension(const fs::path& path) {
  const std::string ext = lower_extension(path);
  static const char* known[] = {".png", ".jpg", ".jpeg", ".bmp", ".gif",
                                ".tga", ".pgm", ".ppm",  ".pnm"};
  return std::any_of(std::begin(known), std::end(known), [&](const char* k) { return ext == k; });
}

// Image formats people keep that stb cannot decode: named when skipped, never skipped silently.
bool has_unreadable_image_extension(const fs::path& path) {
  const std::string ext = lower_extension(path);
  static const char* unreadable[] = {".webp", ".tif", ".tiff", ".heic", ".avif", ".jxl"};
  return std::any_of(std::begin(unreadable), std::end(unreadable),
                     [&](const char* k) { return ext == k; });
}

std::string failure_reason() {
  const char* reason = stbi_failure_reason();
  return reason != nullptr ? reason : "unknown reason";
}

// Binary PGM/PPM are checked here before stb sees them: Debian's stb reads past the buffer on
// a header that promises more pixels (or 16-bit samples) than the file holds (found by fuzzing).
void check_pnm(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 2 || bytes[0] != 'P' || (bytes[1] != '5' && bytes[1] != '6')) return;
  size_t pos = 2;
  int64_t values[3] = {0, 0, 0};
  for (int64_t& value : values) {
    while (pos < bytes.size() &&
           (std::isspace(static_cast<unsigned char>(bytes[pos])) || bytes[pos] == '#')) {
      if (bytes[pos] == '#')
        while (pos < bytes.size() && bytes[pos] != '\n') ++pos;
      else
        ++pos;
    }
    const size_t start = pos;
    while (pos < bytes.size() && std::isdigit(static_cast<unsigned char>(bytes[pos]))) {
      value = value * 10 + (bytes[pos++] - '0');
      if (value > (int64_t{1} << 30)) throw Error(name + ": corrupt PNM header: size too large");
    }
    if (pos == start) throw Error(name + ": corrupt PNM header");
  }
  ++pos;  // the single whitespace byte before the pixels
  const int64_t channels = bytes[1] == '5' ? 1 : 3;
  if (values[2] < 1 || values[2] > 255)
    throw Error(name + ": unsupported PNM: only 8-bit samples (maxval 1..255)");
  if (values[0] < 1 || values[1] < 1 || values[0] * values[1] > kMaxPixels ||
      static_cast<int64_t>(bytes.size()) - static_cast<int64_t>(pos) <
          values[0] * values[1] * channels)
    throw Error(name + ": truncated PNM: the header promises more pixels than the file holds");
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  AMALGAM_CHECK(in.good(), path + ": cannot open");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Fills geometry left at 0 from the first file that decodes.
void resolve_geometry(const std::vector<std::string>& files, ImageFolderOptions& options) {
  if (options.channels > 0 && options.height > 0 && options.width > 0) return;
  for (const auto& file : files) {
    std::string bytes;
    try {
      bytes = read_bytes(file);
    } catch (const Error&) {
      continue;
    }
    int w = 0, h = 0, n = 0;
    if (!stbi_info_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                               static_cast<int>(bytes.size()), &w, &h, &n))
      continue;
    if (options.channels <= 0) options.channels = (n == 1 || n == 2) ? 1 : 3;
    if (options.height <= 0) options.height = h;
    if (options.width <= 0) options.width = w;
    return;
  }
  throw Error("image folder: no readable image to take the input size from");
}

// Decodes `files` into one uint8 batch; bad files fail or are dropped (per the policy).
at::Tensor decode_all(const std::vector<std::string>& files, const ImageFolderOptions& options,
                      std::vector<bool>* kept) {
  const auto n = static_cast<int64_t>(files.size());
  at::Tensor images =
      torch::empty({n, options.channels, options.height, options.width}, torch::kUInt8);
  std::vector<std::string> errors(files.size());
  at::parallel_for(0, n, 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      try {
        images[i].copy_(read_image(files[i], options.channels, options.height, options.width));
      } catch (const Error& e) {
        errors[i] = e.what();
      }
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
  int64_t duplicates = 0, unreadable = 0;
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
    if (!has_image_extension(it->path())) continue;
    if (seen_files.insert(fs::canonical(it->path(), ec)).second)
      files.push_back(it->path().string());
    else
      ++duplicates;
  }
  AMALGAM_CHECK(!ec, root + ": cannot list: " + ec.message());
  if (duplicates > 0)
    log_warning(root + ": " + std::to_string(duplicates) +
                " image file(s) reached twice through symbolic links, counted once");
  if (unreadable > 0)
    log_warning(root + ": skipped " + std::to_string(unreadable) +
                " webp/tiff/heic/avif/jxl file(s); amalgam reads png, jpg, bmp, gif, tga and "
                "pnm (convert them first)");
  std::sort(files.begin(), files.end());
  return files;
}

at::Tensor read_image(const std::string& path, int64_t channels, int64_t height, int64_t width) {
  return decode_image(read_bytes(path), path, channels, height, width);
}

at::Tensor decode_image(const std::string& bytes, const std::string& path, int64_t channels,
                        int64_t height, int64_t width) {
  AMALGAM_CHECK(channels == 1 || channels == 3, path + ": can only decode to 1 or 3 channels");
  AMALGAM_CHECK(height > 0 && width > 0, path + ": target size must be positive");
  AMALGAM_CHECK(!bytes.empty(), path + ": empty file");
  check_pnm(bytes, path);
  int w = 0, h = 0, n = 0;
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int size = static_cast<int>(std::min<size_t>(bytes.size(), INT32_MAX));
  if (!stbi_info_from_memory(data, size, &w, &h, &n))
    throw Error(path + ": not a readable image (" + failure_reason() + ")");
  AMALGAM_CHECK(
      w > 0 && h > 0 && int64_t{w} * h <= kMaxPixels,
      path + ": image size " + std::to_string(w) + "x" + std::to_string(h) + " is not supported");
  // A small file claiming a large image would be decoded from padding (fuzz_image: an 18-byte
  // TGA header asking for 2614x20532 took 10 s). No format packs more than about 8,256 pixels in
  // a byte (1-bit PNG at deflate's limit), so beyond the first megapixel 16,384 per byte is the
  // most a file can hold.
  AMALGAM_CHECK(int64_t{w} * h <= (int64_t{1} << 20) + 16384 * static_cast<int64_t>(bytes.size()),
                path + ": the header claims " + std::to_string(w) + "x" + std::to_string(h) +
                    " pixels, more than its " + std::to_string(bytes.size()) +
                    " bytes can hold (truncated or damaged?)");
  stbi_uc* pixels = stbi_load_from_memory(data, size, &w, &h, &n, static_cast<int>(channels));
  if (pixels == nullptr) throw Error(path + ": corrupt image (" + failure_reason() + ")");
  at::Tensor hwc = torch::empty({height, width, channels}, torch::kUInt8);
  int ok = 1;
  if (w == width && h == height)
    std::copy(pixels, pixels + hwc.numel(), hwc.data_ptr<uint8_t>());
  else
    ok = stbir_resize_uint8(pixels, w, h, 0, hwc.data_ptr<uint8_t>(), static_cast<int>(width),
                            static_cast<int>(height), 0, static_cast<int>(channels));
  stbi_image_free(pixels);
  AMALGAM_CHECK(
      ok == 1, path + ": cannot resize to " + std::to_string(width) + "x" + std::to_string(height));
  return hwc.permute({2, 0, 1}).contiguous();
}

at::Tensor load_image_tree(const std::vector<std::string>& roots, ImageFolderOptions options,
                           std::vector<std::string>* kept_files) {
  AMALGAM_CHECK(!roots.empty(), "--data: no image folder given");
  std::vector<std::string> files;
  for (const auto& root : roots) {
    if (fs::is_regular_file(root)) {  // one image named on its own
      AMALGAM_CHECK(has_image_extension(root),
                    root + ": not an image file amalgam reads (png, jpg, bmp, gif, tga, pnm)");
      files.push_back(root);
      continue;
    }
    const auto found = list_image_files(root);
    AMALGAM_CHECK(!found.empty(),
                  root + ": no image files (png, jpg, bmp, gif, tga, pnm) in this tree");
    files.insert(files.end(), found.begin(), found.end());
  }
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
  AMALGAM_CHECK(fs::is_directory(root), root + ": no such folder");
  std::vector<std::string> class_dirs;
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory()) class_dirs.push_back(entry.path().filename().string());
  std::sort(class_dirs.begin(), class_dirs.end());
  LabeledFolder folder;
  std::vector<std::string> files;
  std::vector<int64_t> labels;
  for (const auto& name : class_dirs) {
    const auto found = list_image_files((fs::path(root) / name).string());
    if (found.empty()) continue;
    for (const auto& f : found) {
      files.push_back(f);
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
