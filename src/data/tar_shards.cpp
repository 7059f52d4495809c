#include "data/tar_shards.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/log.h"

namespace amalgam {
namespace fs = std::filesystem;
namespace {

using ReadArchive = std::unique_ptr<archive, decltype(&archive_read_free)>;
using WriteArchive = std::unique_ptr<archive, decltype(&archive_write_free)>;

std::string archive_message(archive* a) {
  const char* text = archive_error_string(a);
  return text != nullptr ? text : "unknown libarchive error";
}

bool all_digits(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(),
                                      [](unsigned char c) { return std::isdigit(c) != 0; });
}

}  // namespace

bool is_tar_shard_name(const std::string& path) {
  return lower_extension(path) == ".tar";
}

std::vector<std::string> expand_shard_pattern(const std::string& text, const std::string& option) {
  const size_t open = text.find('{');
  if (open == std::string::npos) return {text};
  const size_t close = text.find('}', open);
  const size_t dots = text.find("..", open);
  AMALGAM_CHECK(close != std::string::npos && dots != std::string::npos && dots < close,
                option + ": '" + text + "': expected a range such as shard-{0000..0099}.tar");
  const std::string first = text.substr(open + 1, dots - open - 1);
  const std::string last = text.substr(dots + 2, close - dots - 2);
  AMALGAM_CHECK(all_digits(first) && all_digits(last) && first.size() <= 18 && last.size() <= 18,
                option + ": '" + text + "': a range's ends must be numbers ({0000..0099})");
  const int64_t from = std::stoll(first), to = std::stoll(last);
  AMALGAM_CHECK(from <= to, option + ": '" + text + "': the range runs backwards");
  std::vector<std::string> names;
  for (int64_t i = from; i <= to; ++i) {
    std::string number = std::to_string(i);
    if (number.size() < first.size()) number.insert(0, first.size() - number.size(), '0');
    // A second range in the same text expands within each name.
    for (auto& name :
         expand_shard_pattern(text.substr(0, open) + number + text.substr(close + 1), option))
      names.push_back(std::move(name));
  }
  return names;
}

std::vector<ImageFile> list_shard_images(const std::string& path, BadImagePolicy policy) {
  std::error_code ec;
  AMALGAM_CHECK(fs::is_regular_file(path, ec), path + ": no such shard file");
  const auto file_size = static_cast<int64_t>(fs::file_size(path, ec));
  ReadArchive reader(archive_read_new(), &archive_read_free);
  archive_read_support_format_tar(reader.get());
  archive_read_support_filter_all(reader.get());  // only to name a compressed shard below
  AMALGAM_CHECK(archive_read_open_filename(reader.get(), path.c_str(), 1 << 16) == ARCHIVE_OK,
                path + ": cannot open as a tar shard: " + archive_message(reader.get()));
  std::vector<ImageFile> images;
  std::string damage, previous;  // previous: the last member whose header read ("" = none yet)
  archive_entry* entry = nullptr;
  for (;;) {
    const int status = archive_read_next_header(reader.get(), &entry);
    if (status == ARCHIVE_EOF) break;
    if (status < ARCHIVE_WARN) {
      AMALGAM_CHECK(!previous.empty(), path + ": not an uncompressed tar shard (" +
                                           archive_message(reader.get()) + ")");
      damage = path + ": truncated or damaged after member " + previous + " (" +
               archive_message(reader.get()) + ")";
      break;
    }
    AMALGAM_CHECK(archive_filter_code(reader.get(), 0) == ARCHIVE_FILTER_NONE,
                  path + ": a compressed (" + archive_filter_name(reader.get(), 0) +
                      ") shard; amalgam reads members in place and needs uncompressed tar "
                      "(WebDataset's default): decompress it first");
    const char* pathname = archive_entry_pathname(entry);  // null for a name it cannot convert
    const std::string name = pathname != nullptr ? pathname : "(unnamed)";
    previous = name;
    if (archive_entry_filetype(entry) != AE_IFREG) continue;
    // Once the header is read, the filter has consumed exactly the bytes before the member's data.
    const int64_t offset = archive_filter_bytes(reader.get(), 0);
    const int64_t size = archive_entry_size(entry);
    if (offset + size > file_size) {
      damage = path + ":" + name + ": the shard ends inside this member (truncated shard)";
      break;
    }
    if (has_image_extension(name) && !is_apple_double(name))
      images.emplace_back(path, name, offset, size);
    if (archive_read_data_skip(reader.get()) != ARCHIVE_OK) {
      damage = path + ":" + name + ": " + archive_message(reader.get());
      break;
    }
  }
  if (!damage.empty()) {
    AMALGAM_CHECK(policy == BadImagePolicy::kSkip,
                  damage + " (use --on-bad-image skip to keep the members before it)");
    log_warning("skipping the rest of " + damage + "; " + std::to_string(images.size()) +
                " image(s) before it kept");
  }
  AMALGAM_CHECK(!images.empty() || !damage.empty(),
                path + ": no image members (png, jpg, bmp, gif, tga, pnm) in this shard");
  return images;
}

namespace {

// Writes `images` into one shard at `path`, members named from `first_key` on.
void write_one_shard(const std::vector<ImageFile>& images, int64_t first_key,
                     const std::string& path) {
  WriteArchive writer(archive_write_new(), &archive_write_free);
  // ustar headers when the names fit (they always do here), so any tar reader takes the shards.
  archive_write_set_format_pax_restricted(writer.get());
  AMALGAM_CHECK(archive_write_open_filename(writer.get(), path.c_str()) == ARCHIVE_OK,
                path + ": cannot write: " + archive_message(writer.get()));
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(),
                                                                      &archive_entry_free);
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string bytes = read_image_bytes(images[i]);
    char key[32];
    std::snprintf(key, sizeof key, "%08lld", static_cast<long long>(first_key) + i);
    const std::string source = images[i].in_shard() ? images[i].member : images[i].path;
    archive_entry_clear(entry.get());
    archive_entry_set_pathname(entry.get(), (key + lower_extension(source)).c_str());
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), 0644);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(bytes.size()));
    archive_entry_set_mtime(entry.get(), 0, 0);  // the same images give the same shard bytes
    AMALGAM_CHECK(
        archive_write_header(writer.get(), entry.get()) == ARCHIVE_OK &&
            archive_write_data(writer.get(), bytes.data(), bytes.size()) ==
                static_cast<la_ssize_t>(bytes.size()),
        path + ": cannot write " + images[i].name() + ": " + archive_message(writer.get()));
  }
  AMALGAM_CHECK(archive_write_close(writer.get()) == ARCHIVE_OK,
                path + ": cannot finish: " + archive_message(writer.get()));
}

}  // namespace

std::vector<std::string> write_shards(const std::vector<ImageFile>& images,
                                      const std::string& out_dir,
                                      const ShardWriterOptions& options) {
  AMALGAM_CHECK(options.images_per_shard > 0, "--images-per-shard: must be >= 1");
  AMALGAM_CHECK(!images.empty(), "shard: no images to write");
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  AMALGAM_CHECK(fs::is_directory(out_dir), out_dir + ": cannot create this folder");
  for (const auto& entry : fs::directory_iterator(out_dir)) {
    const std::string name = entry.path().filename().string();
    AMALGAM_CHECK(!(name.rfind(options.prefix + "-", 0) == 0 && is_tar_shard_name(name)),
                  out_dir + ": already holds shards (" + name + "); give an empty folder");
  }
  std::vector<std::string> written;
  try {
    const auto total = static_cast<int64_t>(images.size());
    for (int64_t first = 0; first < total; first += options.images_per_shard) {
      char name[64];
      std::snprintf(name, sizeof name, "-%06lld.tar",
                    static_cast<long long>(first / options.images_per_shard));
      const std::string path = (fs::path(out_dir) / (options.prefix + name)).string();
      const std::vector<ImageFile> part(
          images.begin() + first,
          images.begin() + std::min(total, first + options.images_per_shard));
      written.push_back(path);
      write_one_shard(part, first, path + ".partial");
      fs::rename(path + ".partial", path);
    }
  } catch (...) {
    for (const auto& path : written) {
      fs::remove(path, ec);
      fs::remove(path + ".partial", ec);
    }
    throw;
  }
  return written;
}

}  // namespace amalgam
