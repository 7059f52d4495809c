#include "app/run_errors.h"

#include <c10/util/Exception.h>

#include <filesystem>
#include <new>

#include "core/error.h"
#include "core/signals.h"

namespace amalgam {
namespace {

// Whether `e` is an allocation that failed: host memory (std::bad_alloc, LibTorch's "can't
// allocate memory") or a GPU's (c10::OutOfMemoryError).
bool is_out_of_memory(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e) || dynamic_cast<const c10::OutOfMemoryError*>(&e))
    return true;
  const std::string what = e.what();
  return what.find("can't allocate memory") != std::string::npos ||
         what.find("out of memory") != std::string::npos;
}

// Adds to a run's error what the user can do with the run directory now.
Error with_resume_hint(const std::string& what, const std::string& command,
                       const std::string& dir) {
  if (what.find("--resume") != std::string::npos) return Error(what);
  const bool checkpointed = std::filesystem::exists(dir + "/checkpoint.pt");
  const std::string resume = "amalgam " + command + " --resume ";
  return Error(
      what +
      (checkpointed ? "; continue the run with: " + resume : "; no checkpoint yet: " + resume) +
      dir + (checkpointed ? "" : " starts the run again from its first step"));
}

}  // namespace

void with_resume_hints(const std::string& command, const std::string& dir, int64_t batch_size,
                       const std::function<void()>& train) {
  try {
    train();
  } catch (const Interrupted&) {
    throw;
  } catch (const Error& e) {
    throw with_resume_hint(e.what(), command, dir);
  } catch (const std::exception& e) {  // std::bad_alloc, c10::OutOfMemoryError, c10::Error
    if (!is_out_of_memory(e)) throw;
    throw with_resume_hint(command + ": out of memory at --batch-size " +
                               std::to_string(batch_size) + "; lower --batch-size",
                           command, dir);
  }
}

}  // namespace amalgam
