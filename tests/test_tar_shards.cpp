// Tar shards: WebDataset's brace ranges, members read in place from what write_shards wrote, and
// a shard cut short at any byte either refused naming it or read up to the damage, never past.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/tar_shards.h"
#include "test_util.h"

namespace amalgam {
namespace {

using test::error_of;

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST(TarShards, BraceRangesExpandAsWebDatasetsNotation) {
  EXPECT_EQ(expand_shard_pattern("d/a-{08..11}.tar", "--data"),
            (std::vector<std::string>{"d/a-08.tar", "d/a-09.tar", "d/a-10.tar", "d/a-11.tar"}));
  EXPECT_EQ(expand_shard_pattern("x{1..2}-{0..1}.tar", "--data"),
            (std::vector<std::string>{"x1-0.tar", "x1-1.tar", "x2-0.tar", "x2-1.tar"}));
  EXPECT_EQ(expand_shard_pattern("plain/folder", "--data"),
            (std::vector<std::string>{"plain/folder"}));
  EXPECT_HAS(error_of([] { expand_shard_pattern("a-{a..b}.tar", "--data"); }),
             "--data: 'a-{a..b}.tar': a range's ends must be numbers");
  EXPECT_HAS(error_of([] { expand_shard_pattern("a-{3..1}.tar", "--data"); }),
             "the range runs backwards");
  EXPECT_HAS(error_of([] { expand_shard_pattern("a-{3.tar", "--data"); }), "expected a range");
}

// Five "images" (any bytes: listing and reading never decode) written as files.
std::vector<ImageFile> write_sources(const std::string& dir, std::vector<std::string>* contents) {
  std::vector<ImageFile> files;
  for (int i = 0; i < 5; ++i) {
    const std::string path = dir + "/src" + std::to_string(i) + (i % 2 ? ".JPG" : ".png");
    contents->push_back(
        std::string(static_cast<size_t>(300 + 517 * i), static_cast<char>('a' + i)));
    std::ofstream(path, std::ios::binary) << contents->back();
    files.emplace_back(path);
  }
  return files;
}

TEST(TarShards, WrittenShardsReadBackInPlaceInOrder) {
  const std::string dir = test::temp_dir("tar_shards_roundtrip");
  std::vector<std::string> contents;
  const std::vector<ImageFile> sources = write_sources(dir, &contents);
  const auto shards = write_shards(sources, dir + "/out", {.images_per_shard = 2, .prefix = "t"});
  ASSERT_EQ(shards, (std::vector<std::string>{dir + "/out/t-000000.tar", dir + "/out/t-000001.tar",
                                              dir + "/out/t-000002.tar"}));
  std::vector<ImageFile> members;
  for (const auto& shard : shards)
    for (const auto& member : list_shard_images(shard, BadImagePolicy::kFail))
      members.push_back(member);
  ASSERT_EQ(members.size(), 5u);
  EXPECT_EQ(members[1].member, "00000001.jpg");  // the key is the position, the extension kept
  EXPECT_EQ(members[4].name(), dir + "/out/t-000002.tar:00000004.png");
  for (size_t i = 0; i < members.size(); ++i) EXPECT_EQ(read_image_bytes(members[i]), contents[i]);
  EXPECT_HAS(error_of([&] { write_shards(sources, dir + "/out", {.prefix = "t"}); }),
             "already holds shards");
}

TEST(TarShards, AShardCutAtAnyByteIsRefusedOrReadUpToTheDamage) {
  const std::string dir = test::temp_dir("tar_shards_cut");
  std::vector<std::string> contents;
  const auto shard = write_shards(write_sources(dir, &contents), dir + "/out").front();
  std::ifstream in(shard, std::ios::binary);
  const std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = dir + "/cut.tar";
  for (size_t length = 0; length < whole.size(); length += 97) {
    std::ofstream(cut, std::ios::binary | std::ios::trunc) << whole.substr(0, length);
    const std::string failed = error_of([&] { list_shard_images(cut, BadImagePolicy::kFail); });
    if (failed.empty()) {  // cut after the last member: only tar's end blocks are missing
      const auto members = list_shard_images(cut, BadImagePolicy::kFail);
      ASSERT_EQ(members.size(), contents.size()) << "cut at " << length;
      EXPECT_EQ(read_image_bytes(members.back()), contents.back());
      continue;
    }
    EXPECT_HAS(failed, cut) << "cut at " << length;
    std::vector<ImageFile> kept;
    try {
      kept = list_shard_images(cut, BadImagePolicy::kSkip);
    } catch (const Error& e) {  // nothing before the damage: refused, naming the shard
      EXPECT_HAS(std::string(e.what()), cut);
      continue;
    }
    for (size_t i = 0; i < kept.size(); ++i)  // every member kept reads whole
      EXPECT_EQ(read_image_bytes(kept[i]), contents[i]) << "cut at " << length;
  }
}

}  // namespace
}  // namespace amalgam
