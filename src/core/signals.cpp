#include "core/signals.h"

#include <unistd.h>

#include <csignal>

namespace amalgam {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int signal) {
  if (g_stop_signal != 0) _exit(128 + signal);  // asked twice: stop now
  g_stop_signal = signal;
}

}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int stop_signal() {
  return g_stop_signal;
}

void clear_stop_request() {
  g_stop_signal = 0;
}

void request_stop(int signal) {
  g_stop_signal = signal;
}

}  // namespace amalgam
