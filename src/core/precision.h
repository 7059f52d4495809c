// Reduced-precision compute: autocast regions with FP32 master weights. The 2-core development
// CPU has AVX-512 BF16; there a conv-BN-ReLU stack ran 2.2-2.3x faster under bfloat16 autocast
// than in FP32 (PyTorch 1.13, the same oneDNN as LibTorch here).
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace amalgam {

/// The precision convolutions and matrix products run in.
enum class Precision {
  kFp32,  ///< everything in float32
  kBf16,  ///< autocast to bfloat16; weights, optimiser state and losses stay float32
};

/// True where `device` computes bfloat16 natively: a CPU with AVX-512 BF16 or AMX, any CUDA
/// device (older GPUs emulate it, still correctly).
bool has_native_bf16(c10::Device device);

/// "fp32", "bf16" or "auto" (bf16 where has_native_bf16, else fp32); throws Error naming
/// --precision for anything else.
Precision parse_precision(const std::string& name, c10::Device device);

/// "fp32" or "bf16".
const char* precision_name(Precision precision);

/// While alive, operations on `device` autocast to `precision` (nothing for fp32); restores the
/// previous autocast state when it ends.
class AutocastGuard {
 public:
  AutocastGuard(Precision precision, c10::Device device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool was_enabled_ = false;
  c10::ScalarType previous_dtype_ = c10::ScalarType::Float;
};

/// While alive, autocast is off on the CPU and CUDA: the losses (softmax, MMD, reconstruction)
/// sum in float32 inside a bf16 region. Restores the previous state when it ends.
class AutocastOff {
 public:
  AutocastOff();
  ~AutocastOff();
  AutocastOff(const AutocastOff&) = delete;
  AutocastOff& operator=(const AutocastOff&) = delete;

 private:
  bool cpu_was_enabled_ = false;
  bool cuda_was_enabled_ = false;
};

}  // namespace amalgam
