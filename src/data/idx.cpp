#include "data/idx.h"

#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <memory>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"

namespace amalgam {
namespace {

constexpr unsigned char kUnsignedByte = 0x08;
constexpr int64_t kMaxElements = int64_t{1} << 34;  // 16 GiB: beyond that the header is nonsense

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// Reads up to `n` bytes; returns the count read, throwing on a decompression error.
int64_t read_bytes(gzFile file, const std::string& path, void* out, int64_t n) {
  auto* dst = static_cast<unsigned char*>(out);
  int64_t total = 0;
  while (total < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<int64_t>(n - total, 1 << 30));
    const int got = gzread(file, dst + total, chunk);
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file, &code);
      throw Error(path +
                  ": corrupt compressed data: " + (message ? message : "unknown zlib error"));
    }
    if (got == 0) break;
    total += got;
  }
  return total;
}

}  // namespace

std::string read_maybe_gzipped(const std::string& path) {
  GzFile file(gzopen(path.c_str(), "rb"));
  if (!file) throw Error(path + ": cannot open");
  std::string content;
  std::vector<char> chunk(1 << 20);
  int64_t got = 0;
  while ((got = read_bytes(file.get(), path, chunk.data(), static_cast<int64_t>(chunk.size()))) > 0)
    content.append(chunk.data(), static_cast<size_t>(got));
  return content;
}

at::Tensor read_idx(const std::string& path) {
  GzFile file(gzopen(path.c_str(), "rb"));
  if (!file) throw Error(path + ": cannot open IDX file");
  std::array<unsigned char, 4> magic{};
  if (read_bytes(file.get(), path, magic.data(), 4) != 4)
    throw Error(path + ": truncated IDX file: shorter than its 4-byte magic number");
  if (magic[0] != 0 || magic[1] != 0)
    throw Error(path + ": not an IDX file: wrong magic number (first two bytes must be zero)");
  if (magic[2] != kUnsignedByte)
    throw Error(path + ": unsupported IDX element type 0x" + std::to_string(magic[2]) +
                " (only unsigned byte, 0x08, is supported)");
  const int ndims = magic[3];
  if (ndims < 1 || ndims > 4)
    throw Error(path + ": wrong magic number: IDX dimension count " + std::to_string(ndims) +
                " is not in 1..4");
  std::vector<int64_t> dims(ndims);
  int64_t elements = 1;
  int64_t extent = 1;  // the product of the non-zero sizes: the tensor's largest stride
  for (int d = 0; d < ndims; ++d) {
    std::array<unsigned char, 4> be{};
    if (read_bytes(file.get(), path, be.data(), 4) != 4)
      throw Error(path + ": truncated IDX file: header ends inside dimension " + std::to_string(d));
    dims[d] = (int64_t{be[0]} << 24) | (int64_t{be[1]} << 16) | (int64_t{be[2]} << 8) | be[3];
    // Checked before multiplying: the product of four 32-bit sizes overflows int64 (found by
    // fuzzing).
    // An empty array whose other sizes are huge is refused too: LibTorch 2.x cannot lay out
    // its strides (fuzzing found 1157638438 x 0 x 4211081215 x 4294918461).
    if (dims[d] > 0 && extent > kMaxElements / dims[d])
      throw Error(path + ": IDX header declares an implausibly large array");
    elements *= dims[d];
    extent *= std::max<int64_t>(dims[d], 1);
  }
  // Read before allocating what the header claims: a few corrupt header bytes must not make us
  // reserve gigabytes (fuzzing found a 40-byte file that asked for 5.4 GB). Memory grows with
  // the bytes actually read, so a short file claiming much costs little (the IDX fuzz target ran
  // at 33 inputs/s while each claim reserved up to 64 MiB).
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(static_cast<size_t>(std::min<int64_t>(elements, int64_t{1} << 20)));
  int64_t got = 0;
  while (got < elements) {
    const int64_t want = std::min<int64_t>(elements - got, static_cast<int64_t>(chunk.size()));
    const int64_t n = read_bytes(file.get(), path, chunk.data(), want);
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
    got += n;
    if (n < want) break;
  }
  if (got != elements)
    throw Error(path + ": truncated IDX file: header promises " + std::to_string(elements) +
                " data bytes, found " + std::to_string(got));
  unsigned char extra = 0;
  if (read_bytes(file.get(), path, &extra, 1) != 0)
    throw Error(path + ": IDX file has trailing bytes after the " + std::to_string(elements) +
                " data bytes its header declares");
  at::Tensor data = torch::empty(dims, torch::kUInt8);
  std::copy(bytes.begin(), bytes.end(), data.data_ptr<uint8_t>());
  return data;
}

void write_idx(const std::string& path, const at::Tensor& data, bool gzip) {
  AMALGAM_CHECK(data.scalar_type() == torch::kUInt8, path + ": write_idx needs a uint8 tensor");
  AMALGAM_CHECK(data.dim() >= 1 && data.dim() <= 4, path + ": write_idx needs 1 to 4 dimensions");
  const at::Tensor contiguous = data.contiguous();
  std::string bytes = {0, 0, static_cast<char>(kUnsignedByte), static_cast<char>(data.dim())};
  for (int64_t d : data.sizes()) {
    for (int shift = 24; shift >= 0; shift -= 8)
      bytes.push_back(static_cast<char>((d >> shift) & 0xff));
  }
  bytes.append(reinterpret_cast<const char*>(contiguous.data_ptr<uint8_t>()), contiguous.numel());
  write_atomically(path, [&](const std::string& tmp) {
    GzFile out(gzopen(tmp.c_str(), gzip ? "wb6" : "wbT"));
    if (!out) throw Error(path + ": cannot open for writing");
    if (gzwrite(out.get(), bytes.data(), static_cast<unsigned>(bytes.size())) !=
        static_cast<int>(bytes.size()))
      throw Error(path + ": write failed");
  });
}

}  // namespace amalgam
