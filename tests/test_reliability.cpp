// Never lose work: run checkpoints resume bitwise, stop requests checkpoint first, damaged files
// are refused, and inputs found by fuzzing stay fixed.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/signals.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "experiments/experiment.h"
#include "models/zoo.h"
#include "teachers/teacher.h"
#include "test_util.h"
#include "training/amalgamate.h"
#include "training/run_checkpoint.h"

using namespace amalgam;
using amalgam::test::temp_dir;
namespace fs = std::filesystem;

namespace {

struct Setup {
  std::vector<Teacher> teachers;
  TransferSet transfer{torch::zeros({1, 1, 28, 28}, torch::kUInt8)};
};

// Random-weight teachers are enough: resuming must reproduce whatever the run computes.
const Setup& setup() {
  static const Setup s = [] {
    Setup s;
    torch::manual_seed(3);
    for (const auto& [task, arch] :
         std::vector<std::pair<std::string, std::string>>{{"A=0-4", "resnet"}, {"B=5-9", "vgg"}}) {
      ModelSpec spec = zoo_spec(arch, 8, 1);
      spec.num_classes = 5;
      s.teachers.push_back(make_teacher(make_network(spec), parse_task(task)));
    }
    s.transfer =
        TransferSet(load_idx_split(AMALGAM_FASHION_DIR, "test").images.slice(0, 0, 320).clone());
    return s;
  }();
  return s;
}

AmalgamateConfig config_for() {
  AmalgamateConfig o;
  o.student = zoo_spec("resnet", 8, 1);
  o.objective = method_config("routed-cfl");  // the common feature block must resume too
  o.objective.common_space->channels = 8;
  o.train.epochs = 3;
  o.train.batch_size = 32;
  o.train.augment.horizontal_flip = true;  // the augmentation draws must resume too
  o.checkpoint_every = 4;
  return o;
}

RunContext context_for(const std::string& checkpoint, bool resume = false) {
  RunContext context;
  context.checkpoint_path = checkpoint;
  context.resume = resume;
  return context;
}

void expect_bitwise_equal(const torch::nn::Module& a, const torch::nn::Module& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& p : pa) EXPECT_TRUE(p.value().equal(pb[p.key()])) << p.key();
  const auto ba = a.named_buffers(), bb = b.named_buffers();
  for (const auto& x : ba) EXPECT_TRUE(x.value().equal(bb[x.key()])) << x.key();
}

// Writes `bytes` as an IDX file; read_idx must refuse it with a message containing `expected`.
void expect_idx_refused(const unsigned char* bytes, size_t size, const std::string& expected) {
  const std::string path = temp_dir("fuzzed") + "/input.idx";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes), size);
  try {
    read_idx(path);
    FAIL() << "the IDX file must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Resume, StopAndResumeEqualsAnUninterruptedRunBitwise) {
  const std::string dir = temp_dir("resume");
  const AmalgamationResult full =
      amalgamate(setup().teachers, setup().transfer, config_for(), context_for(dir + "/full.pt"));

  // Stop mid-epoch (step 13 of 30: epoch 2, after the checkpoint at step 12) as SIGINT would.
  RunContext cut = context_for(dir + "/cut.pt");
  cut.hooks.on_step = [](const StepRecord& r) {
    if (r.global_step == 12) request_stop(SIGINT);
  };
  try {
    amalgamate(setup().teachers, setup().transfer, config_for(), cut);
    FAIL() << "a stop request must end the run";
  } catch (const Interrupted& e) {
    EXPECT_EQ(e.signal(), SIGINT);
    EXPECT_NE(std::string(e.what()).find("checkpoint written"), std::string::npos) << e.what();
  }
  clear_stop_request();
  const AmalgamationResult resumed = amalgamate(setup().teachers, setup().transfer, config_for(),
                                                context_for(dir + "/cut.pt", true));
  expect_bitwise_equal(*full.student, *resumed.student);
  expect_bitwise_equal(*full.objective, *resumed.objective);
  ASSERT_EQ(resumed.history.size(), 3u);
  for (size_t epoch : {1, 2})
    for (const auto& [term, value] : full.history[epoch].loss.terms())
      EXPECT_DOUBLE_EQ(resumed.history[epoch].loss.get(term), value) << term;
}

// --steps: exactly that many steps, the last epoch cut short, the cosine schedule ending with them.
TEST(Steps, ARunTakesExactlyItsStepsAndItsScheduleSpansThem) {
  AmalgamateConfig o = config_for();  // 10 steps an epoch
  o.train.steps = 17;
  int64_t steps = 0;
  double first_lr = 0, last_lr = 0;
  RunContext context;
  context.hooks.on_step = [&](const StepRecord& r) {
    ++steps;
    if (r.global_step == 0) first_lr = r.lrs.at(0);
    last_lr = r.lrs.at(0);
  };
  const AmalgamationResult r = amalgamate(setup().teachers, setup().transfer, o, context);
  EXPECT_EQ(steps, 17);
  EXPECT_EQ(r.history.size(), 2u);  // ceil(17 / 10) epochs
  EXPECT_DOUBLE_EQ(first_lr, o.train.lr);
  EXPECT_LT(last_lr, 0.01 * first_lr);  // step 16 of 17: 0.5 (1 + cos(16 pi / 17)) = 0.0085
  EXPECT_EQ(epochs_for(o.train, 300), 2);
  EXPECT_EQ(total_steps(o.train, 10), 17);
  o.train.steps = 0;
  EXPECT_EQ(total_steps(o.train, 10), o.train.epochs * 10);
}

TEST(Resume, RefusesForeignFilesAndOtherOptions) {
  const std::string dir = temp_dir("resume_refuse");
  AmalgamateConfig o = config_for();
  o.train.epochs = 1;
  amalgamate(setup().teachers, setup().transfer, o, context_for(dir + "/run.pt"));
  const RunContext resume = context_for(dir + "/run.pt", true);
  o.train.lr = 5e-3;  // resumable: a diverged run continues at a lower rate
  o.train.seed += 1;  // not resumable
  EXPECT_THROW(amalgamate(setup().teachers, setup().transfer, o, resume), Error);
  o.train.seed -= 1;
  o.train.lr = config_for().train.lr;
  o.log_every = 7;  // a resumable field: accepted
  EXPECT_NO_THROW(amalgamate(setup().teachers, setup().transfer, o, resume));
  std::ofstream(dir + "/junk.pt") << "not a checkpoint";
  EXPECT_THROW(
      amalgamate(setup().teachers, setup().transfer, o, context_for(dir + "/junk.pt", true)),
      Error);
  EXPECT_THROW(
      amalgamate(setup().teachers, setup().transfer, o, context_for(dir + "/absent.pt", true)),
      Error);
}

TEST(Fuzzed, IdxHeaderClaimingGigabytesIsRefusedAsTruncated) {
  // fuzz/run.sh found this 50-byte file: its header declares 3 x 764 x 2,359,296 bytes; the
  // reader used to allocate all of it before noticing the file ends.
  const unsigned char bytes[] = {0x00, 0x00, 0x08, 0x03, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,
                                 0x02, 0xfc, 0x00, 0x24, 0x00, 0x00, 0x05, 0x5f, 0x82, 0xc2,
                                 0xd9, 0xcf, 0xeb, 0x0f, 0xa3, 0x21, 0xd7, 0xd9, 0x82, 0xf8,
                                 0xbd, 0x10, 0x45, 0xb8, 0xe8, 0xcd, 0x4e, 0x1d, 0xf0, 0x42,
                                 0x13, 0xb6, 0x27, 0x3b, 0x04, 0x3b, 0x51, 0x00, 0x00, 0x08};
  expect_idx_refused(bytes, sizeof bytes, "truncated");
}

TEST(Fuzzed, GarbageImagesAreRefusedWithTheirName) {
  for (const std::string& bytes :
       {std::string("\x89PNG\r\n\x1a\n", 8) + std::string(30, '\0'),
        std::string("BM") + std::string(60, '\xff'), std::string("GIF89a\x01\x00\x01\x00", 10)}) {
    try {
      decode_image(bytes, "bad.img", 3, 8, 8);
      FAIL() << "garbage decoded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.img"), std::string::npos) << e.what();
    }
  }
}

TEST(Fuzzed, IdxDimensionsWhoseProductOverflowsAreRefused) {
  // fuzz/run.sh (UBSan) found this header: 4194307 x 526056 x 6 ... overflowed int64 while
  // multiplying the dimensions.
  const unsigned char bytes[] = {0x00, 0x00, 0x08, 0x03, 0x00, 0x40, 0x00, 0x03, 0x00,
                                 0x00, 0x08, 0x02, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x06,
                                 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x00};
  expect_idx_refused(bytes, sizeof bytes, "implausibly large");
}

TEST(Fuzzed, EmptyIdxArrayWithHugeSizesIsRefused) {
  // fuzz/run.sh found this 20-byte header on LibTorch 2.15: 1157638438 x 0 x 4211081215 x
  // 4294918461 holds no element, but allocating it threw c10::Error (stride overflow).
  const unsigned char bytes[] = {0x00, 0x00, 0x08, 0x04, 0x45, 0x00, 0x29, 0x26, 0x00, 0x00,
                                 0x00, 0x00, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0x41, 0x3d};
  expect_idx_refused(bytes, sizeof bytes, "implausibly large");
}

TEST(Fuzzed, PnmPromisingMorePixelsThanItHoldsIsRefused) {
  // fuzz/run.sh (ASan) found this 19-byte PGM: Debian's stb read past the buffer decoding it.
  const std::string crash = "P51157 55571 555711";
  EXPECT_THROW(decode_image(crash, "crash.pgm", 3, 16, 16), Error);
  EXPECT_THROW(decode_image("P5 4 4 255\n" + std::string(10, 'x'), "short.pgm", 1, 4, 4), Error);
  const at::Tensor fine = decode_image("P5 2 2 255\n" + std::string(4, '\x7f'), "ok.pgm", 1, 2, 2);
  EXPECT_EQ(fine.sum().item<int64_t>(), 4 * 127);
}

TEST(Fuzzed, PnmSizesThatOverflowAreRefused) {
  // fuzz/run.sh (UBSan) found sizes whose product overflowed in the PNM check itself.
  EXPECT_THROW(decode_image("P5 3131115557 5551710111 255\n", "big.pgm", 1, 4, 4), Error);
}
