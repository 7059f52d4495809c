// Input conventions and task of a user's TorchScript file: from its optional JSON sidecar, else
// from command-line options.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/network.h"

namespace amalgam {

/// Conventions given as options; they fill what a file's sidecar leaves out (0 / empty = unset).
struct InputConventions {
  int64_t channels = 0;      ///< --channels
  int64_t height = 0;        ///< --input-size (height)
  int64_t width = 0;         ///< --input-size (width)
  std::vector<double> mean;  ///< --mean, one value or one per channel
  std::vector<double> std;   ///< --std, one value or one per channel
};

/// Parses "--input-size" text: "32" or "32x48" (height x width); errors name `option`.
void parse_input_size(const std::string& text, InputConventions& conventions,
                      const std::string& option = "--input-size");

/// A model reference "PATH[:LAYER][,KEY=VALUE...]" taken apart.
struct ModelRef {
  std::string path;                      ///< the file
  std::string layer;                     ///< submodule whose output is the feature map ("" none)
  InputConventions input;                ///< this network's own conventions (0 / empty = unset)
  std::string task;                      ///< task=NAME ("" = unset)
  std::vector<std::string> class_names;  ///< class-names=A,B,... or a file of one name per line

  /// Whether any KEY=VALUE option was attached.
  bool has_options() const;
};

/// Splits "PATH[:LAYER][,KEY=VALUE...]". The layer follows the last ':' when what precedes it
/// names an existing file (so paths with colons still work); options are channels=C,
/// input-size=N|HxW, mean=M[,M,M], std=S[,S,S], task=NAME and class-names=A,B,...|FILE (a text
/// file, one name per line). Throws Error naming `option` and the key for anything else.
ModelRef parse_model_ref(const std::string& text, const std::string& option = "--teacher");

/// What a TorchScript file's sidecar (NAME.json beside NAME.pt) and the options say about it.
struct FileConventions {
  InputSpec input;                       ///< geometry and normalisation
  std::string task;                      ///< task name ("" when the sidecar gives none)
  std::vector<std::string> class_names;  ///< empty when the sidecar gives none
  std::string layout;  ///< the tapped layer's feature layout ("" = read from its shape)
};

/// `layer` with the sidecar's layout appended ("features" -> "features@nhwc") unless the layer
/// already names one: the command line wins.
std::string layer_with_layout(const std::string& layer, const FileConventions& conventions);

/// The conventions of `ref.path`: the options attached to `ref` first, then the file's sidecar
/// if there is one ({"task", "class_names", "input_size", "channels", "mean", "std", "layout"};
/// every key optional), then the command line's `defaults` (--channels, --input-size, --mean,
/// --std), then 3 channels, mean 0, std 1. Warns when the sidecar overrides a default the command
/// line gave. Throws Error naming the file when the input size is still unknown or an entry has
/// the wrong type.
FileConventions resolve_conventions(const ModelRef& ref, const InputConventions& defaults);

}  // namespace amalgam
