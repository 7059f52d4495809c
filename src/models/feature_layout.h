// How a tapped layer lays out its features: convolutional maps channels-first or channels-last,
// transformer token sequences (with or without a class token), or vectors. Every layout is turned
// into the one feature-map form, [B,C,H,W], that the rest of amalgam reads.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace amalgam {

/// The layout of a tapped output (batch first).
enum class FeatureLayout {
  kAuto,             ///< read from the output's shape; refused when it could be more than one
  kNCHW,             ///< [B,C,H,W]: convolutional maps (torchvision CNNs)
  kNHWC,             ///< [B,H,W,C]: channels-last maps (Swin, ConvNeXt blocks inside)
  kTokens,           ///< [B,N,C]: patch tokens on an N = H x W grid
  kTokensWithClass,  ///< [B,1+N,C]: a class token, then patch tokens on an N = H x W grid (ViT)
  kVector,           ///< [B,C]: pooled features
};

/// The layout called `name` (auto, nchw, nhwc, tokens, tokens+cls, vector); throws Error naming
/// `where` otherwise.
FeatureLayout parse_feature_layout(const std::string& name, const std::string& where);

/// The name parse_feature_layout reads.
const char* feature_layout_name(FeatureLayout layout);

/// The layout of an output of `sizes` (batch first) from a network whose input images are
/// `height` x `width`. `declared` wins when it is not kAuto (and is checked against the shape);
/// otherwise the shape decides: spatial sizes cannot exceed the input's, a square input gives a
/// square map, token counts must be a square grid (or one more, for a class token). Throws Error
/// naming `where`, listing the layouts and how to choose one, when the shape fits none or several.
FeatureLayout resolve_feature_layout(const std::vector<int64_t>& sizes, int64_t height,
                                     int64_t width, FeatureLayout declared,
                                     const std::string& where);

/// `x` in `layout` as a feature map [B,C,H,W] (a vector becomes [B,C,1,1]).
at::Tensor to_feature_map(const at::Tensor& x, FeatureLayout layout);

}  // namespace amalgam
