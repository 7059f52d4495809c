// amalgam's input path on a folder of images (or tar shards of them), timed as a training step
// reads it: the streamed transfer set's index, and a BatchLoader that decodes, resizes and converts
// each batch to float on --threads decode threads, one batch ahead of the consumer.
// bench/input_pipeline.sh runs it beside PyTorch's DataLoader on the same files.
//
// usage: amalgam_input_bench --data DIR|SHARD.tar... [--size 224] [--threads 2] [--batch 64]
// [--decoder turbojpeg|stb] [--crop]
// --crop: the 224-px training view instead of the whole image: RandomResizedCrop (drawn per image,
// cut from the file's full size), horizontal flip and ImageNet normalisation, as a step gets it.
#include <torch/torch.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "core/runtime.h"
#include "data/augment.h"
#include "data/batch_loader.h"
#include "data/image_folder.h"
#include "data/tar_shards.h"
#include "data/transfer_set.h"

int main(int argc, char** argv) {
  CLI::App app("Time amalgam's input path on a folder of images");
  std::vector<std::string> data;
  std::string decoder = "turbojpeg";
  int64_t size = 224, batch = 64;
  int threads = 2;
  app.add_option("--data", data, "folder of images, or tar shards ('DIR/s-{0000..0009}.tar')")
      ->required();
  app.add_option("--size", size, "square side every image is resized to");
  app.add_option("--threads", threads, "decode threads");
  app.add_option("--batch", batch, "images per collated batch");
  app.add_option("--decoder", decoder, "JPEG decoder")->check(CLI::IsMember({"turbojpeg", "stb"}));
  bool crop = false;
  app.add_flag("--crop", crop, "RandomResizedCrop + flip + normalise instead of a whole resize");
  CLI11_PARSE(app, argc, argv);
  amalgam::configure_threads(threads);
  amalgam::ImageFolderOptions options;
  options.channels = 3;
  options.height = options.width = size;
  options.jpeg = decoder == "stb" ? amalgam::JpegDecoder::kStb : amalgam::JpegDecoder::kTurboJpeg;
  const auto start = std::chrono::steady_clock::now();
  amalgam::ImageIndex index;
  std::vector<std::string> sources;
  for (const auto& text : data)
    for (const auto& source : amalgam::expand_shard_pattern(text, "--data"))
      sources.push_back(source);
  index.files = amalgam::list_image_roots(sources);
  const bool shards = index.files.front().in_shard();
  index.geometry = options;
  index.workers = threads;
  const amalgam::TransferSet set(std::move(index));
  amalgam::AugmentOptions augment;  // crop and flip, made while decoding, as amalgamate's
  augment.random_resized_crop = crop;
  augment.horizontal_flip = true;
  const at::Tensor mean = torch::tensor({0.485f, 0.456f, 0.406f}).view({1, 3, 1, 1});
  const at::Tensor std = torch::tensor({0.229f, 0.224f, 0.225f}).view({1, 3, 1, 1});
  // The batch loader a training step reads from: the next batch decoded on the decode threads
  // while this one is normalised (a network does it on its device, with its own mean and std).
  amalgam::BatchLoaderOptions loading;
  loading.batch_size = batch;
  loading.shuffle = false;
  loading.augment = &augment;
  amalgam::BatchLoader loader(
      [&set](const std::vector<int64_t>& rows, const amalgam::BatchCrops& draws) {
        return set.input_rows(rows, draws);
      },
      set.size(), loading);
  loader.start_epoch(0);
  double checksum = 0;
  for (int64_t step = 0; auto next = loader.next(); ++step) {
    at::Tensor x = next->images;
    if (crop)
      x = amalgam::augment_batch(x, augment, amalgam::augment_seed(0, 0, step), 0, next->flipped)
              .sub_(mean)
              .div_(std);
    checksum += x.sum().item<double>();
  }
  const auto end = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(end - start).count();
  std::cout << nlohmann::json{{"images", set.size()},
                              {"threads", threads},
                              {"decoder", decoder},
                              {"source", shards ? "shards" : "folder"},
                              {"view", crop ? "crop" : "resize"},
                              {"seconds", seconds},
                              {"images_per_s", static_cast<double>(set.size()) / seconds},
                              {"checksum", checksum}}
                   .dump()
            << "\n";
}
