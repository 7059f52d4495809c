#include "data/image_file.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"

namespace amalgam {

std::string lower_extension(const std::string& name) {
  std::string ext = std::filesystem::path(name).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext;
}

bool has_image_extension(const std::string& name) {
  const std::string ext = lower_extension(name);
  static const char* known[] = {".png", ".jpg", ".jpeg", ".bmp", ".gif",
                                ".tga", ".pgm", ".ppm",  ".pnm"};
  return std::any_of(std::begin(known), std::end(known), [&](const char* k) { return ext == k; });
}

bool is_apple_double(const std::string& name) {
  return std::filesystem::path(name).filename().string().rfind("._", 0) == 0;
}

std::string read_image_bytes(const ImageFile& image) {
  std::ifstream in(image.path, std::ios::binary);
  AMALGAM_CHECK(in.good(), image.path + ": cannot open");
  if (!image.in_shard())
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  // A member is read in place: one seek and one read, as a file of its own would be.
  std::string bytes(static_cast<size_t>(image.size), '\0');
  in.seekg(image.offset);
  in.read(bytes.data(), image.size);
  AMALGAM_CHECK(in.gcount() == image.size,
                image.name() + ": the shard ends inside this member (truncated shard)");
  return bytes;
}

}  // namespace amalgam
