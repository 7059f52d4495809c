// Where one image's encoded bytes are: a file of its own, or a member of an uncompressed tar
// shard, read in place.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace amalgam {

/// What happens to a file that does not decode as an image.
enum class BadImagePolicy {
  kFail,  ///< stop with an error naming the file
  kSkip,  ///< report it and go on without it
};

/// The extension of a file or member name, lower case, with its dot ("" when it has none).
std::string lower_extension(const std::string& name);

/// Whether a file or member name has an extension of an image format amalgam reads (png, jpg,
/// jpeg, bmp, gif, tga, pgm, ppm, pnm; any case). Only listings go by the name: a file is decoded
/// by what its bytes say it is.
bool has_image_extension(const std::string& name);

/// Whether a name is a macOS "._NAME" metadata file (written beside NAME on foreign disks and in
/// archives): never an image.
bool is_apple_double(const std::string& name);

/// One image to read: a file, or `size` bytes at `offset` in a tar shard.
struct ImageFile {
  std::string path;    ///< the image file, or the shard holding the image
  std::string member;  ///< the member's name in the shard ("" for a file of its own)
  int64_t offset = 0;  ///< shard members: where the member's bytes start in the shard
  int64_t size = -1;   ///< shard members: the member's bytes; -1 = the whole file

  ImageFile() = default;
  /// A file of its own.
  ImageFile(std::string file) : path(std::move(file)) {}  // NOLINT: a path is an image file
  /// `size` bytes at `offset` of the shard at `shard`, named `member` there.
  ImageFile(std::string shard, std::string member_name, int64_t member_offset, int64_t member_size)
      : path(std::move(shard)),
        member(std::move(member_name)),
        offset(member_offset),
        size(member_size) {}

  /// Whether the image is a member of a shard.
  bool in_shard() const { return !member.empty(); }
  /// "path", or "shard.tar:member", for messages.
  std::string name() const { return in_shard() ? path + ":" + member : path; }
};

/// The encoded bytes of `image`; throws Error naming it when they cannot be read in full.
std::string read_image_bytes(const ImageFile& image);

}  // namespace amalgam
