// Folders of image files (PNG, JPEG, BMP, ...): unlabeled trees for the transfer set and labeled
// root/<class>/ folders for teaching and evaluation.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image_decode.h"
#include "data/image_file.h"

namespace amalgam {

/// Parses "skip" or "fail"; throws Error naming --on-bad-image otherwise.
BadImagePolicy parse_bad_image_policy(const std::string& text);

/// How images are decoded: every image is converted to `channels` and resized to height x width.
struct ImageFolderOptions {
  int64_t channels = 0;  ///< 1 (grey) or 3 (RGB); 0 = as the first image
  int64_t height = 0;    ///< 0 = as the first image
  int64_t width = 0;     ///< 0 = as the first image
  BadImagePolicy on_bad_image = BadImagePolicy::kFail;  ///< corrupt or unreadable files
  JpegDecoder jpeg = JpegDecoder::kTurboJpeg;           ///< which decoder reads JPEG files
};

/// The image files (by extension) under `root`, recursively, in sorted order.
std::vector<std::string> list_image_files(const std::string& root);

/// Reads and decodes `image` (decode_image) to uint8 [channels,height,width].
/// Throws Error naming the file when it cannot be read or decoded.
at::Tensor read_image(const ImageFile& image, int64_t channels, int64_t height, int64_t width,
                      JpegDecoder jpeg = JpegDecoder::kTurboJpeg, const CropDraw& crop = {});

/// The images under each of `roots`, in order: a folder's image files (recursively, sorted), a
/// tar shard's image members (NAME.tar, in the shard's order; `policy` decides a truncated
/// shard), or one image file named on its own. Throws Error naming a root that holds none.
std::vector<ImageFile> list_image_roots(const std::vector<std::string>& roots,
                                        BadImagePolicy policy = BadImagePolicy::kFail);

/// Fills the geometry `options` leaves at 0 from the first of `files` that decodes.
void resolve_geometry(const std::vector<ImageFile>& files, ImageFolderOptions& options);

/// Every image under each of `roots` (list_image_roots; labels ignored) as uint8 [N,C,H,W];
/// `files`, when given, receives each image kept, in order.
at::Tensor load_image_tree(const std::vector<std::string>& roots, ImageFolderOptions options,
                           std::vector<ImageFile>* files = nullptr);

/// load_image_tree on images already listed (list_image_roots).
at::Tensor load_image_files(const std::vector<ImageFile>& files, ImageFolderOptions options,
                            std::vector<ImageFile>* kept_files = nullptr);

/// A labeled folder: root/<class>/... images, classes sorted by folder name.
struct LabeledFolder {
  LabeledImages data;                    ///< labels index class_names
  std::vector<std::string> class_names;  ///< one per class folder, sorted
};

/// Loads root/<class>/**/image files; throws Error when there is no class folder with images.
LabeledFolder load_labeled_folder(const std::string& root, ImageFolderOptions options);

/// Whether `dir` holds MNIST-family IDX files (train-images-idx3-ubyte[.gz] or the t10k ones).
bool is_idx_folder(const std::string& dir);

}  // namespace amalgam
