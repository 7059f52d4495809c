// The decoders against an independent one (Pillow) on the kinds of file real photo folders hold:
// tests/fixtures/make_image_zoo.py writes them with the reference pixels beside each.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "data/augment.h"
#include "data/image_decode.h"
#include "data/image_folder.h"
#include "data/transfer_set.h"
#include "test_util.h"

namespace amalgam {
namespace {

using test::error_of;
using test::temp_dir;

const std::string& zoo() {
  static const std::string dir = [] {
    const std::string d = temp_dir("image_zoo");
    const std::string command =
        std::string(AMALGAM_PYTHON_EXE) + " " AMALGAM_TESTS_DIR "/fixtures/make_image_zoo.py " + d;
    if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
    return d;
  }();
  return dir;
}

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The reference pixels of zoo file `name` as uint8 [3,H,W].
at::Tensor reference(const std::string& name) {
  std::ifstream size(zoo() + "/" + name + ".size");
  int64_t height = 0, width = 0;
  size >> height >> width;
  const std::string raw = bytes_of(zoo() + "/" + name + ".rgb");
  EXPECT_EQ(static_cast<int64_t>(raw.size()), height * width * 3) << name;
  return torch::from_blob(const_cast<char*>(raw.data()), {height, width, 3}, torch::kUInt8)
      .permute({2, 0, 1})
      .clone();
}

struct Difference {
  double mean = 0, max = 0;
};

Difference decoded_against_reference(const std::string& name, int64_t channels = 3) {
  at::Tensor want = reference(name).to(torch::kFloat32);
  if (channels == 1)  // stb_image's weights, which every grey path of amalgam uses
    want = ((want[0] * 77 + want[1] * 150 + want[2] * 29) / 256).floor().unsqueeze(0);
  const at::Tensor got = read_image(zoo() + "/" + name, channels, want.size(1), want.size(2));
  const at::Tensor d = (got.to(torch::kFloat32) - want).abs();
  return {d.mean().item<double>(), d.max().item<double>()};
}

// Files decoded at their own size by both libjpeg-turbo builds (the same integer IDCT and
// upsampling) or losslessly: equal but for the last bit of a rounding.
TEST(ImageDecode, EveryKindOfFileReadsAsPillowReadsIt) {
  for (const char* name :
       {"baseline.jpg", "progressive.jpg", "grey.jpg", "subsampling444.jpg", "cmyk.jpg",
        "thumbnail.jpg", "rgb.png", "palette.png", "alpha.png", "grey16.png", "png_named.jpg"}) {
    const Difference d = decoded_against_reference(name);
    EXPECT_LE(d.max, 1) << name << ": mean " << d.mean;
  }
}

TEST(ImageDecode, GreyFromColourUsesOneWeighting) {
  for (const char* name : {"baseline.jpg", "cmyk.jpg", "rgb.png"}) {
    const Difference d = decoded_against_reference(name, 1);
    // A JPEG's grey is its luma plane (JFIF's 0.299/0.587/0.114, as stb_image read it too); the
    // reference weighs Pillow's RGB by /256: RGB rounding (0.5) + the floor (1) + the weights'
    // difference at 255 (0.9) make at most 3 levels.
    EXPECT_LE(d.max, 3) << name << ": mean " << d.mean;
  }
}

TEST(ImageDecode, ALargePhotoIsReadNearTheTargetSize) {
  // 6000x4000 read at 300x200: decoded at 1/8 in the DCT domain (750x500), then resized; the
  // reference is 20x20 block means. Both are local averages of a smooth image: close, not equal.
  const Difference d = decoded_against_reference("camera.jpg");
  EXPECT_LE(d.mean, 1.0);
  EXPECT_LE(d.max, 8);
}

// torchvision's RandomResizedCrop.get_params: a box inside the image, its area share and aspect
// ratio within the ranges (but for the rounding of its sides to whole pixels), a pure function
// of the seed; an image no box of the ratio range fits gets the centre crop of the clamped ratio.
TEST(ImageDecode, RandomResizedCropDrawsAsTorchvision) {
  AugmentOptions options;
  options.random_resized_crop = true;
  double smallest = 1, largest = 0;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    const CropBox box = draw_resized_crop(375, 500, options, seed);
    ASSERT_GE(box.top, 0);
    ASSERT_GE(box.left, 0);
    ASSERT_LE(box.top + box.height, 375);
    ASSERT_LE(box.left + box.width, 500);
    const double share = static_cast<double>(box.height * box.width) / (375.0 * 500.0);
    const double ratio = static_cast<double>(box.width) / static_cast<double>(box.height);
    // Each side is rounded by at most half a pixel: area within (w +- 0.5)(h +- 0.5), ratio
    // within (w +- 0.5) / (h -+ 0.5); the boxes are at least sqrt(0.08 x 375 x 500 x 3/4) = 106
    // pixels a side.
    EXPECT_GE(share, 0.08 * (1 - 1.0 / 106));
    EXPECT_LE(ratio, 4.0 / 3 * (1 + 1.0 / 106) / (1 - 1.0 / 106));
    EXPECT_GE(ratio, 3.0 / 4 * (1 - 1.0 / 106) / (1 + 1.0 / 106));
    smallest = std::min(smallest, share);
    largest = std::max(largest, share);
    const CropBox again = draw_resized_crop(375, 500, options, seed);
    EXPECT_EQ(again.top, box.top);
    EXPECT_EQ(again.width, box.width);
  }
  EXPECT_LT(smallest, 0.1);  // the whole range is drawn
  EXPECT_GT(largest, 0.9);
  // A 10 x 1000 strip: no box of ratio 3/4..4/3 fits; the centre 10 x 13 (10 x 4/3, rounded).
  const CropBox strip = draw_resized_crop(10, 1000, options, 1);
  EXPECT_EQ(strip.height, 10);
  EXPECT_EQ(strip.width, 13);
  EXPECT_EQ(strip.left, (1000 - 13) / 2);
}

// A crop given to the decoder is drawn on the file's full size and only the box is resized:
// for a PNG (decoded at full size) the same pixels as cropping the full decode and resizing it,
// to a rounding of the uint8 kernel's fixed point (1 level).
TEST(ImageDecode, ACropIsTakenFromTheFullImage) {
  const std::string bytes = bytes_of(zoo() + "/rgb.png");
  const at::Tensor full =
      decode_image(bytes, "rgb.png", 3, reference("rgb.png").size(1), reference("rgb.png").size(2));
  const CropBox box{10, 20, full.size(1) / 3, full.size(2) / 2};
  const at::Tensor cropped = decode_image(bytes, "rgb.png", 3, 48, 64, JpegDecoder::kTurboJpeg,
                                          [&](int64_t, int64_t) { return box; });
  ASSERT_EQ(cropped.sizes(), (std::vector<int64_t>{3, 48, 64}));
  const at::Tensor want = resized_crop(full, box, 48, 64);
  EXPECT_LE((cropped.to(torch::kInt32) - want.to(torch::kInt32)).abs().max().item<int>(), 1);
  // A JPEG read with a crop: decoded in the DCT domain no smaller than the box needs, so the
  // crop of a 6000x4000 photo is as sharp as the same crop of its full decode, to the scale's
  // rounding (the reference is the full-size crop resized).
  const std::string photo = bytes_of(zoo() + "/camera.jpg");
  const CropBox middle{1000, 1500, 2000, 3000};
  const at::Tensor near = decode_image(photo, "camera.jpg", 3, 200, 300, JpegDecoder::kTurboJpeg,
                                       [&](int64_t, int64_t) { return middle; });
  const at::Tensor whole = decode_image(photo, "camera.jpg", 3, 4000, 6000);
  const at::Tensor far = resized_crop(whole, middle, 200, 300);
  EXPECT_LE((near.to(torch::kFloat32) - far.to(torch::kFloat32)).abs().mean().item<double>(), 1.0);
}

// With RandomResizedCrop, the flips are made where each image is cropped (the crop view's copy of
// the batch saved): the batch, then augment_batch told so, gives the floats that the crop alone
// followed by augment_batch's own flips gave, mixup's draws included, for a whole batch and for a
// rank's shard of it, streamed from files and held in memory alike.
TEST(ImageDecode, FlipsMadeWhereCroppedEqualTheBatchsFlips) {
  ImageIndex index;
  for (const char* name : {"baseline.jpg", "progressive.jpg", "grey.jpg", "rgb.png", "palette.png",
                           "alpha.png", "thumbnail.jpg", "cmyk.jpg"})
    index.files.push_back(ImageFile(zoo() + "/" + name));
  // A bad file skipped: read last, it is the batch's first row, which repeats the next row's crop
  // under its own flip draw.
  const std::string bad = temp_dir("flips_bad") + "/page.jpg";
  std::ofstream(bad) << "<html>not an image</html>";
  index.files.push_back(ImageFile(bad));
  index.geometry.on_bad_image = BadImagePolicy::kSkip;
  index.geometry.channels = 3;
  index.geometry.height = index.geometry.width = 24;
  index.workers = 2;
  const TransferSet streamed(index);
  const TransferSet held(load_image_tree({zoo() + "/baseline.jpg", zoo() + "/rgb.png",
                                          zoo() + "/progressive.jpg", zoo() + "/alpha.png"},
                                         index.geometry));
  AugmentOptions fused;
  fused.random_resized_crop = true;
  fused.horizontal_flip = true;
  fused.mixup_alpha = 0.4;
  AugmentOptions crop_only = fused;
  crop_only.horizontal_flip = false;
  int differing_bad_row = 0;  // the bad row's flip differs from the row it repeats
  for (const TransferSet* set : {&streamed, &held}) {
    for (const int64_t first : {int64_t{0}, int64_t{3}}) {
      std::vector<int64_t> rows;
      for (int64_t i = 0; i < set->size(); ++i) rows.push_back(set->size() - 1 - i);
      const uint64_t seed = augment_seed(7, 1, 2);
      const BatchCrops crops{&fused, seed, first};
      ASSERT_TRUE(crops.flips());
      const std::vector<bool> flips = crops.draw_flips(set->size());
      ASSERT_NE(std::count(flips.begin(), flips.end(), true), 0);  // the seed flips some
      if (set->streams()) differing_bad_row += flips[0] != flips[1];
      const at::Tensor flipped = set->input_rows(rows, crops);
      const at::Tensor plain = set->input_rows(rows, BatchCrops{&crop_only, seed, first});
      EXPECT_FALSE(flipped.equal(plain));
      EXPECT_TRUE(augment_batch(flipped, fused, seed, first, true)
                      .equal(augment_batch(plain, fused, seed, first, false)))
          << (set->streams() ? "streamed" : "held") << ", first " << first;
    }
  }
  EXPECT_GT(differing_bad_row, 0);
  AugmentOptions padded = fused;  // pad-crops come before flips: those stay on the batch
  padded.crop_padding = 2;
  EXPECT_FALSE((BatchCrops{&padded, 1, 0}.flips()));
}

TEST(ImageDecode, TheContentDecidesTheFormat) {
  EXPECT_EQ(sniff_image_format(bytes_of(zoo() + "/baseline.jpg")), ImageFormat::kJpeg);
  EXPECT_EQ(sniff_image_format(bytes_of(zoo() + "/png_named.jpg")), ImageFormat::kPng);
  EXPECT_EQ(sniff_image_format(bytes_of(zoo() + "/page.jpg")), ImageFormat::kOther);
  int w = 0, h = 0;
  bool grey = false;
  ASSERT_TRUE(image_header(bytes_of(zoo() + "/grey.jpg"), &w, &h, &grey));
  EXPECT_EQ(w, 320);
  EXPECT_EQ(h, 240);
  EXPECT_TRUE(grey);
  ASSERT_TRUE(image_header(bytes_of(zoo() + "/cmyk.jpg"), &w, &h, &grey));
  EXPECT_FALSE(grey);
}

TEST(ImageDecode, AFolderLeavesMacOsMetadataOut) {
  // "._baseline.jpg" is listed by neither name nor content; the other refused files are listed,
  // to be refused by name when read (or skipped and counted under --on-bad-image skip).
  const std::vector<std::string> files = list_image_files(zoo());
  EXPECT_EQ(std::count(files.begin(), files.end(), zoo() + "/._baseline.jpg"), 0);
  EXPECT_EQ(std::count(files.begin(), files.end(), zoo() + "/truncated.jpg"), 1);
}

TEST(ImageDecode, WhatIsNoImageIsRefusedByName) {
  for (const char* name : {"truncated.jpg", "page.jpg", "._baseline.jpg", "empty.jpg"}) {
    const std::string path = zoo() + "/" + name;
    const std::string message = error_of([&] { read_image(path, 3, 32, 32); });
    EXPECT_NE(message.find(path + ": "), std::string::npos) << message;
  }
  EXPECT_NE(error_of([&] { read_image(zoo() + "/truncated.jpg", 3, 32, 32); }).find("truncated"),
            std::string::npos);
}

}  // namespace
}  // namespace amalgam
