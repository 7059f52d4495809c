// `amalgam shard`: writes a set of images (folders, shards, files) into WebDataset-style tar
// shards that --data reads as a transfer set, in the same order as the set they were made from.
#pragma once

#include <string>
#include <vector>

#include "data/image_file.h"
#include "data/tar_shards.h"

namespace amalgam {

/// What `amalgam shard` writes.
struct ShardCommand {
  std::vector<std::string> sources;  ///< --data: folders, shards or image files, in order
  std::string out;                   ///< --out: the folder the shards go to
  ShardWriterOptions writer;         ///< --images-per-shard, --prefix
  BadImagePolicy on_bad_image = BadImagePolicy::kFail;  ///< a truncated source shard
};

/// Writes the shards and prints the --data pattern that reads them back.
int run_shard(const ShardCommand& command);

}  // namespace amalgam
