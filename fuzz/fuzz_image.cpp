// libFuzzer target: image decoding (stb) and resizing must refuse any input with amalgam::Error,
// never crash.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/image_folder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  for (const auto& [c, h, w] : {std::tuple<int64_t, int64_t, int64_t>{3, 16, 16}, {1, 7, 30}}) {
    try {
      const at::Tensor image = amalgam::decode_image(bytes, "fuzz input", c, h, w);
      (void)image;
    } catch (const amalgam::Error&) {
    }
  }
  return 0;
}
