// The transfer set: unlabeled images, held decoded in memory when they fit a budget, otherwise
// streamed: an index of files decoded on demand, a batch at a time, by a pool of decode threads.
#pragma once

#include <ATen/core/Tensor.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/image_folder.h"
#include "data/tensor_pool.h"

namespace amalgam {

/// The images of a streamed set (files, or members of tar shards) and how each is decoded.
struct ImageIndex {
  std::vector<ImageFile> files;  ///< one per image, in set order
  ImageFolderOptions geometry;   ///< channels, height and width resolved (none left at 0)
  int workers = 1;               ///< decode threads per batch
};

/// The transfer set: images whose labels were dropped. The amalgamation path accepts only this
/// type, so no label can reach it. Memory is the index plus the batches being decoded, whatever
/// the number of images, when it streams.
class TransferSet {
 public:
  /// Decoded uint8 images [N,C,H,W] held in memory; throws Error when empty or misshapen.
  explicit TransferSet(at::Tensor images);
  /// Image files decoded on demand; throws Error when the index is empty or its geometry open.
  explicit TransferSet(ImageIndex index);

  /// Number of images.
  int64_t size() const;
  /// Whether the images are decoded on demand (otherwise they are held in memory).
  bool streams() const { return !images_.defined(); }
  /// The images held in memory, uint8 [N,C,H,W]; throws Error when the set streams.
  const at::Tensor& images() const;
  /// The images at positions `rows` as float [b,C,H,W] in [0,1] (the network's input). A file
  /// that does not decode mid-stream stops the run (--on-bad-image fail) or is replaced by the
  /// next good image of the same call (skip), counted in bad_images(). `crops`, when on, crops
  /// each image (RandomResizedCrop) from the file's full size or the image held.
  at::Tensor input_rows(const std::vector<int64_t>& rows, const BatchCrops& crops = {}) const;
  /// Images for a pass over the set that must stay bounded in memory (gate calibration, the
  /// report's embedding): every image when held in memory, otherwise at most `max_images`
  /// evenly spaced ones and no more than kSampleBytes decoded; uint8 [n,C,H,W].
  at::Tensor sample(int64_t max_images) const;
  /// A checksum of the pixels (in memory) or of the images' names and sizes (streamed), so ranks
  /// on several hosts can check they read the same data.
  std::string checksum() const;
  /// A streamed set's images, in set order (empty when held in memory).
  const std::vector<ImageFile>& files() const;
  /// Files replaced under --on-bad-image skip so far (streamed sets).
  int64_t bad_images() const { return bad_images_ ? bad_images_->load() : 0; }

  /// The decoded bytes a streamed sample() may hold: 256 MiB.
  static constexpr int64_t kSampleBytes = int64_t{256} << 20;

 private:
  at::Tensor images_;
  std::shared_ptr<const ImageIndex> index_;
  std::shared_ptr<std::atomic<int64_t>> bad_images_;
  std::shared_ptr<TensorPool> buffers_;  ///< the streamed batches' float buffers
};

/// Drops the labels.
TransferSet strip_labels(const LabeledImages& data);

/// Decoded bytes of `count` images of `geometry`.
int64_t decoded_bytes(int64_t count, const ImageFolderOptions& geometry);

}  // namespace amalgam
