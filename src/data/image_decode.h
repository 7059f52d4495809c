// Decoding one encoded image to the pixels a network reads. The format is decided by the file's
// content, never its name: JPEG through libjpeg-turbo (TurboJPEG), which decodes a large photo
// near the target size in the DCT domain; PNG, BMP, GIF, TGA and PNM through stb_image.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "data/augment.h"

namespace amalgam {

/// What an encoded image's first bytes say it is.
enum class ImageFormat {
  kJpeg,   ///< FF D8 FF
  kPng,    ///< the 8-byte PNG signature
  kOther,  ///< anything else: stb_image decides (BMP, GIF, TGA, PNM) or refuses it
};

/// Which decoder reads JPEG files.
enum class JpegDecoder {
  kTurboJpeg,  ///< libjpeg-turbo, scaled in the DCT domain (the default)
  kStb,        ///< stb_image at full size, for comparison (bench/input_pipeline.sh)
};

/// The format `bytes` start with.
ImageFormat sniff_image_format(const std::string& bytes);

/// Decodes an encoded image held in memory (`name` labels it in messages) to uint8
/// [channels,height,width] (grey and RGB converted, alpha dropped, 16-bit samples by their high
/// byte, resized with antialiased bilinear interpolation as torchvision's Resize); throws Error
/// naming it when it is not a decodable image or is truncated. `crop`, when given, draws a box
/// on the image's full size, and only the box is resized to height x width (RandomResizedCrop).
at::Tensor decode_image(const std::string& bytes, const std::string& name, int64_t channels,
                        int64_t height, int64_t width, JpegDecoder jpeg = JpegDecoder::kTurboJpeg,
                        const CropDraw& crop = {});

/// The width and height of an encoded image, and whether it is grey (1 channel), read from its
/// header alone; false when it is not an image amalgam reads.
bool image_header(const std::string& bytes, int* width, int* height, bool* grey);

}  // namespace amalgam
