// Graceful stops: SIGINT/SIGTERM ask a long run to finish its step, checkpoint and exit.
#pragma once

#include <string>

#include "core/error.h"

namespace amalgam {

/// Thrown by a run that stopped on request after writing its checkpoint.
class Interrupted : public Error {
 public:
  Interrupted(int signal, const std::string& message) : Error(message), signal_(signal) {}
  /// The signal that asked for the stop.
  int signal() const { return signal_; }

 private:
  int signal_;
};

/// Installs SIGINT and SIGTERM handlers that only record the request; a second signal of either
/// kind ends the process at once (exit code 128 + signal).
void install_stop_handlers();

/// The signal that asked for a stop, or 0 when none did.
int stop_signal();

/// Clears a recorded request (tests).
void clear_stop_request();

/// Records a stop request as if `signal` had arrived (tests and callers that stop a run).
void request_stop(int signal);

}  // namespace amalgam
