// The one way amalgam writes an output file: never half-written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace amalgam {

/// Calls `write(tmp_path)` to produce the file at a temporary path beside `path`, fsyncs it and
/// renames it over `path`. On any failure the temporary file is removed, `path` keeps its old
/// content (or stays absent) and an Error naming `path` is thrown.
void write_atomically(const std::string& path,
                      const std::function<void(const std::string&)>& write);

/// Writes `bytes` to `path` through write_atomically; a short write (disk full, file size limit)
/// is an Error naming `path`.
void write_bytes_atomically(const std::string& path, const std::string& bytes);

/// Writes `text` to `path` through write_atomically (write_bytes_atomically).
void write_text_atomically(const std::string& path, const std::string& text);

/// Creates `dir` and its parents; throws Error naming `dir` when that is impossible.
void ensure_directory(const std::string& dir);

/// Reads a whole file (text or binary); throws Error naming `path` when it cannot be read.
std::string read_whole_file(const std::string& path);

/// The CRC-32 (zlib's) of `size` bytes at `data`, of any size.
uint32_t crc32_of(const void* data, size_t size);

}  // namespace amalgam
