// WebDataset-style tar shards: uncompressed tar files whose members are KEY.jpg, KEY.png, ...
// (KEY.cls and other members beside them are left alone). amalgam indexes a shard's image members
// once (libarchive reads the headers) and reads each member in place, so a shard streams exactly
// as a folder of the same files does: same order, same batches, same resume.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/image_file.h"

namespace amalgam {

/// Whether `path` names a tar shard: a file whose name ends in .tar.
bool is_tar_shard_name(const std::string& path);

/// WebDataset's brace notation: "train-{0000..0099}.tar" names train-0000.tar ... train-0099.tar
/// (numbers as wide as the first one); text without braces names itself. Throws Error naming
/// `option` when a range is malformed or runs backwards.
std::vector<std::string> expand_shard_pattern(const std::string& text, const std::string& option);

/// The image members of the uncompressed tar shard at `path`, in the shard's order. Throws Error
/// naming the shard (and the member, when one is cut short) when it is missing, compressed, not a
/// tar file, truncated or holds no image; under kSkip a truncated shard keeps the members before
/// the damage, with a warning.
std::vector<ImageFile> list_shard_images(const std::string& path, BadImagePolicy policy);

/// How write_shards splits a set.
struct ShardWriterOptions {
  int64_t images_per_shard = 10000;  ///< members per shard (the last shard may hold fewer)
  std::string prefix = "shard";      ///< shards are named PREFIX-000000.tar, PREFIX-000001.tar, ...
};

/// Writes `images` in order into tar shards under `out_dir` (created if missing), each image as
/// member KEY.EXT (KEY its position, 8 digits; EXT its own extension, lower case), and returns the
/// shards' paths. Throws Error when `out_dir` already holds shards of that prefix or an image
/// cannot be read; shards are written under temporary names and renamed when complete, and on
/// an error none of this call's shards is left.
std::vector<std::string> write_shards(const std::vector<ImageFile>& images,
                                      const std::string& out_dir,
                                      const ShardWriterOptions& options = {});

}  // namespace amalgam
