// libFuzzer target: the IDX reader (gzipped or plain) must refuse any input with amalgam::Error,
// never crash, hang or allocate what the file does not hold.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "data/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/amalgam_fuzz_idx_" + std::to_string(getpid());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    const at::Tensor t = amalgam::read_idx(path);
    (void)t;
  } catch (const amalgam::Error&) {
  }
  return 0;
}
