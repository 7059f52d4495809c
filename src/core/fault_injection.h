// Faults on purpose, for tests/faults_test.sh: the environment variable AMALGAM_FAULT names a
// place in the work and what goes wrong there, so a test can stop a run exactly mid-cache or
// mid-export, or fill the disk under one given file, instead of guessing with timers.
//   AMALGAM_FAULT=POINT:KILL | POINT:TERM  the process sends itself SIGKILL / SIGTERM at POINT
//   AMALGAM_FAULT=write:NAME               the write of any file named NAME fails half-way, as
//                                          on a full disk
// Unset (every real run), each check is one comparison with an empty string.
#pragma once

#include <string>

namespace amalgam {

/// Named places in the work where a signal can be injected.
inline constexpr const char* kFaultTeacherCache = "teacher-cache";  ///< half-way through caching
inline constexpr const char* kFaultExport =
    "export";  ///< after tracing, before the file is written

/// Sends this process the signal AMALGAM_FAULT names when it names `point`; returns otherwise.
void fault_point(const char* point);

/// Whether AMALGAM_FAULT asks the write of `path` (by its file name) to fail like a full disk.
bool fault_fails_write(const std::string& path);

}  // namespace amalgam
