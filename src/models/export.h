// Export of any network as a standalone TorchScript module: forward(x) -> logits.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "models/network.h"

namespace amalgam {

/// Traces `network` (eval mode, one input of its declared geometry) into a TorchScript module
/// whose forward takes images in [0,1] and returns the logits; its parameters and buffers stay
/// parameters and buffers. Writes it to `path` and `sidecar` to its sidecar (sidecar_path), both
/// atomically, with "format": "amalgam-export" added.
void export_torchscript(NetworkImpl& network, const std::string& path, nlohmann::json sidecar);

/// The "format" value of export sidecars.
constexpr const char* kExportFormat = "amalgam-export";

}  // namespace amalgam
