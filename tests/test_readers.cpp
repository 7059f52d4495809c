// The readers of bytes a user or a crash hands us: JSON with the wrong type, an unknown key or a
// truncated end must fail with one line naming the file and the key (issue 20).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>

#include "app/run_config.h"
#include "core/error.h"
#include "core/json_file.h"
#include "data/head_layout.h"
#include "data/image_folder.h"
#include "reporting/report.h"
#include "reporting/run_files.h"
#include "teachers/conventions.h"
#include "test_util.h"
#include "training/options_json.h"
#include "training/run_checkpoint.h"

namespace amalgam {
namespace {

using test::error_of;

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST(JsonReaders, FieldsNameTheFileAndKeyOfAWrongType) {
  const nlohmann::json j = {{"epoch", "3"}, {"flag", true}, {"lr", 1}};
  const JsonFields f(j, "run/x.json");
  EXPECT_HAS(error_of([&] { f.get<int64_t>("epoch"); }),
             "run/x.json: \"epoch\" must be an integer, got a string");
  // true is not read as 1, nor 1 as a string; an integer is a number.
  EXPECT_HAS(error_of([&] { f.get<int>("flag"); }), "\"flag\" must be an integer");
  EXPECT_HAS(error_of([&] { f.get<std::string>("lr"); }), "\"lr\" must be a string");
  EXPECT_EQ(f.get<double>("lr"), 1.0);
  EXPECT_HAS(error_of([&] { f.get<int>("missing"); }), "run/x.json: key \"missing\" is missing");
  EXPECT_EQ(f.get<int>("missing", 7), 7);
  EXPECT_HAS(error_of([&] { JsonFields(nlohmann::json::array(), "a.json"); }),
             "a.json: expected a JSON object, got a list");
}

TEST(JsonReaders, UnknownKeysAreRefusedWithTheKeyMeant) {
  const nlohmann::json j = {{"epochz", 1}};
  EXPECT_HAS(error_of([&] {
               check_keys(j, {"epochs", "lr"}, "c.json");
             }),
             "c.json: unknown key \"epochz\"; did you mean epochs?");
  EXPECT_EQ(error_of([&] { check_keys({{"lr", 1}}, {"epochs", "lr"}, "c.json"); }), "");
}

TEST(JsonReaders, ATruncatedFileIsNamed) {
  EXPECT_HAS(error_of([] { parse_json("{\"a\": [1, 2", "run/config.json"); }),
             "run/config.json: not valid JSON (truncated or damaged?)");
  EXPECT_HAS(error_of([] { parse_json("", "empty.json"); }), "empty.json: not valid JSON");
}

// Found by fuzz_sidecar, fuzz_cli_config, fuzz_run_config and fuzz_report: a number beyond a
// double's range made the JSON library throw out_of_range, which no reader caught.
TEST(Fuzzed, ANumberBeyondADoubleIsRefusedAsInvalidJson) {
  EXPECT_HAS(error_of([] { parse_json("{\"task\": 1e400}", "side.json"); }),
             "side.json: not valid JSON (truncated or damaged?): number overflow");
  EXPECT_HAS(error_of([] { read_run_config("{\"epochs\": 31e400}", "R/config.json"); }),
             "R/config.json: not valid JSON");
}

TEST(JsonReaders, StructsAreReadStrictlyByPath) {
  EXPECT_EQ(read_struct<TrainOptions>({{"lr", 0.5}}, "f").lr, 0.5);
  EXPECT_EQ(read_struct<TrainOptions>({{"lr", 0.5}}, "f").epochs, TrainOptions().epochs);
  EXPECT_HAS(error_of([] {
               read_struct<TrainOptions>({{"lr", "fast"}}, "f");
             }),
             "f: \"lr\" must be a number, got a string");
  EXPECT_HAS(error_of([] {
               read_struct<TrainOptions>({{"epochs", 2.5}}, "f");
             }),
             "\"epochs\" must be an integer");
  EXPECT_HAS(error_of([] {
               read_struct<TrainOptions>({{"augment", {{"flipp", true}}}}, "f");
             }),
             "f \"augment\": unknown key \"flipp\"");
  // An error of the type's own reader gets the path too.
  EXPECT_HAS(error_of([] {
               read_struct<TrainOptions>({{"schedule", "cosin"}}, "f");
             }),
             "f: \"schedule\": --schedule: expected cosine");
}

AmalgamateCommand a_run() {
  AmalgamateCommand c;
  c.teachers = {"a.pt", "b.pt"};
  c.data.source.dirs = {"images"};
  c.val_dir = "val";
  c.config.train.epochs = 3;
  return c;
}

TEST(TeachConfig, RoundTripsAndNamesEveryFault) {
  TeachCommand c;
  c.data.source.dirs = {"/data/fmnist"};
  c.model.arch = "vgg";
  c.task = "A=0-4";
  c.train.epochs = 7;
  c.checkpoint_every = 9;
  const nlohmann::json good = teach_config(c);
  const TeachCommand back = read_teach_config(good.dump(), "T/config.json");
  EXPECT_EQ(back.model.arch, "vgg");
  EXPECT_EQ(back.task, "A=0-4");
  EXPECT_EQ(back.train.epochs, 7);
  EXPECT_EQ(back.train.head_lr_mult, teach_defaults().head_lr_mult);
  EXPECT_EQ(back.checkpoint_every, 9);
  EXPECT_EQ(back.data.source.dirs, c.data.source.dirs);
  const auto fault = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = good;
    edit(j);
    return error_of([&] { read_teach_config(j.dump(), "T/config.json"); });
  };
  EXPECT_HAS(fault([](auto& j) { j["command"] = "amalgamate"; }),
             "continue that run with amalgam amalgamate --resume");
  EXPECT_HAS(fault([](auto& j) { j["taks"] = j["task"]; }),
             "T/config.json: unknown key \"taks\"; did you mean task?");
  EXPECT_HAS(fault([](auto& j) { j["train"]["epochs"] = "7"; }),
             "T/config.json \"train\": \"epochs\" must be an integer, got a string");
  EXPECT_HAS(fault([](auto& j) { j["train"]["lr"] = -1; }), "T/config.json \"train\": --lr");
  EXPECT_HAS(fault([](auto& j) { j["checkpoint_every"] = -1; }), "\"checkpoint_every\"");
  EXPECT_HAS(fault([](auto& j) { j.erase("model"); }), "T/config.json: key \"model\" is missing");
}

TEST(RunConfig, RoundTripsAndNamesEveryFault) {
  const nlohmann::json good = run_config(a_run(), 1);
  const RecordedRun run = read_run_config(good.dump(), "R/config.json");
  EXPECT_EQ(run.command.teachers, a_run().teachers);
  EXPECT_EQ(run.command.config.train.epochs, 3);
  EXPECT_EQ(run.command.val_dir, "val");
  EXPECT_EQ(run.command.data.source.dirs, a_run().data.source.dirs);

  const auto fault = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = good;
    edit(j);
    return error_of([&] { read_run_config(j.dump(), "R/config.json"); });
  };
  EXPECT_HAS(fault([](auto& j) { j["options"]["train"]["epochs"] = "3"; }),
             "R/config.json \"options\": \"train.epochs\" must be an integer, got a string");
  EXPECT_HAS(fault([](auto& j) { j["teacher"] = j["teachers"]; }),
             "R/config.json: unknown key \"teacher\"; did you mean teachers?");
  EXPECT_HAS(fault([](auto& j) { j["options"]["objective"]["lambda_kdd"] = 1; }),
             "unknown key \"lambda_kdd\"; did you mean lambda_kd?");
  EXPECT_HAS(fault([](auto& j) { j.erase("teachers"); }),
             "R/config.json: key \"teachers\" is missing");
  EXPECT_HAS(fault([](auto& j) { j["teachers"] = {1, 2}; }), "\"teachers\"");
  EXPECT_HAS(fault([](auto& j) { j["command"] = "teach"; }),
             "R/config.json: \"command\" is \"teach\", not \"amalgamate\": continue that run "
             "with amalgam teach --resume");
  EXPECT_HAS(fault([](auto& j) { j["command"] = "predict"; }), "not the config of an amalgam run");
  EXPECT_HAS(fault([](auto& j) { j["options"]["train"]["lr"] = -1; }),
             "R/config.json \"options\": --lr");
  EXPECT_HAS(fault([](auto& j) { j["data"]["on_bad_image"] = "ignore"; }), "\"on_bad_image\"");
  const std::string text = good.dump();
  EXPECT_HAS(error_of([&] { read_run_config(text.substr(0, text.size() / 2), "R/config.json"); }),
             "R/config.json: not valid JSON (truncated");
}

const char* const kConfig = R"({"command": "amalgamate", "teachers": ["a.pt"],
                                "options": {"objective": {"method": "cfl"}}})";
const char* const kMetrics =
    R"({"type": "teachers", "val": {"A": 0.9, "union": 0.7}}
{"type": "step", "epoch": 1, "step": 1, "global_step": 1, "loss": {"total": 1.0}, "lrs": [0.001], "images_per_second": 50}
{"type": "epoch", "epoch": 1, "loss": {"total": 0.9}, "seconds": 2, "images_per_second": 50, "val": {"A": 0.8}}
{"type": "summary", "student": "resnet", "student_params": 10, "seconds": 2, "student_val": {"A": 0.8}, "routing_rule": "concatenated", "routing_agreement": 0.25}
)";
const char* const kEmbedding =
    R"({"colour_by": "class", "maps": {"student": [{"x": 0, "y": 1, "class": 2, "group": 0}]}})";

TEST(RunFiles, WhatParsesRendersAndEveryFaultIsNamedByLineAndKey) {
  const RunFiles files = parse_run_files(kConfig, kMetrics, kEmbedding, "R");
  EXPECT_EQ(files.metrics.size(), 4u);
  EXPECT_HAS(render_report(files.config, files.metrics, files.embedding), "student, A");
  // One definition: a record read and written again is the line it was read from.
  std::istringstream lines(kMetrics);
  for (std::string line; std::getline(lines, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_EQ(metrics_json(read_metrics_record(j, "R")), j) << line;
  }

  const auto metrics_fault = [](const std::string& line3) {
    std::string m = kMetrics;
    const size_t a = m.find("{\"type\": \"epoch\"");
    m.replace(a, m.find('\n', a) - a, line3);
    return error_of([&] { parse_run_files(kConfig, m, "", "R"); });
  };
  EXPECT_HAS(metrics_fault(R"({"type": "epoch", "epoch": "1"})"),
             "R/metrics.jsonl line 3: \"epoch\" must be an integer, got a string");
  EXPECT_HAS(metrics_fault(R"({"type": "epoch", "epoch": 1, "vall": {}})"),
             "R/metrics.jsonl line 3: unknown key \"vall\"; did you mean val?");
  EXPECT_HAS(metrics_fault(R"({"type": "epoh", "epoch": 1})"), "did you mean epoch?");
  EXPECT_HAS(metrics_fault(R"({"type": "epoch", "epoch": 1, "val": {"A": 80}})"),
             "\"val\" \"A\" must be an accuracy in [0, 1]");
  EXPECT_HAS(metrics_fault(R"({"type": "epoch", "epoch": 1, "lo)"),
             "R/metrics.jsonl line 3: not valid JSON");
  EXPECT_HAS(metrics_fault(R"({"type": "summary", "routing_agreement": 3})"),
             "\"routing_agreement\" must be a correlation in [-1, 1]");
  // A demo's student folder is drawn like an amalgamate run's; a teach folder is refused by name.
  EXPECT_NO_THROW(parse_run_files(R"({"command": "demo", "teachers": ["a.pt"]})", "", "", "R"));
  EXPECT_HAS(error_of([] { parse_run_files(R"({"command": "teach"})", "", "", "R"); }),
             "R/config.json: \"command\" is \"teach\": report draws amalgamate and demo runs");
  EXPECT_HAS(error_of([] { parse_run_files("{\"command\": 1}", "", "", "R"); }),
             "R/config.json: \"command\" must be a string");
  EXPECT_HAS(error_of([] { parse_run_files(kConfig, "", R"({"maps": {"s": [{"x": 1}]}})", "R"); }),
             "R/embedding.json \"maps\" \"s\" point 0: key \"y\" is missing");
  EXPECT_HAS(error_of([] { parse_run_files(kConfig, "", R"({"map": {}})", "R"); }),
             "unknown key \"map\"; did you mean maps?");
  EXPECT_HAS(error_of([] {
               parse_run_files(kConfig, "", R"({"maps": {"s": [{"x": "1", "y": 0}]}})", "R");
             }),
             "point 0: \"x\" must be a number, got a string");
}

// Found by fuzz_image: an 18-byte TGA header claiming 2614x20532 pixels was decoded from
// padding for 10 s; it is refused before decoding.
TEST(Fuzzed, ATinyImageClaimingMegapixelsIsRefusedBeforeDecoding) {
  const unsigned char tga[] = {0x00, 0x00, 0x03, 0x00, 0x00, 0x50, 0x00, 0x00, 0x05,
                               0x00, 0x08, 0x36, 0x36, 0x0a, 0x34, 0x50, 0x20, 0x36};
  const std::string bytes(reinterpret_cast<const char*>(tga), sizeof tga);
  EXPECT_HAS(error_of([&] { decode_image(bytes, "bomb.tga", 1, 16, 16); }),
             "bomb.tga: the header claims 2614x20532 pixels, more than its 18 bytes can hold");
}

// Found by fuzz_sidecar: a class id of 4.4e104 in a head was read as an integer (undefined
// behaviour); a user's sidecar with a fractional or huge number where an integer belongs too.
TEST(Fuzzed, NumbersNoIntegerCanHoldAreRefusedByKey) {
  const nlohmann::json head =
      nlohmann::json::parse(R"([{"name": "A", "classes": [0, 4.4e104], "offset": 0}])");
  EXPECT_HAS(error_of([&] { read_struct<HeadLayout>(head, "s.json \"head\""); }),
             "s.json \"head\": \"0.classes.1\" is out of range");
  EXPECT_HAS(error_of([] {
               JsonFields(nlohmann::json{{"n", uint64_t{1} << 40}}, "f").get<int>("n");
             }),
             "f: \"n\" must be an integer");
  const std::string dir = ::testing::TempDir() + "/amalgam_fuzzed_sidecar";
  std::filesystem::create_directories(dir);
  InputConventions options;
  options.height = options.width = 28;
  std::ofstream(dir + "/a.json") << R"({"channels": 1e300})";
  EXPECT_HAS(error_of([&] { resolve_conventions(parse_model_ref(dir + "/a.pt"), options); }),
             "a.json: \"channels\" must be an integer");
  std::ofstream(dir + "/b.json") << R"({"input_size": [32.5, 32]})";
  EXPECT_HAS(error_of([&] { resolve_conventions(parse_model_ref(dir + "/b.pt"), options); }),
             "b.json: \"input_size\" must be N or [H, W]");
  std::ofstream(dir + "/c.json") << R"({"input_size": 100000})";
  EXPECT_HAS(error_of([&] { resolve_conventions(parse_model_ref(dir + "/c.pt"), options); }),
             "above 8192x8192");
}

TEST(UserSidecar, ATruncatedSidecarIsNamed) {
  const std::string dir = ::testing::TempDir() + "/amalgam_truncated_sidecar";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/net.json") << "{\"task\": \"clothing\", \"mean\": [0.5";
  InputConventions options;
  options.height = options.width = 28;
  EXPECT_HAS(error_of([&] { resolve_conventions(parse_model_ref(dir + "/net.pt"), options); }),
             dir + "/net.json: not valid JSON (truncated or damaged?)");
}

// A checkpoint whose progress record is `progress` (otherwise as save_run_checkpoint writes).
std::string checkpoint_with_progress(const std::string& progress) {
  torch::serialize::OutputArchive root;
  root.write("format", c10::IValue(std::string("amalgam-run-checkpoint")));
  root.write("progress", c10::IValue(progress));
  std::ostringstream bytes;
  root.save_to(bytes);
  return seal_run_checkpoint(bytes.str());
}

TEST(RunCheckpointFile, ADamagedProgressRecordIsNamedByKey) {
  torch::nn::Linear student(3, 2);
  ScheduledAdam optimizer({{student->parameters(), 1.0}}, TrainOptions{}, 4);
  const RunModules modules{student.get(), nullptr, &optimizer};
  const nlohmann::json fingerprint = {{"run", 1}};
  nlohmann::json good = {{"epoch", 1},
                         {"step", 2},
                         {"global_step", 6},
                         {"partial", {{"total", 1.5}}},
                         {"seen", 128},
                         {"history", nlohmann::json::array()},
                         {"fingerprint", fingerprint}};
  const auto load = [&](const nlohmann::json& progress) {
    return error_of([&] {
      load_run_checkpoint_bytes(checkpoint_with_progress(progress.dump()), "R/checkpoint.pt",
                                modules, fingerprint);
    });
  };
  nlohmann::json j = good;
  j["step"] = "2";
  EXPECT_HAS(load(j), "R/checkpoint.pt (progress record): \"step\" must be an integer");
  j = good;
  j["steps"] = 2;
  EXPECT_HAS(load(j), "unknown key \"steps\"");
  j = good;
  j["global_step"] = 1;
  EXPECT_HAS(load(j), "\"step\" exceeds \"global_step\"");
  j = good;
  j["partial"] = {{"total", "x"}};
  EXPECT_HAS(load(j), "\"partial\" holds \"total\", not a finite number");
  EXPECT_HAS(error_of([&] {
               load_run_checkpoint_bytes(checkpoint_with_progress(good.dump().substr(0, 20)),
                                         "R/checkpoint.pt", modules, fingerprint);
             }),
             "R/checkpoint.pt (progress record): not valid JSON");
}

// Found by fuzz_checkpoint: two changed bytes in a checkpoint made LibTorch's unpickler throw
// std::out_of_range, and other changes crash its reader (SIGSEGV). Every single-byte change of a
// real checkpoint must load or end in amalgam::Error naming the file.
TEST(Fuzzed, DamagedRunCheckpointBytesEndInAnErrorNamingTheFile) {
  torch::manual_seed(0);
  torch::nn::Linear student(3, 2);
  ScheduledAdam optimizer({{student->parameters(), 1.0}}, TrainOptions{}, 4);
  const RunModules modules{student.get(), nullptr, &optimizer};
  const nlohmann::json fingerprint = {{"run", 1}};
  const std::string path = ::testing::TempDir() + "/amalgam_fuzzed_checkpoint.pt";
  RunProgress progress;
  progress.partial.add("total", 0.5);
  save_run_checkpoint(path, modules, progress, fingerprint);
  std::ifstream in(path, std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  int refused = 0;
  for (size_t at = 0; at < good.size(); at += 7) {
    std::string bytes = good;
    bytes[at] = static_cast<char>(bytes[at] ^ 0x5a);
    try {
      load_run_checkpoint_bytes(bytes, "R/checkpoint.pt", modules, fingerprint);
    } catch (const Error& e) {
      EXPECT_HAS(std::string(e.what()), "R/checkpoint.pt");
      ++refused;
    }  // anything else fails the test
  }
  EXPECT_GT(refused, 0);
  EXPECT_HAS(error_of([&] {
               load_run_checkpoint_bytes(good.substr(0, good.size() - 1), "R/checkpoint.pt",
                                         modules, fingerprint);
             }),
             "R/checkpoint.pt: truncated or damaged run checkpoint");
}

}  // namespace
}  // namespace amalgam
