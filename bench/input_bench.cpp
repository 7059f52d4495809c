// amalgam's input path on a folder of images, timed: the streamed transfer set's (list the files,
// then for each batch of a training step decode, resize and convert every image to float in
// [0,1] on --threads decode threads, into the batch). bench/input_pipeline.sh runs it beside
// PyTorch's DataLoader on the same files.
//
// usage: amalgam_input_bench --data DIR [--size 224] [--threads 2] [--batch 64] [--decoder
// turbojpeg|stb]
#include <torch/torch.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "core/runtime.h"
#include "data/image_folder.h"
#include "data/transfer_set.h"

int main(int argc, char** argv) {
  CLI::App app("Time amalgam's input path on a folder of images");
  std::string data, decoder = "turbojpeg";
  int64_t size = 224, batch = 64;
  int threads = 2;
  app.add_option("--data", data, "folder of images")->required();
  app.add_option("--size", size, "square side every image is resized to");
  app.add_option("--threads", threads, "decode threads");
  app.add_option("--batch", batch, "images per collated batch");
  app.add_option("--decoder", decoder, "JPEG decoder")->check(CLI::IsMember({"turbojpeg", "stb"}));
  CLI11_PARSE(app, argc, argv);
  amalgam::configure_threads(threads);
  amalgam::ImageFolderOptions options;
  options.channels = 3;
  options.height = options.width = size;
  options.jpeg = decoder == "stb" ? amalgam::JpegDecoder::kStb : amalgam::JpegDecoder::kTurboJpeg;
  const auto start = std::chrono::steady_clock::now();
  amalgam::ImageIndex index;
  index.files = amalgam::list_image_roots({data});
  index.geometry = options;
  index.workers = threads;
  const amalgam::TransferSet set(std::move(index));
  double checksum = 0;
  for (int64_t begin = 0; begin < set.size(); begin += batch) {
    std::vector<int64_t> rows;
    for (int64_t i = begin; i < std::min(begin + batch, set.size()); ++i) rows.push_back(i);
    checksum += set.input_rows(rows).sum().item<double>();
  }
  const auto end = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(end - start).count();
  std::cout << nlohmann::json{{"images", set.size()},
                              {"threads", threads},
                              {"decoder", decoder},
                              {"seconds", seconds},
                              {"images_per_s", static_cast<double>(set.size()) / seconds},
                              {"checksum", checksum}}
                   .dump()
            << "\n";
}
