// One process at a time in a run directory: an advisory lock (flock) on a file inside it, held
// for the whole run and released by the kernel when the process ends, however it ends.
#pragma once

#include <string>

namespace amalgam {

/// The lock on one run directory; movable, not copyable. Released by the destructor.
class RunLock {
 public:
  /// Takes the lock on `dir` (which must exist) without waiting. Throws Error naming `option`,
  /// `dir` and the holder's pid when another process holds it.
  RunLock(const std::string& dir, const std::string& option);
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock();

  /// Whether a process holds the lock on `dir` now (a run is writing there).
  static bool held(const std::string& dir);
  /// The lock file's name inside a run directory.
  static const char* file_name();

 private:
  int fd_ = -1;
};

}  // namespace amalgam
