// libFuzzer target: a run's config.json as --resume reads it (read_run_config): any input must
// end in amalgam::Error naming the file, never a crash or another exception.
#include <cstdint>
#include <string>

#include "app/run_config.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)amalgam::read_run_config(text, "RUN/config.json");
  } catch (const amalgam::Error&) {
  }
  return 0;
}
