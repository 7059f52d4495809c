// The IDX format of the MNIST family, gzipped or plain.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace amalgam {

/// Reads an unsigned-byte IDX file (gzipped or plain) into a uint8 tensor shaped by its header.
/// Validates the magic number, the element type, the dimensions and that the data holds exactly
/// the bytes the header promises; throws Error naming `path` otherwise.
at::Tensor read_idx(const std::string& path);

/// The whole content of a file, decompressed when it is gzipped (plain files are read as they
/// are); throws Error naming `path` when it cannot be opened or its compressed data is corrupt.
std::string read_maybe_gzipped(const std::string& path);

/// Writes a uint8 tensor as IDX (gzipped when `gzip`); used by tests and data tools.
void write_idx(const std::string& path, const at::Tensor& data, bool gzip);

}  // namespace amalgam
