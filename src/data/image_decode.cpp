#include "data/image_decode.h"

#include <stb_image.h>
#include <torch/torch.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <vector>

#include "core/error.h"

namespace amalgam {
namespace {

constexpr int64_t kMaxPixels = int64_t{1} << 26;  // 8192x8192: refuse larger before decoding

std::string failure_reason() {
  const char* reason = stbi_failure_reason();
  return reason != nullptr ? reason : "unknown reason";
}

// The size checks every format passes before its pixels are decoded.
void check_size(int w, int h, size_t bytes, const std::string& name) {
  AMALGAM_CHECK(
      w > 0 && h > 0 && int64_t{w} * h <= kMaxPixels,
      name + ": image size " + std::to_string(w) + "x" + std::to_string(h) + " is not supported");
  // A small file claiming a large image would be decoded from padding (fuzz_image: an 18-byte
  // TGA header asking for 2614x20532 took 10 s). No format packs more than about 8,256 pixels in
  // a byte (1-bit PNG at deflate's limit), so beyond the first megapixel 16,384 per byte is the
  // most a file can hold.
  AMALGAM_CHECK(int64_t{w} * h <= (int64_t{1} << 20) + 16384 * static_cast<int64_t>(bytes),
                name + ": the header claims " + std::to_string(w) + "x" + std::to_string(h) +
                    " pixels, more than its " + std::to_string(bytes) +
                    " bytes can hold (truncated or damaged?)");
}

// Binary PGM/PPM are checked here before stb sees them: Debian's stb reads past the buffer on
// a header that promises more pixels (or 16-bit samples) than the file holds (found by fuzzing).
void check_pnm(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 2 || bytes[0] != 'P' || (bytes[1] != '5' && bytes[1] != '6')) return;
  size_t pos = 2;
  int64_t values[3] = {0, 0, 0};
  for (int64_t& value : values) {
    while (pos < bytes.size() &&
           (std::isspace(static_cast<unsigned char>(bytes[pos])) || bytes[pos] == '#')) {
      if (bytes[pos] == '#')
        while (pos < bytes.size() && bytes[pos] != '\n') ++pos;
      else
        ++pos;
    }
    const size_t start = pos;
    while (pos < bytes.size() && std::isdigit(static_cast<unsigned char>(bytes[pos]))) {
      value = value * 10 + (bytes[pos++] - '0');
      if (value > (int64_t{1} << 30)) throw Error(name + ": corrupt PNM header: size too large");
    }
    if (pos == start) throw Error(name + ": corrupt PNM header");
  }
  ++pos;  // the single whitespace byte before the pixels
  const int64_t channels = bytes[1] == '5' ? 1 : 3;
  if (values[2] < 1 || values[2] > 255)
    throw Error(name + ": unsupported PNM: only 8-bit samples (maxval 1..255)");
  if (values[0] < 1 || values[1] < 1 || values[0] * values[1] > kMaxPixels ||
      static_cast<int64_t>(bytes.size()) - static_cast<int64_t>(pos) <
          values[0] * values[1] * channels)
    throw Error(name + ": truncated PNM: the header promises more pixels than the file holds");
}

// Decoded pixels, height x width x channels, before resizing, and the part to keep.
struct Pixels {
  std::vector<uint8_t> data;
  int width = 0, height = 0;
  CropBox box;  ///< in these pixels; empty (0 x 0) = all of them
};

// `box`, drawn on a full x full_w image, in the pixels of its scaled h x w decode.
CropBox scale_box(const CropBox& box, int64_t full_h, int64_t full_w, int64_t h, int64_t w) {
  CropBox out;
  out.top = std::min(h - 1, box.top * h / full_h);
  out.left = std::min(w - 1, box.left * w / full_w);
  out.height = std::clamp<int64_t>((box.height * h + full_h / 2) / full_h, 1, h - out.top);
  out.width = std::clamp<int64_t>((box.width * w + full_w / 2) / full_w, 1, w - out.left);
  return out;
}

// One TurboJPEG decompressor per thread: a handle is not safe to share, and making one per image
// costs more than the decode of a thumbnail.
tjhandle turbojpeg() {
  struct Handle {
    tjhandle handle = tjInitDecompress();
    ~Handle() {
      if (handle != nullptr) tjDestroy(handle);
    }
  };
  thread_local Handle decompressor;
  AMALGAM_CHECK(decompressor.handle != nullptr,
                std::string("cannot start libjpeg-turbo: ") + tjGetErrorStr2(nullptr));
  return decompressor.handle;
}

// The smallest of libjpeg-turbo's DCT scaling factors (1/8 .. 1) that still gives at least
// width x height, so a 24-megapixel photo read at 224 px decodes 1/64 of its pixels (bench:
// DCT scaling).
tjscalingfactor dct_scale(int w, int h, int64_t width, int64_t height) {
  int count = 0;
  const tjscalingfactor* factors = tjGetScalingFactors(&count);
  tjscalingfactor best = {1, 1};
  for (int i = 0; factors != nullptr && i < count; ++i) {
    const tjscalingfactor f = factors[i];
    if (f.num > f.denom || TJSCALED(w, f) < width || TJSCALED(h, f) < height) continue;
    if (TJSCALED(w, f) < TJSCALED(w, best)) best = f;
  }
  return best;
}

// stb_image's product of two 8-bit values scaled to 8 bits (its stbi__blinn_8x8).
uint8_t blinn(unsigned x, unsigned y) {
  const unsigned t = x * y + 128;
  return static_cast<uint8_t>((t + (t >> 8)) >> 8);
}

// Adobe CMYK/YCCK as libjpeg hands it over (inverted inks) to RGB, as stb_image does: R = C*K.
void cmyk_to_rgb(const std::vector<uint8_t>& cmyk, Pixels& out) {
  const size_t n = cmyk.size() / 4;
  out.data.resize(n * 3);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t k = cmyk[4 * i + 3];
    for (size_t c = 0; c < 3; ++c) out.data[3 * i + c] = blinn(cmyk[4 * i + c], k);
  }
}

// RGB to grey with stb_image's weights (77, 150, 29) / 256.
void rgb_to_grey(Pixels& p) {
  const size_t n = p.data.size() / 3;
  for (size_t i = 0; i < n; ++i)
    p.data[i] = static_cast<uint8_t>(
        (p.data[3 * i] * 77 + p.data[3 * i + 1] * 150 + p.data[3 * i + 2] * 29) >> 8);
  p.data.resize(n);
}

Pixels decode_jpeg(const std::string& bytes, const std::string& name, int64_t channels,
                   int64_t height, int64_t width, const CropDraw& crop) {
  tjhandle tj = turbojpeg();
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  int w = 0, h = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(tj, data, bytes.size(), &w, &h, &subsampling, &colorspace) != 0)
    throw Error(name + ": corrupt JPEG (" + tjGetErrorStr2(tj) + ")");
  check_size(w, h, bytes.size(), name);
  // A crop is drawn on the full image; the DCT scale must still give the box at least
  // height x width pixels.
  const CropBox box = crop ? crop(h, w) : CropBox{0, 0, h, w};
  const tjscalingfactor scale = dct_scale(w, h, (width * w + box.width - 1) / box.width,
                                          (height * h + box.height - 1) / box.height);
  Pixels out;
  out.width = TJSCALED(w, scale);
  out.height = TJSCALED(h, scale);
  if (crop) out.box = scale_box(box, h, w, out.height, out.width);
  const bool inks = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;  // libjpeg: no CMYK->RGB
  const int format = inks ? TJPF_CMYK : channels == 1 ? TJPF_GRAY : TJPF_RGB;
  std::vector<uint8_t> decoded(static_cast<size_t>(out.width) * out.height * tjPixelSize[format]);
  if (tjDecompress2(tj, data, bytes.size(), decoded.data(), out.width, 0, out.height, format, 0) !=
      0) {
    const std::string message = tjGetErrorStr2(tj);
    // A warning leaves a whole image (extraneous bytes, a damaged marker), except when the data
    // stops early: a cut-off download, whose missing rows libjpeg fills with grey.
    if (tjGetErrorCode(tj) != TJERR_WARNING || message.find("Premature end") != std::string::npos)
      throw Error(name + ": corrupt or truncated JPEG (" + message + ")");
  }
  if (!inks) {
    out.data = std::move(decoded);
    return out;
  }
  cmyk_to_rgb(decoded, out);
  if (channels == 1) rgb_to_grey(out);
  return out;
}

Pixels decode_with_stb(const std::string& bytes, const std::string& name, int64_t channels,
                       const CropDraw& crop) {
  check_pnm(bytes, name);
  int w = 0, h = 0, n = 0;
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int size = static_cast<int>(std::min<size_t>(bytes.size(), INT32_MAX));
  if (!stbi_info_from_memory(data, size, &w, &h, &n))
    throw Error(name + ": not a readable image (" + failure_reason() + ")");
  check_size(w, h, bytes.size(), name);
  stbi_uc* pixels = stbi_load_from_memory(data, size, &w, &h, &n, static_cast<int>(channels));
  if (pixels == nullptr) throw Error(name + ": corrupt image (" + failure_reason() + ")");
  Pixels out;
  out.width = w;
  out.height = h;
  out.data.assign(pixels, pixels + static_cast<size_t>(w) * h * channels);
  stbi_image_free(pixels);
  if (crop) out.box = crop(h, w);
  return out;
}

}  // namespace

ImageFormat sniff_image_format(const std::string& bytes) {
  static const std::string png("\x89PNG\r\n\x1a\n", 8);
  if (bytes.size() >= 3 && static_cast<uint8_t>(bytes[0]) == 0xFF &&
      static_cast<uint8_t>(bytes[1]) == 0xD8 && static_cast<uint8_t>(bytes[2]) == 0xFF)
    return ImageFormat::kJpeg;
  if (bytes.compare(0, png.size(), png) == 0) return ImageFormat::kPng;
  return ImageFormat::kOther;
}

bool image_header(const std::string& bytes, int* width, int* height, bool* grey) {
  if (sniff_image_format(bytes) == ImageFormat::kJpeg) {
    int subsampling = 0, colorspace = 0;
    if (tjDecompressHeader3(turbojpeg(), reinterpret_cast<const unsigned char*>(bytes.data()),
                            bytes.size(), width, height, &subsampling, &colorspace) != 0)
      return false;
    *grey = colorspace == TJCS_GRAY;
    return true;
  }
  int n = 0;
  if (!stbi_info_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                             static_cast<int>(std::min<size_t>(bytes.size(), INT32_MAX)), width,
                             height, &n))
    return false;
  *grey = n == 1 || n == 2;
  return true;
}

at::Tensor decode_image(const std::string& bytes, const std::string& name, int64_t channels,
                        int64_t height, int64_t width, JpegDecoder jpeg, const CropDraw& crop) {
  AMALGAM_CHECK(channels == 1 || channels == 3, name + ": can only decode to 1 or 3 channels");
  AMALGAM_CHECK(height > 0 && width > 0, name + ": target size must be positive");
  AMALGAM_CHECK(!bytes.empty(), name + ": empty file");
  const Pixels pixels =
      sniff_image_format(bytes) == ImageFormat::kJpeg && jpeg == JpegDecoder::kTurboJpeg
          ? decode_jpeg(bytes, name, channels, height, width, crop)
          : decode_with_stb(bytes, name, channels, crop);
  // [1,C,H,W] over the decoder's H x W x C buffer: ATen's channels-last layout, which its uint8
  // resize reads in place.
  at::Tensor decoded = torch::from_blob(const_cast<uint8_t*>(pixels.data.data()),
                                        {1, pixels.height, pixels.width, channels}, torch::kUInt8)
                           .permute({0, 3, 1, 2});
  if (crop) {
    const CropBox& box = pixels.box;
    decoded = decoded.slice(2, box.top, box.top + box.height)
                  .slice(3, box.left, box.left + box.width)
                  .contiguous(at::MemoryFormat::ChannelsLast);
    return at::_upsample_bilinear2d_aa(decoded, {height, width}, false)[0].contiguous();
  }
  if (pixels.width == width && pixels.height == height)  // a copy: `pixels` goes out of scope
    return decoded[0].clone(at::MemoryFormat::Contiguous);
  // Antialiased bilinear, torchvision's Resize on uint8 tensors (the same kernel): what users'
  // teachers were trained on, and 2x faster than stb_image_resize's float Mitchell filter
  // (bench/input_pipeline.sh).
  return at::_upsample_bilinear2d_aa(decoded, {height, width}, false)[0].contiguous();
}

}  // namespace amalgam
