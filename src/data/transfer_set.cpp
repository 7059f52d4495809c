#include "data/transfer_set.h"

#include <c10/util/ParallelGuard.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "data/decode_pool.h"

namespace amalgam {
namespace {

// uint8 `image` [C,H,W] to float in [0,1] at `row`, mirrored left to right when `flip`. A plain
// loop, as the in-memory batch loader's, so both give the same floats; the flip costs nothing
// here, where it cost a copy of the batch after it.
void to_float_row(const at::Tensor& image, float* row, bool flip) {
  const at::Tensor pixels = image.contiguous();
  const uint8_t* source = pixels.data_ptr<uint8_t>();
  const int64_t width = pixels.size(2), lines = pixels.size(0) * pixels.size(1);
  for (int64_t y = 0; y < lines; ++y) {
    const uint8_t* in = source + y * width;
    float* out = row + y * width;
    if (flip)
      for (int64_t x = 0; x < width; ++x) out[x] = in[width - 1 - x] / 255.0f;
    else
      for (int64_t x = 0; x < width; ++x) out[x] = in[x] / 255.0f;
  }
}

}  // namespace

TransferSet::TransferSet(at::Tensor images) : images_(std::move(images)) {
  AMALGAM_CHECK(images_.defined() && images_.dim() == 4, "transfer set: images must be [N,C,H,W]");
  AMALGAM_CHECK(images_.size(0) > 0, "transfer set: no images");
}

TransferSet::TransferSet(ImageIndex index)
    : index_(std::make_shared<const ImageIndex>(std::move(index))),
      bad_images_(std::make_shared<std::atomic<int64_t>>(0)),
      buffers_(std::make_shared<TensorPool>()) {
  AMALGAM_CHECK(!index_->files.empty(), "transfer set: no images");
  const ImageFolderOptions& g = index_->geometry;
  AMALGAM_CHECK(g.channels > 0 && g.height > 0 && g.width > 0,
                "transfer set: a streamed set needs its geometry resolved");
}

int64_t TransferSet::size() const {
  return streams() ? static_cast<int64_t>(index_->files.size()) : images_.size(0);
}

const at::Tensor& TransferSet::images() const {
  AMALGAM_CHECK(!streams(), "transfer set: streamed from disk, not held in memory");
  return images_;
}

at::Tensor TransferSet::input_rows(const std::vector<int64_t>& rows,
                                   const BatchCrops& crops) const {
  if (!streams()) {
    if (!crops.on())
      return to_network_input(images_.index_select(0, torch::tensor(rows, torch::kInt64)));
    const c10::ParallelGuard serial(true);  // as below: on the prefetch thread
    const std::vector<bool> flips = crops.draw_flips(static_cast<int64_t>(rows.size()));
    std::vector<at::Tensor> cropped;
    for (size_t i = 0; i < rows.size(); ++i) {
      const at::Tensor image = images_[rows[i]];
      const CropBox box = crops.draw(static_cast<int64_t>(i))(image.size(1), image.size(2));
      const at::Tensor resized = resized_crop(image, box, image.size(1), image.size(2));
      cropped.push_back(flips[i] ? resized.flip({2}) : resized);
    }
    return to_network_input(torch::stack(cropped));
  }
  // On the batch loader's prefetch thread: no ATen kernel here may start a second OpenMP team.
  const c10::ParallelGuard serial(true);
  const ImageFolderOptions& g = index_->geometry;
  const int64_t pixels = g.channels * g.height * g.width;
  const auto n = static_cast<int64_t>(rows.size());
  at::Tensor batch = buffers_->take({n, g.channels, g.height, g.width});
  float* target = batch.data_ptr<float>();
  const std::vector<bool> flips = crops.draw_flips(n);
  std::vector<std::string> errors(rows.size());
  parallel_decode(n, index_->workers, [&](int64_t i) {
    const ImageFile& file = index_->files[static_cast<size_t>(rows[static_cast<size_t>(i)])];
    at::Tensor image;
    try {
      image = read_image(file, g.channels, g.height, g.width, g.jpeg, crops.draw(i));
    } catch (const Error& e) {
      errors[static_cast<size_t>(i)] = e.what();
      return;
    } catch (const std::exception& e) {  // out of memory, a LibTorch error: still name the file
      errors[static_cast<size_t>(i)] = file.name() + ": cannot decode (" + e.what() + ")";
      return;
    }
    to_float_row(image, target + i * pixels, flips[static_cast<size_t>(i)]);
  });
  std::vector<int64_t> bad;
  for (int64_t i = 0; i < n; ++i)
    if (!errors[static_cast<size_t>(i)].empty()) bad.push_back(i);
  if (bad.empty()) return batch;
  AMALGAM_CHECK(
      g.on_bad_image == BadImagePolicy::kSkip,
      errors[static_cast<size_t>(bad.front())] + " (use --on-bad-image skip to go on without it)");
  if (static_cast<int64_t>(bad.size()) == n) {
    // Nothing good in this call (a one-image shard, a sample's last chunk): its first row takes
    // the next file of the set that decodes.
    const int64_t first = bad.front();
    const int64_t start = rows[static_cast<size_t>(first)];
    bool found = false;
    for (int64_t k = 1; k < size() && !found; ++k) {
      try {
        const at::Tensor image =
            read_image(index_->files[static_cast<size_t>((start + k) % size())], g.channels,
                       g.height, g.width, g.jpeg, crops.draw(first));
        to_float_row(image, target + first * pixels, flips[static_cast<size_t>(first)]);
        found = true;
      } catch (const std::exception&) {
      }
    }
    AMALGAM_CHECK(found, errors[static_cast<size_t>(first)] + ": no image of the set decodes");
    if (bad_images_->fetch_add(1) < 10)
      log_warning("skipping " + errors[static_cast<size_t>(first)] +
                  " (its place repeats the next image of the set)");
    errors[static_cast<size_t>(first)].clear();
    bad.erase(bad.begin());
  }
  // The batch keeps its size (every rank's shard and the step's shape stay as planned): a bad
  // image's row takes the next good image's pixels, a choice that depends on the files alone.
  for (const int64_t i : bad) {
    int64_t good = (i + 1) % n;
    while (!errors[static_cast<size_t>(good)].empty()) good = (good + 1) % n;
    // The row repeats the good image's crop under its own flip draw, as when flipping came after.
    batch[i].copy_(flips[static_cast<size_t>(i)] != flips[static_cast<size_t>(good)]
                       ? batch[good].flip({2})
                       : batch[good]);
    if (bad_images_->fetch_add(1) < 10)
      log_warning("skipping " + errors[static_cast<size_t>(i)] +
                  " (its place in the batch repeats another image)");
  }
  return batch;
}

at::Tensor TransferSet::sample(int64_t max_images) const {
  if (!streams()) return images_;
  const int64_t fit = std::max<int64_t>(1, kSampleBytes / decoded_bytes(1, index_->geometry));
  const int64_t count = std::min({max_images, fit, size()});
  const int64_t stride = size() / count;
  const ImageFolderOptions& g = index_->geometry;
  at::Tensor images = torch::empty({count, g.channels, g.height, g.width}, torch::kUInt8);
  // A batch of float rows at a time, so no more than one batch is ever held as float.
  constexpr int64_t kChunk = 64;
  for (int64_t begin = 0; begin < count; begin += kChunk) {
    std::vector<int64_t> rows;
    for (int64_t i = begin; i < std::min(begin + kChunk, count); ++i) rows.push_back(i * stride);
    // x / 255 * 255 rounds back to x exactly for every x in 0..255.
    images.slice(0, begin, begin + static_cast<int64_t>(rows.size()))
        .copy_(input_rows(rows).mul_(255.0f).round_());
  }
  return images;
}

const std::vector<ImageFile>& TransferSet::files() const {
  static const std::vector<ImageFile> none;
  return streams() ? index_->files : none;
}

std::string TransferSet::checksum() const {
  if (!streams()) {
    const at::Tensor images = images_.contiguous();
    return std::to_string(crc32_of(images.data_ptr(), images.nbytes()));
  }
  std::string listing;
  std::error_code ec;
  for (const auto& file : index_->files) {
    const auto size = file.in_shard()
                          ? file.size
                          : static_cast<int64_t>(std::filesystem::file_size(file.path, ec));
    const std::string where = file.in_shard() ? std::to_string(file.offset) + '\t' : "";
    listing += file.name() + '\t' + where + std::to_string(size) + '\n';
  }
  return std::to_string(crc32_of(listing.data(), listing.size()));
}

TransferSet strip_labels(const LabeledImages& data) {
  return TransferSet(data.images);
}

int64_t decoded_bytes(int64_t count, const ImageFolderOptions& geometry) {
  return count * geometry.channels * geometry.height * geometry.width;
}

}  // namespace amalgam
