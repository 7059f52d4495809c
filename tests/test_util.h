// Helpers shared by the test files.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>

#include "core/error.h"

namespace amalgam::test {

/// float32's unit round-off u: a float32 operation is off by at most u of its exact result, and a
/// sum of n terms in another order by at most n * u of the terms' magnitudes.
constexpr double kFloat32Unit = 0x1p-24;
constexpr double kFloat64Unit = 0x1p-53;  ///< double's

/// A fresh, empty folder under the system's temporary directory.
inline std::string temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("amalgam_test_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

/// The message of the Error `f` throws ("" when it throws none); it must be one line.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    return what;
  }
  return "";
}

}  // namespace amalgam::test
