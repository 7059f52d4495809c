// libFuzzer target: sidecars. A user's (resolve_conventions: task, class names, input size,
// channels, mean/std) and the entries amalgam's own sidecars hold ("model", "head", "input") must
// refuse any input with amalgam::Error naming the file, never crash or throw anything else.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/json_file.h"
#include "data/head_layout.h"
#include "fuzz_files.h"
#include "models/zoo.h"
#include "teachers/conventions.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  amalgam_fuzz::write_input("model.json", data, size);
  const std::string model = amalgam_fuzz::scratch_dir() + "/model.pt";
  try {
    amalgam::InputConventions options;
    options.height = options.width = 28;
    (void)amalgam::resolve_conventions(amalgam::parse_model_ref(model), options);
  } catch (const amalgam::Error&) {
  }
  try {
    const std::string side = amalgam_fuzz::scratch_dir() + "/model.json";
    const nlohmann::json meta = amalgam::read_json_file(side);
    const amalgam::JsonFields fields(meta, side);
    if (fields.has("model"))
      (void)amalgam::read_struct<amalgam::ModelSpec>(fields.at("model"), side);
    if (fields.has("head"))
      (void)amalgam::read_struct<amalgam::HeadLayout>(fields.at("head"), side);
    if (fields.has("input"))
      (void)amalgam::read_struct<amalgam::InputSpec>(fields.at("input"), side);
  } catch (const amalgam::Error&) {
  }
  return 0;
}
