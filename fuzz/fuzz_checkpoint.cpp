// libFuzzer target: a run checkpoint as --resume reads it (load_run_checkpoint_bytes) into a
// small student and its optimiser. The first byte picks what the rest is: even, the file's bytes
// (header, length, CRC, then LibTorch's archive); odd, the progress record (JSON) inside a
// well-formed checkpoint, so the fuzzer reaches the record's reader past the checksum. Any input
// must load or end in amalgam::Error, never crash. AMALGAM_FUZZ_WRITE_SEED=DIR writes both kinds
// of seed there and exits.
#include <torch/torch.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "core/error.h"
#include "training/run_checkpoint.h"

namespace {

struct Run {
  torch::nn::Linear student{torch::nn::LinearOptions(3, 2)};
  amalgam::ScheduledAdam optimizer{{{student->parameters(), 1.0}}, amalgam::TrainOptions{}, 4};
  amalgam::RunModules modules() { return {student.get(), nullptr, &optimizer}; }
};

const nlohmann::json kFingerprint = {{"fuzz", 1}};

// A checkpoint as save_run_checkpoint writes it, with `progress` as its progress record.
std::string checkpoint_with(Run& run, const std::string& progress) {
  torch::serialize::OutputArchive root, student, optimizer;
  root.write("format", c10::IValue(std::string("amalgam-run-checkpoint")));
  root.write("progress", c10::IValue(progress));
  run.student->save(student);
  root.write("student", student);
  run.optimizer.save(optimizer);
  root.write("optimizer", optimizer);
  root.write("cpu_generator", at::detail::getDefaultCPUGenerator().get_state());
  std::ostringstream bytes;
  root.save_to(bytes);
  return amalgam::seal_run_checkpoint(bytes.str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("AMALGAM_FUZZ_WRITE_SEED")) {
    Run run;
    amalgam::RunProgress progress;
    progress.epoch = 1;
    progress.step = 2;
    progress.global_step = 6;
    progress.seen = 256;
    progress.partial.add("total", 0.5);
    progress.history.push_back({});
    const std::string file = std::string(dir) + "/run.pt";
    amalgam::save_run_checkpoint(file, run.modules(), progress, kFingerprint);
    std::ifstream in(file, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    std::ofstream(std::string(dir) + "/file", std::ios::binary) << '\0' << bytes.str();
    const nlohmann::json record = {{"epoch", 1},
                                   {"step", 2},
                                   {"global_step", 6},
                                   {"partial", {{"total", 0.5}}},
                                   {"seen", 256},
                                   {"history", nlohmann::json::array()},
                                   {"fingerprint", kFingerprint}};
    std::ofstream(std::string(dir) + "/progress", std::ios::binary) << '\1' << record.dump();
    std::remove(file.c_str());
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Run run;
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const std::string bytes = data[0] % 2 == 0 ? rest : checkpoint_with(run, rest);
    (void)amalgam::load_run_checkpoint_bytes(bytes, "RUN/checkpoint.pt", run.modules(),
                                             kFingerprint);
  } catch (const amalgam::Error&) {
  }
  return 0;
}
