// libFuzzer target: the IDX reader (gzipped or plain) must refuse any input with amalgam::Error,
// never crash, hang or allocate what the file does not hold.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/idx.h"
#include "fuzz_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = amalgam_fuzz::write_input("input.idx", data, size);
  try {
    const at::Tensor t = amalgam::read_idx(path);
    (void)t;
  } catch (const amalgam::Error&) {
  }
  return 0;
}
