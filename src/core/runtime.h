// Process-wide compute settings: threads and device.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace amalgam {

/// Sets LibTorch's intra-op threads; 0 means every core the machine has.
/// LibTorch defaults to one thread on some machines, so every command calls this.
int configure_threads(int requested);

/// Parses "cpu" or "cuda[:N]"; throws Error naming `option` for anything else or for CUDA
/// when this LibTorch has none.
c10::Device parse_device(const std::string& text, const std::string& option = "--device");

}  // namespace amalgam
