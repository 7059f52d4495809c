#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "models/checkpoint.h"
#include "models/zoo.h"
#include "teachers/teacher.h"

using namespace amalgam;

namespace {

std::string temp_dir() {
  const auto dir = std::filesystem::temp_directory_path() / "amalgam_test_models";
  std::filesystem::create_directories(dir);
  return dir.string();
}

ModelSpec spec_of(const std::string& arch, int64_t classes) {
  ModelSpec s;
  s.arch = arch;
  s.width = 8;
  s.num_classes = classes;
  return s;
}

}  // namespace

TEST(Zoo, EveryFamilyReturnsFeatureMapAndLogits) {
  torch::manual_seed(0);
  std::set<std::vector<int64_t>> feature_shapes;
  std::set<int64_t> parameter_counts;
  for (const auto& arch : zoo_architectures()) {
    Network net = make_network(spec_of(arch, 5));
    const auto out = net->forward(torch::rand({3, 1, 28, 28}));
    ASSERT_EQ(out.features.dim(), 4) << arch;
    EXPECT_EQ(out.features.size(0), 3) << arch;
    EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{3, 5})) << arch;
    const auto shape = feature_shape(*net);
    EXPECT_EQ(shape, (std::vector<int64_t>{out.features.size(1), out.features.size(2),
                                           out.features.size(3)}));
    feature_shapes.insert(shape);
    parameter_counts.insert(count_parameters(*net));
    EXPECT_FALSE(net->head_parameters().empty());
    EXPECT_EQ(net->head_parameters().size() + net->backbone_parameters().size(),
              net->parameters().size());
  }
  EXPECT_EQ(parameter_counts.size(), 3u) << "families must differ in architecture";
  EXPECT_THROW(make_network(spec_of("transformer", 5)), Error);
}

TEST(Zoo, WidthAndDepthChangeTheNetwork) {
  ModelSpec small = spec_of("resnet", 4), wide = small, deep = small;
  wide.width = 16;
  deep.depth = 2;
  const auto n_small = count_parameters(*make_network(small));
  EXPECT_GT(count_parameters(*make_network(wide)), n_small);
  EXPECT_GT(count_parameters(*make_network(deep)), n_small);
}

TEST(Checkpoint, TeacherRoundTripsWithSidecar) {
  torch::manual_seed(1);
  const ModelSpec spec = spec_of("vgg", 3);
  Network net = make_network(spec);
  net->eval();
  const auto x = torch::rand({2, 1, 28, 28});
  const auto expected = net->forward(x).logits;
  const std::string path = temp_dir() + "/t.pt";
  save_teacher(*net, spec, parse_task("T=2,4,6"), path, {{"note", "test"}});
  const Teacher back = load_teacher(path, c10::Device(c10::kCPU));
  EXPECT_EQ(back.task.classes, (std::vector<int64_t>{2, 4, 6}));
  EXPECT_TRUE(torch::equal(back.network->forward(x).logits, expected));  // the same weights and ops
  for (const auto& p : back.network->parameters()) EXPECT_FALSE(p.requires_grad());
}

TEST(Checkpoint, RejectsFilesThatAreNotOurs) {
  const std::string dir = temp_dir();
  std::ofstream(dir + "/junk.pt") << "not a model";
  std::ofstream(dir + "/junk.json") << R"({"format":"amalgam-network","model":{"arch":"resnet",
    "width":8,"depth":1,"stages":3,"expansion":4,"num_classes":3,"input":{"channels":1,
    "height":28,"width":28,"mean":[0.5],"std":[0.5]}},"task":{"name":"T","classes":[0,1,2]}})";
  try {
    load_teacher(dir + "/junk.pt", c10::Device(c10::kCPU));
    FAIL() << "junk loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.pt"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_teacher(dir + "/absent.pt", c10::Device(c10::kCPU)), Error);
}
