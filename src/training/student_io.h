// Saving and loading amalgamated students with their head layout.
#pragma once

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <string>

#include "data/head_layout.h"
#include "models/network.h"
#include "training/amalgamate.h"

namespace amalgam {

/// A student read back from disk.
struct Student {
  Network network;  ///< in eval mode
  HeadLayout head;  ///< which head slice answers which task
};

/// Writes the student (weights + sidecar with its options and head layout) to `path`, and the
/// common feature block, when there is one, beside it as "<stem>.block.pt". `extra` entries are
/// merged into the sidecar.
void save_student(const AmalgamationResult& result, const std::string& path,
                  const nlohmann::json& extra);

/// Loads a student written by save_student or export_student onto `device` (an exported one
/// gives logits only).
Student load_student(const std::string& path, c10::Device device);

/// Exports `student` as TorchScript (forward(images in [0,1]) -> concatenated logits) with a
/// sidecar describing the head (task -> slice, class names) and input conventions; reloads the
/// file and throws Error if its logits differ from the student's by more than 1e-4. Returns the
/// largest absolute logit difference seen.
double export_student(NetworkImpl& student, const HeadLayout& head, const std::string& path,
                      const nlohmann::json& extra);

}  // namespace amalgam
