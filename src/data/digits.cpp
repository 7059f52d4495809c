#include "data/digits.h"

#include <torch/torch.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "data/idx.h"

namespace amalgam {
namespace {

constexpr int64_t kSide = 8;  // the table's images are 8x8
constexpr int64_t kPixels = kSide * kSide;
constexpr double kMaxInk = 16.0;

// The 65 numbers of one row, or an Error naming the line.
std::vector<double> parse_row(const std::string& line, const std::string& where) {
  std::vector<double> values;
  const char* p = line.c_str();
  while (*p != '\0') {
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(p, &end);
    if (end == p || errno != 0) throw Error(where + ": not a number in '" + line + "'");
    values.push_back(v);
    p = end;
    while (*p == ' ' || *p == '\r') ++p;
    if (*p == ',') ++p;
  }
  if (static_cast<int64_t>(values.size()) != kPixels + 1)
    throw Error(where + ": " + std::to_string(values.size()) + " values, expected " +
                std::to_string(kPixels + 1) + " (64 pixels and the digit)");
  for (int64_t i = 0; i < kPixels; ++i)
    if (values[i] < 0 || values[i] > kMaxInk)
      throw Error(where + ": pixel value " + std::to_string(values[i]) + " outside 0..16");
  const double digit = values[kPixels];
  if (digit < 0 || digit > 9 || digit != static_cast<double>(static_cast<int64_t>(digit)))
    throw Error(where + ": label " + std::to_string(digit) + " is not a digit 0..9");
  return values;
}

}  // namespace

LabeledImages load_digits_csv(const std::string& path, int64_t size, int64_t label_offset) {
  AMALGAM_CHECK(size >= kSide, "digits: image size must be at least 8");
  if (!std::filesystem::exists(path))
    throw Error(path + ": no digits table here (Debian's python3-sklearn installs it)");
  std::istringstream text(read_maybe_gzipped(path));
  std::vector<float> pixels;
  std::vector<int64_t> labels;
  std::string line;
  for (int64_t number = 1; std::getline(text, line); ++number) {
    if (line.find_first_not_of(" \r") == std::string::npos) continue;
    const auto values = parse_row(line, path + ":" + std::to_string(number));
    for (int64_t i = 0; i < kPixels; ++i) pixels.push_back(static_cast<float>(values[i] / kMaxInk));
    labels.push_back(static_cast<int64_t>(values[kPixels]) + label_offset);
  }
  if (labels.empty()) throw Error(path + ": no rows");
  const int64_t n = static_cast<int64_t>(labels.size());
  const at::Tensor ink = torch::tensor(pixels).view({n, 1, kSide, kSide});
  const at::Tensor resized =
      torch::nn::functional::interpolate(ink, torch::nn::functional::InterpolateFuncOptions()
                                                  .size(std::vector<int64_t>{size, size})
                                                  .mode(torch::kBilinear)
                                                  .align_corners(false));
  return {resized.mul(255.0).round_().clamp_(0, 255).to(torch::kUInt8).contiguous(),
          torch::tensor(labels, torch::kInt64)};
}

}  // namespace amalgam
