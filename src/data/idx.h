// The IDX format of the MNIST family, gzipped or plain.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace amalgam {

/// Reads an unsigned-byte IDX file (gzipped or plain) into a uint8 tensor shaped by its header.
/// Validates the magic number, the element type, the dimensions and that the data holds exactly
/// the bytes the header promises; throws Error naming `path` otherwise.
at::Tensor read_idx(const std::string& path);

/// Writes a uint8 tensor as IDX (gzipped when `gzip`); used by tests and data tools.
void write_idx(const std::string& path, const at::Tensor& data, bool gzip);

}  // namespace amalgam
