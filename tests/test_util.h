// Helpers shared by the test files.
#pragma once

#include <filesystem>
#include <string>

namespace amalgam::test {

/// A fresh, empty folder under the system's temporary directory.
inline std::string temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("amalgam_test_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace amalgam::test
