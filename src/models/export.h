// Export of a network as a standalone TorchScript module tree that Python can run and train.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "models/network.h"

namespace amalgam {

/// Writes `network` as a TorchScript module whose forward takes images in [0,1] and returns the
/// logits. A zoo network becomes the same module tree (body.1.conv1.bn, head), each module with
/// its own forward, so .train() in Python trains BatchNorm as usual, plus `features(images)`, the
/// feature map; a user's TorchScript network is kept as it is under `net`, behind the
/// normalisation. Parameters are CPU copies that require gradients; the module is saved in eval
/// mode. `sidecar`, with "format": "amalgam-export" added, is embedded in the file as the extra
/// file kExportMetadataFile and written beside it (sidecar_path); both writes are atomic.
void export_torchscript(NetworkImpl& network, const std::string& path, nlohmann::json sidecar);

/// The extra file inside an export that holds its metadata (torch.jit.load(path, _extra_files=
/// {"amalgam.json": ""}) reads it in Python).
constexpr const char* kExportMetadataFile = "amalgam.json";

/// The "format" value of export sidecars.
constexpr const char* kExportFormat = "amalgam-export";

}  // namespace amalgam
