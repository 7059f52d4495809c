#include "models/feature_layout.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "core/names.h"

namespace amalgam {
namespace {

const NameTable<FeatureLayout>& layout_names() {
  static const NameTable<FeatureLayout> names = {{FeatureLayout::kAuto, "auto"},
                                                 {FeatureLayout::kNCHW, "nchw"},
                                                 {FeatureLayout::kNHWC, "nhwc"},
                                                 {FeatureLayout::kTokens, "tokens"},
                                                 {FeatureLayout::kTokensWithClass, "tokens+cls"},
                                                 {FeatureLayout::kVector, "vector"}};
  return names;
}

// The side of a square grid of n cells, or 0 when n is not a square.
int64_t grid_side(int64_t n) {
  if (n <= 0) return 0;
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  return side * side == n ? side : 0;
}

std::string shape_text(const std::vector<int64_t>& sizes) {
  std::string text = "[";
  for (int64_t d : sizes) text += (text.size() > 1 ? ", " : "") + std::to_string(d);
  return text + "]";
}

// Whether `sizes` can be read in `layout` at all (its rank, a square token grid).
bool fits(const std::vector<int64_t>& sizes, FeatureLayout layout) {
  switch (layout) {
    case FeatureLayout::kNCHW:
    case FeatureLayout::kNHWC:
      return sizes.size() == 4;
    case FeatureLayout::kTokens:
      return sizes.size() == 3 && grid_side(sizes[1]) > 0;
    case FeatureLayout::kTokensWithClass:
      return sizes.size() == 3 && grid_side(sizes[1] - 1) > 0;
    case FeatureLayout::kVector:
      return sizes.size() == 2;
    case FeatureLayout::kAuto:
      return false;
  }
  return false;
}

// Whether a map of spatial size h x w is plausible for h_in x w_in images: no larger than the
// input, and square when the input is.
bool plausible_grid(int64_t h, int64_t w, int64_t h_in, int64_t w_in) {
  return h <= h_in && w <= w_in && (h_in != w_in || h == w);
}

}  // namespace

FeatureLayout parse_feature_layout(const std::string& name, const std::string& where) {
  return parse_choice(where + ": feature layout", name, layout_names());
}

const char* feature_layout_name(FeatureLayout layout) {
  return choice_name(layout, layout_names());
}

FeatureLayout resolve_feature_layout(const std::vector<int64_t>& sizes, int64_t height,
                                     int64_t width, FeatureLayout declared,
                                     const std::string& where) {
  const std::string choose =
      " — say which with a layout after the layer, PATH.pt:LAYER@LAYOUT, or \"layout\" in the "
      "sidecar; LAYOUT is nchw [B,C,H,W], nhwc [B,H,W,C], tokens [B,H*W,C], tokens+cls "
      "[B,1+H*W,C] or vector [B,C]";
  if (declared != FeatureLayout::kAuto) {
    AMALGAM_CHECK(fits(sizes, declared), where + " returns " + shape_text(sizes) +
                                             ", which cannot be read as " +
                                             feature_layout_name(declared) + choose);
    return declared;
  }
  std::vector<FeatureLayout> candidates;
  if (sizes.size() == 2) candidates.push_back(FeatureLayout::kVector);
  if (sizes.size() == 4) {
    if (plausible_grid(sizes[2], sizes[3], height, width))
      candidates.push_back(FeatureLayout::kNCHW);
    if (plausible_grid(sizes[1], sizes[2], height, width))
      candidates.push_back(FeatureLayout::kNHWC);
  }
  if (sizes.size() == 3) {
    // A sequence longer than the image has pixels is not a grid of patches of it.
    const bool short_enough = sizes[1] <= height * width + 1;
    for (FeatureLayout l : {FeatureLayout::kTokens, FeatureLayout::kTokensWithClass})
      if (short_enough && fits(sizes, l)) candidates.push_back(l);
  }
  AMALGAM_CHECK(!candidates.empty(), where + " returns " + shape_text(sizes) +
                                         ", which is no feature layout amalgam can read as it is" +
                                         choose);
  AMALGAM_CHECK(candidates.size() == 1, where + " returns " + shape_text(sizes) +
                                            ", which could be " +
                                            feature_layout_name(candidates[0]) + " or " +
                                            feature_layout_name(candidates[1]) + choose);
  return candidates.front();
}

at::Tensor to_feature_map(const at::Tensor& x, FeatureLayout layout) {
  switch (layout) {
    case FeatureLayout::kNCHW:
      return x;
    case FeatureLayout::kNHWC:
      return x.permute({0, 3, 1, 2});
    case FeatureLayout::kTokens:
    case FeatureLayout::kTokensWithClass: {
      const at::Tensor patches = layout == FeatureLayout::kTokens ? x : x.slice(1, 1);
      const int64_t side = grid_side(patches.size(1));
      return patches.transpose(1, 2).reshape({x.size(0), x.size(2), side, side});
    }
    case FeatureLayout::kVector:
      return x.unsqueeze(-1).unsqueeze(-1);
    case FeatureLayout::kAuto:
      break;
  }
  throw Error("to_feature_map: the layout must be resolved first");
}

}  // namespace amalgam
