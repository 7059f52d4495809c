// What the libFuzzer targets share: the input written to a file a reader opens by path, in a
// RAM-backed folder of this process so that ≥ 5,000 inputs a second stay possible.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace amalgam_fuzz {

/// A folder of this process for the targets' files (in /dev/shm where it exists).
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const std::string root = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    const std::string d = root + "/amalgam_fuzz_" + std::to_string(getpid());
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

/// Writes `size` bytes to scratch_dir()/name; returns the path.
inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return path;
  if (size > 0) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

}  // namespace amalgam_fuzz
