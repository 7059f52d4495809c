#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/idx.h"

using namespace amalgam;

namespace {

std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "amalgam_test_idx";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string error_of(const std::string& path) {
  try {
    read_idx(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Idx, RoundTripsGzippedAndPlain) {
  torch::manual_seed(0);
  const auto data = torch::randint(0, 256, {5, 3, 4}, torch::kUInt8);
  for (bool gzip : {true, false}) {
    const std::string path = temp_path(gzip ? "rt.idx.gz" : "rt.idx");
    write_idx(path, data, gzip);
    const auto back = read_idx(path);
    EXPECT_EQ(back.sizes(), data.sizes());
    EXPECT_TRUE(torch::equal(back, data));
  }
}

TEST(Idx, RejectsTruncatedFile) {
  // Header promises 2x3 bytes, only 4 follow.
  const std::string path = temp_path("truncated.idx");
  write_bytes(path, std::string("\0\0\x08\x02\0\0\0\x02\0\0\0\x03\x01\x02\x03\x04", 16));
  const std::string message = error_of(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
}

TEST(Idx, RejectsTruncatedGzip) {
  const std::string full = temp_path("full.idx.gz");
  write_idx(full, torch::randint(0, 256, {200, 28, 28}, torch::kUInt8), true);
  std::ifstream in(full, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = temp_path("cut.idx.gz");
  write_bytes(cut, bytes.substr(0, bytes.size() / 2));
  const std::string message = error_of(cut);
  EXPECT_NE(message.find(cut), std::string::npos) << message;
  EXPECT_TRUE(message.find("truncated") != std::string::npos ||
              message.find("corrupt") != std::string::npos)
      << message;
}

TEST(Idx, RejectsWrongMagicNumber) {
  const std::string path = temp_path("magic.idx");
  write_bytes(path, std::string("\x12\x34\x08\x01\0\0\0\x01\x07", 9));
  const std::string message = error_of(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("magic"), std::string::npos) << message;
}

TEST(Idx, RejectsTrailingBytesAndMissingFile) {
  const std::string path = temp_path("trailing.idx");
  write_bytes(path, std::string("\0\0\x08\x01\0\0\0\x02\x01\x02\x03", 11));
  EXPECT_NE(error_of(path).find("trailing"), std::string::npos);
  EXPECT_NE(error_of(temp_path("missing.idx")).find("cannot open"), std::string::npos);
}
