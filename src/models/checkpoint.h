// The one checkpoint writer and reader for networks: weights plus a JSON sidecar.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "models/network.h"

namespace amalgam {

/// A network read back from disk with its sidecar.
struct SavedNetwork {
  Network network;      ///< rebuilt from the sidecar's "model" entry, weights loaded
  nlohmann::json meta;  ///< the whole sidecar
};

/// The sidecar path of a weights file: "dir/name.pt" -> "dir/name.json".
std::string sidecar_path(const std::string& weights_path);

/// The "format" entry of `weights_path`'s sidecar ("amalgam-network", "amalgam-export"), or ""
/// when there is no sidecar or it has no format (a user's); throws Error for a damaged one.
std::string sidecar_format(const std::string& weights_path);

/// Writes a module's weights to `path` and `meta` to its sidecar, each atomically; "format" and
/// "version" are added. load_network needs the zoo options under "model".
void save_network(const torch::nn::Module& network, const std::string& path, nlohmann::json meta);

/// Reads a network written by save_network. Throws Error naming the file when the sidecar is
/// missing or not ours, or the weights do not load into the described architecture.
SavedNetwork load_network(const std::string& path);

}  // namespace amalgam
