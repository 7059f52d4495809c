// A user's models and files: layer taps on TorchScript modules, the TorchScript wrapper, export,
// image folders and augmentation. Modules are built here with torch::jit so no Python is needed.
#include <gtest/gtest.h>
#include <stb_image_write.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/augment.h"
#include "data/image_folder.h"
#include "models/checkpoint.h"
#include "models/export.h"
#include "models/layer_tap.h"
#include "models/torchscript_network.h"
#include "models/zoo.h"
#include "teachers/conventions.h"
#include "test_util.h"
#include "training/optimizer.h"

using namespace amalgam;
using amalgam::test::temp_dir;
namespace fs = std::filesystem;

namespace {

// A conv "body" (feature map) and a linear "head" (logits), as a user's scripted model would be.
torch::jit::Module user_module() {
  torch::manual_seed(0);
  torch::jit::Module body("__torch__.Body");
  body.register_parameter("weight", torch::randn({4, 3, 3, 3}) * 0.1, false);
  body.define(R"(
def forward(self, x):
    return torch.relu(torch.conv2d(x, self.weight, None, [2, 2], [1, 1]))
)");
  torch::jit::Module head("__torch__.Head");
  head.register_parameter("weight", torch::randn({5, 4}) * 0.1, false);
  head.define(R"(
def forward(self, x):
    return torch.matmul(torch.mean(x, [2, 3]), self.weight.t())
)");
  torch::jit::Module model("__torch__.Model");
  model.register_module("body", body);
  model.register_module("head", head);
  model.define(R"(
def features(self, x):
    return self.body.forward(x)

def forward(self, x):
    return self.head.forward(self.features(x))
)");
  return model;
}

InputSpec rgb(int64_t size) {
  InputSpec in;
  in.channels = 3;
  in.height = in.width = size;
  in.mean = {0.0, 0.0, 0.0};
  in.std = {1.0, 1.0, 1.0};
  return in;
}

void write_png(const std::string& path, int width, int height, int channels, uint8_t value) {
  std::vector<uint8_t> pixels(static_cast<size_t>(width * height * channels), value);
  fs::create_directories(fs::path(path).parent_path());
  ASSERT_TRUE(stbi_write_png(path.c_str(), width, height, channels, pixels.data(), 0));
}

}  // namespace

TEST(LayerTap, ReturnsTheSubmoduleOutputThroughHelperMethods) {
  torch::jit::Module model = user_module();
  const LayerTaps taps = tap_layers(model, {"body", "head", "nothing"});
  ASSERT_EQ(taps.tapped, (std::vector<std::string>{"body", "head"}));
  ASSERT_EQ(taps.untappable.size(), 1u);
  EXPECT_NE(taps.untappable[0].find("no such submodule"), std::string::npos);
  const at::Tensor x = torch::rand({2, 3, 8, 8});
  const auto out = (*taps.function)({model._ivalue(), x}).toTuple()->elements();
  const at::Tensor expected_body = model.attr("body").toModule().forward({x}).toTensor();
  EXPECT_TRUE(out[0].toTensor().equal(expected_body));
  EXPECT_TRUE(out[2].toTensor().equal(model.forward({x}).toTensor()));
  EXPECT_TRUE(out[1].toTensor().equal(out[2].toTensor()));
}

TEST(LayerTap, RefusesLayersCalledTwiceOrInsideControlFlow) {
  torch::jit::Module act("__torch__.Act");
  act.define("def forward(self, x):\n    return torch.relu(x)\n");
  torch::jit::Module twice("__torch__.Twice");
  twice.register_module("act", act);
  twice.define("def forward(self, x):\n    return self.act.forward(self.act.forward(x))\n");
  EXPECT_NE(tap_layers(twice, {"act"}).untappable.at(0).find("called 2 times"), std::string::npos);

  torch::jit::Module branchy("__torch__.Branchy");
  branchy.register_module("act", act.clone());
  branchy.define(R"(
def forward(self, x):
    if bool(x.sum() > 0):
        x = self.act.forward(x)
    return x
)");
  EXPECT_NE(tap_layers(branchy, {"act"}).untappable.at(0).find("control flow"), std::string::npos);
}

TEST(TorchScriptNetwork, SharesParametersWithTheModuleAndTrains) {
  // Its body returns [B,4,4,4] for 8x8 images: channels-first or -last cannot be told apart, so
  // the layout is declared (and without it, refused).
  EXPECT_THROW(TorchScriptNetworkImpl(user_module(), "body", rgb(8), "user.pt")
                   .forward(torch::rand({2, 3, 8, 8})),
               Error);
  auto net =
      std::make_shared<TorchScriptNetworkImpl>(user_module(), "body@nchw", rgb(8), "user.pt");
  EXPECT_EQ(net->tap(), "body@nchw");
  const auto out = net->forward(torch::rand({2, 3, 8, 8}));
  EXPECT_EQ(out.features.sizes(), (std::vector<int64_t>{2, 4, 4, 4}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 5}));
  ASSERT_EQ(net->parameters().size(), 2u);

  const at::Tensor before = net->module().attr("head").toModule().attr("weight").toTensor().clone();
  torch::optim::SGD sgd(net->parameters(), 0.1);
  net->forward(torch::rand({2, 3, 8, 8})).logits.sum().backward();
  sgd.step();
  const at::Tensor after = net->module().attr("head").toModule().attr("weight").toTensor();
  EXPECT_FALSE(after.equal(before)) << "an optimiser step must reach the TorchScript module";

  EXPECT_THROW(TorchScriptNetworkImpl(user_module(), "tail", rgb(8), "user.pt"), Error);
}

TEST(TorchScriptNetwork, CheckpointRoundTripKeepsLayerAndWeights) {
  const std::string dir = temp_dir("ts_checkpoint");
  auto net =
      std::make_shared<TorchScriptNetworkImpl>(user_module(), "body@nchw", rgb(8), "user.pt");
  ModelSpec spec;
  spec.arch = "torchscript";
  spec.layer = net->tap();
  spec.num_classes = 5;
  spec.input = rgb(8);
  save_network(*net, dir + "/s.pt", {{"model", spec}});
  const SavedNetwork back = load_network(dir + "/s.pt");
  const at::Tensor x = torch::rand({2, 3, 8, 8});
  net->eval();
  back.network->eval();
  // The same TorchScript module and weights: the same operations, bitwise.
  EXPECT_TRUE(back.network->forward(x).logits.equal(net->forward(x).logits));
  EXPECT_TRUE(back.network->forward(x).features.equal(net->forward(x).features));
}

TEST(Export, ZooNetworkReloadsWithTheSameLogitsAndTrainableParameters) {
  const std::string dir = temp_dir("export");
  ModelSpec spec;
  spec.arch = "mobilenetv2";
  spec.width = 8;
  spec.num_classes = 6;
  torch::manual_seed(1);
  Network net = make_network(spec);
  net->train();
  net->forward(torch::rand({8, 1, 28, 28}));  // moves BatchNorm statistics off their defaults
  export_torchscript(*net, dir + "/e.pt", {{"note", "test"}});
  ASSERT_TRUE(fs::exists(dir + "/e.json"));
  torch::jit::Module loaded = torch::jit::load(dir + "/e.pt");
  const at::Tensor x = torch::rand({3, 1, 28, 28});
  net->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor expected = net->forward(x).logits;
  // The export's forward is the zoo's own operations in TorchScript: bitwise.
  EXPECT_TRUE(loaded.forward({x}).toTensor().equal(expected));
  int64_t count = 0;
  for (const auto& p : loaded.parameters()) {
    count += p.numel();
    EXPECT_TRUE(p.requires_grad());
  }
  EXPECT_EQ(count, count_parameters(*net));
  EXPECT_TRUE(net->is_training() == false);

  // A module tree, as Python's nn.Module would be: named submodules, a feature map, BatchNorm that
  // trains in train mode, and the metadata inside the file.
  std::vector<std::string> names;
  for (const auto& m : loaded.named_modules()) names.push_back(m.name);
  EXPECT_NE(std::find(names.begin(), names.end(), "body.1.body.0.bn"), names.end());
  const at::Tensor features = loaded.get_method("features")({x}).toTensor();
  EXPECT_TRUE(features.equal(net->forward(x).features));
  EXPECT_FALSE(loaded.is_training());
  const auto running_mean = [&] {
    return loaded.attr("body")
        .toModule()
        .attr("0")
        .toModule()
        .attr("bn")
        .toModule()
        .attr("running_mean")
        .toTensor();
  };
  const at::Tensor running = running_mean().clone();
  loaded.train();
  loaded.forward({x});
  const at::Tensor moved = running_mean();
  EXPECT_GT((moved - running).abs().max().item<double>(), 0.0);
  torch::jit::ExtraFilesMap extra{{kExportMetadataFile, ""}};
  torch::jit::load(dir + "/e.pt", c10::nullopt, extra);
  EXPECT_EQ(nlohmann::json::parse(extra[kExportMetadataFile]).at("note"), "test");
}

TEST(ConformInput, EachNetworkGetsItsOwnGeometry) {
  const at::Tensor rgb = torch::rand({2, 3, 32, 32});
  InputSpec same;
  same.channels = 3;
  same.height = same.width = 32;
  EXPECT_TRUE(conform_input(rgb, same).is_same(rgb));  // nothing to do, nothing copied
  InputSpec grey = same;
  grey.channels = 1;
  grey.height = grey.width = 28;
  const at::Tensor small = conform_input(rgb, grey);
  EXPECT_EQ(small.sizes(), (std::vector<int64_t>{2, 1, 28, 28}));
  const at::Tensor luma = conform_input(rgb, InputSpec{1, 32, 32, {0.0}, {1.0}});
  const double want = (77 * rgb[0][0][5][7].item<double>() + 150 * rgb[0][1][5][7].item<double>() +
                       29 * rgb[0][2][5][7].item<double>()) /
                      256;
  // Exact weights (k / 256); 3 float32 products and 2 adds of positive terms: <= 3u of the sum.
  EXPECT_NEAR(luma[0][0][5][7].item<double>(), want, 3 * test::kFloat32Unit * want);
  const at::Tensor back = conform_input(luma, same);
  EXPECT_TRUE(torch::equal(back.select(1, 0), back.select(1, 2)));
}

TEST(ModelRef, OptionsAttachedToOneNetwork) {
  const ModelRef ref = parse_model_ref(
      "missing.pt,channels=1,input-size=28x30,mean=0.5,0.4,0.3,std=0.2,task=t,class-names=a,b");
  EXPECT_EQ(ref.path, "missing.pt");
  EXPECT_EQ(ref.input.channels, 1);
  EXPECT_EQ(ref.input.height, 28);
  EXPECT_EQ(ref.input.width, 30);
  EXPECT_EQ(ref.input.mean, (std::vector<double>{0.5, 0.4, 0.3}));
  EXPECT_EQ(ref.input.std, (std::vector<double>{0.2}));
  EXPECT_EQ(ref.task, "t");
  EXPECT_EQ(ref.class_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(parse_model_ref("plain.pt").has_options());
  EXPECT_THROW(parse_model_ref("m.pt,mean=x"), Error);
  EXPECT_THROW(parse_model_ref("m.pt,4"), Error);
  EXPECT_THROW(parse_model_ref("m.pt,size=4"), Error);
}

TEST(ImageFolder, DecodesGreyAndRgbToOneGeometry) {
  const std::string dir = temp_dir("images");
  write_png(dir + "/a/grey.png", 10, 6, 1, 200);
  write_png(dir + "/b/c/rgb.png", 4, 4, 3, 50);
  std::ofstream(dir + "/notes.txt") << "ignored";
  ImageFolderOptions options;
  options.channels = 3;
  options.height = options.width = 8;
  std::vector<ImageFile> files;
  const at::Tensor images = load_image_tree({dir}, options, &files);
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{2, 3, 8, 8}));
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(images[0].min().item<int>(), 200);  // grey replicated into three channels
  EXPECT_EQ(images[1].max().item<int>(), 50);
  options.channels = 0;
  options.height = options.width = 0;  // geometry of the first image
  EXPECT_EQ(load_image_tree({dir}, options).sizes(), (std::vector<int64_t>{2, 1, 6, 10}));
  EXPECT_FALSE(is_idx_folder(dir));
}

TEST(ImageFolder, CorruptFilesFailOrAreSkipped) {
  const std::string dir = temp_dir("corrupt");
  write_png(dir + "/good.png", 4, 4, 3, 1);
  std::ofstream(dir + "/bad.png") << "\x89PNG but not really";
  std::ofstream(dir + "/empty.jpg");
  ImageFolderOptions options;
  options.channels = 3;
  options.height = options.width = 4;
  try {
    load_image_tree({dir}, options);
    FAIL() << "a corrupt image must stop the run by default";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.png"), std::string::npos) << e.what();
  }
  options.on_bad_image = BadImagePolicy::kSkip;
  EXPECT_EQ(load_image_tree({dir}, options).size(0), 1);
  EXPECT_THROW(load_image_tree({dir + "/none"}, options), Error);
}

TEST(ImageFolder, LabeledFolderSortsClasses) {
  const std::string dir = temp_dir("labeled");
  write_png(dir + "/zebra/1.png", 4, 4, 1, 9);
  write_png(dir + "/ant/1.png", 4, 4, 1, 1);
  write_png(dir + "/ant/2.png", 4, 4, 1, 2);
  fs::create_directories(dir + "/empty_class");
  const LabeledFolder folder = load_labeled_folder(dir, {});
  EXPECT_EQ(folder.class_names, (std::vector<std::string>{"ant", "zebra"}));
  EXPECT_TRUE(folder.data.labels.equal(torch::tensor({0, 0, 1}, torch::kInt64)));
}

TEST(ImageFolder, ASymlinkLoopIsWalkedOnceAndEveryFileCountedOnce) {
  const std::string dir = temp_dir("symlink_loop");
  write_png(dir + "/sub/one.png", 4, 4, 1, 1);
  fs::create_directory_symlink("..", dir + "/sub/parent");  // a loop back to the root
  fs::create_directory_symlink("sub", dir + "/again");      // the same folder twice
  fs::create_symlink("sub/one.png", dir + "/alias.png");    // the same file twice
  std::ofstream(dir + "/photo.webp") << "RIFF";             // a format stb cannot read
  EXPECT_EQ(list_image_files(dir).size(), 1u);
  EXPECT_EQ(load_image_tree({dir}, {}).size(0), 1);
}

TEST(Augment, IsSeededAndKeepsShape) {
  const at::Tensor images = torch::rand({6, 3, 8, 8});
  AugmentOptions options;
  options.crop_padding = 2;
  options.horizontal_flip = true;
  const at::Tensor a = augment_batch(images, options, augment_seed(0, 1, 2));
  EXPECT_EQ(a.sizes(), images.sizes());
  EXPECT_TRUE(a.equal(augment_batch(images, options, augment_seed(0, 1, 2))));
  EXPECT_FALSE(a.equal(augment_batch(images, options, augment_seed(0, 1, 3))));
  options.crop_padding = 0;
  const at::Tensor flipped = augment_batch(images, options, 7);
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_TRUE(flipped[i].equal(images[i]) || flipped[i].equal(images[i].flip({2})));
  EXPECT_TRUE(augment_batch(images, AugmentOptions{}, 7).equal(images));
}

// Mixup: each image a convex mix of itself and one other image of the batch, seeded.
TEST(Augment, MixupMixesEachImageWithAnotherOfItsBatch) {
  const at::Tensor levels = torch::tensor({0.0f, 0.2f, 0.4f, 0.6f, 0.8f, 1.0f});
  const at::Tensor images = levels.view({6, 1, 1, 1}).expand({6, 1, 4, 4}).contiguous();
  AugmentOptions options;
  options.mixup_alpha = 0.4;
  const at::Tensor mixed = augment_batch(images, options, 11);
  EXPECT_TRUE(mixed.equal(augment_batch(images, options, 11)));
  EXPECT_FALSE(mixed.equal(augment_batch(images, options, 12)));
  EXPECT_FALSE(mixed.equal(images));
  // One partner per image, the same shift for the whole batch: image i mixes with i + s.
  const at::Tensor value = mixed.amax({1, 2, 3});
  EXPECT_TRUE(mixed.amin({1, 2, 3}).equal(value));  // still one level per image
  int found_shift = 0;
  for (int shift = 1; shift < 6 && found_shift == 0; ++shift) {
    const at::Tensor partner = levels.roll(-shift, 0);
    const at::Tensor lambda = (value - partner) / (levels - partner);
    // The mix rounds by <= 4u of values <= 1 and the difference by u more, over level gaps >= 0.2,
    // then 2u for the quotient: lambda recovered within 27u.
    const double slack = 27 * test::kFloat32Unit;
    if (((lambda >= -slack) & (lambda <= 1 + slack)).all().item<bool>()) found_shift = shift;
  }
  EXPECT_GT(found_shift, 0);
  options.mixup_alpha = -1;
  TrainOptions train;
  train.augment = options;
  EXPECT_THROW(validate(train), Error);
}
