// Process-wide compute settings: threads and device.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace amalgam {

/// Sets LibTorch's intra-op threads; 0 means every core the machine has.
/// LibTorch defaults to one thread on some machines, so every command calls this.
int configure_threads(int requested);

/// The cores the intra-op threads leave free, at least 1: the decode threads' default.
int spare_cores();

/// Keeps freed memory in the process instead of returning it to the system after every step:
/// glibc serves blocks above a dynamic threshold with mmap and gives them back with munmap, so
/// each training step's activations were page-faulted and zeroed anew. Measured on the 2-core
/// machine (CFL, demo set-up, 10,000 images, one epoch): 62.9 s with 34.9 s of system time before,
/// 28.0 s with 3.9 s after (same losses to the last digit). Called once by the CLI's main.
void configure_allocator();

/// What this build runs on, for --version: "LibTorch 2.15.0, CUDA 13.2 compiled in (2 GPUs
/// visible)" or "LibTorch 2.15.0, CPU only".
std::string build_description();

/// The processor as /proc/cpuinfo names it: "Intel(R) Xeon(R) Processor (family 6, model 167)".
/// Float kernels round differently on different processor classes, so results that are compared
/// across machines (the demo's table) say where they were measured; "unknown processor" elsewhere.
std::string processor_description();

/// Parses "cpu" or "cuda[:N]"; throws Error naming `option` for anything else or for CUDA
/// when this LibTorch has none.
c10::Device parse_device(const std::string& text, const std::string& option = "--device");

}  // namespace amalgam
