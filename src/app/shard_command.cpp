#include "app/shard_command.h"

#include <cstdio>
#include <filesystem>

#include "core/log.h"
#include "data/image_folder.h"

namespace amalgam {

int run_shard(const ShardCommand& c) {
  const std::vector<ImageFile> images = list_image_roots(c.sources, c.on_bad_image);
  log_info("shard: " + std::to_string(images.size()) + " images into shards of " +
           std::to_string(c.writer.images_per_shard));
  const std::vector<std::string> shards = write_shards(images, c.out, c.writer);
  const auto last = static_cast<int64_t>(shards.size()) - 1;
  char range[64];
  std::snprintf(range, sizeof range, "-{%06d..%06lld}.tar", 0, static_cast<long long>(last));
  const std::string pattern =
      (std::filesystem::path(c.out) / (c.writer.prefix + (last == 0 ? "-000000.tar" : range)))
          .string();
  std::printf("wrote %zu images into %zu shard(s); read them with --data '%s'\n", images.size(),
              shards.size(), pattern.c_str());
  return 0;
}

}  // namespace amalgam
