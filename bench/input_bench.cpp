// amalgam's input path on a folder of images, timed: list, decode and resize every image (the
// library's load_image_tree, on --threads threads), then the batches a training step takes
// (uint8 -> float in [0,1], collated). bench/input_pipeline.sh runs it beside PyTorch's
// DataLoader on the same files.
//
// usage: amalgam_input_bench --data DIR [--size 224] [--threads 2] [--batch 64] [--decoder
// turbojpeg|stb]
#include <torch/torch.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>

#include "core/runtime.h"
#include "data/dataset.h"
#include "data/image_folder.h"

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
  const at::Tensor images = amalgam::load_image_tree({data}, options);
  const auto decoded = std::chrono::steady_clock::now();
  double checksum = 0;
  for (int64_t begin = 0; begin < images.size(0); begin += batch)
    checksum +=
        amalgam::to_network_input(images.slice(0, begin, begin + batch)).sum().item<double>();
  const auto end = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(end - start).count();
  std::cout << nlohmann::json{{"images", images.size(0)},
                              {"threads", threads},
                              {"decoder", decoder},
                              {"decode_s", std::chrono::duration<double>(decoded - start).count()},
                              {"seconds", seconds},
                              {"images_per_s", images.size(0) / seconds},
                              {"checksum", checksum}}
                   .dump()
            << "\n";
}
