#include "distributed/launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <thread>

#include "core/error.h"
#include "core/log.h"

namespace amalgam {
namespace {

volatile std::sig_atomic_t g_pending_signal = 0;

extern "C" void on_launcher_signal(int signal) {
  g_pending_signal = signal;
}

}  // namespace

// Rank 0 binds it a moment later.
int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  AMALGAM_CHECK(fd >= 0, "--nproc: cannot open a socket to find a free port");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  const bool found = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                     getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  close(fd);
  AMALGAM_CHECK(found, "--nproc: cannot find a free loopback port; give --dist-url");
  return ntohs(address.sin_port);
}

namespace {

std::string describe(int status) {
  if (WIFSIGNALED(status)) {
    const int s = WTERMSIG(status);
    return "was killed by signal " + std::to_string(s) + " (" + strsignal(s) + ")";
  }
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

int exit_code(int status) {
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

struct Child {
  pid_t pid = -1;
  int rank = 0;
  bool running = true;
};

}  // namespace

int launch_local_ranks(const std::vector<std::string>& args, const LaunchOptions& options,
                       double grace_s) {
  AMALGAM_CHECK(options.nproc >= 1, "--nproc: must be >= 1, got " + std::to_string(options.nproc));
  DistributedOptions dist = options.dist;
  if (dist.world_size <= 1) dist.world_size = options.nproc;
  AMALGAM_CHECK(dist.rank + options.nproc <= dist.world_size,
                "--nproc: ranks " + std::to_string(dist.rank) + ".." +
                    std::to_string(dist.rank + options.nproc - 1) + " do not fit --world-size " +
                    std::to_string(dist.world_size));
  if (dist.url.empty()) {
    AMALGAM_CHECK(dist.world_size == options.nproc,
                  "--dist-url: required when ranks run on several hosts (--world-size > --nproc)");
    dist.url = "tcp://127.0.0.1:" + std::to_string(free_loopback_port());
  }
  validate(dist);
  int threads = options.threads_per_rank;
  if (threads <= 0)
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / options.nproc);

  struct sigaction action {};
  action.sa_handler = on_launcher_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  log_info("launcher: ranks " + std::to_string(dist.rank) + ".." +
           std::to_string(dist.rank + options.nproc - 1) + " of " +
           std::to_string(dist.world_size) + " at " + dist.url + ", " + std::to_string(threads) +
           " thread(s) each");
  std::fflush(stdout);
  std::fflush(stderr);
  std::vector<Child> children;
  const pid_t launcher = getpid();
  for (int i = 0; i < options.nproc; ++i) {
    std::vector<std::string> child_args = {"amalgam"};
    child_args.insert(child_args.end(), args.begin(), args.end());
    for (const std::string& extra :
         {std::string("--rank"), std::to_string(dist.rank + i), std::string("--world-size"),
          std::to_string(dist.world_size), std::string("--dist-url"), dist.url,
          std::string("--dist-timeout"), std::to_string(dist.timeout_s), std::string("--threads"),
          std::to_string(threads)})
      child_args.push_back(extra);
    if (options.cuda_devices > 0) {
      child_args.push_back("--device");
      child_args.push_back("cuda:" + std::to_string(i % options.cuda_devices));
    }
    if (!dist.interface.empty()) {
      child_args.push_back("--dist-iface");
      child_args.push_back(dist.interface);
    }
    std::vector<char*> argv;
    for (auto& a : child_args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = fork();
    AMALGAM_CHECK(pid >= 0, "--nproc: cannot start rank " + std::to_string(dist.rank + i) + ": " +
                                std::strerror(errno));
    if (pid == 0) {
      // Its own process group: a terminal's Ctrl-C reaches the launcher, which passes it on
      // once (a rank stops at once on a second signal).
      setpgid(0, 0);
      // A launcher killed outright must not leave its ranks running: they get SIGTERM, which
      // checkpoints and stops them.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != launcher) _exit(143);
      execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "amalgam: error: --nproc: cannot run /proc/self/exe: %s\n",
                   std::strerror(errno));
      _exit(127);
    }
    setpgid(pid, pid);
    children.push_back({pid, dist.rank + i, true});
  }

  int result = 0;
  std::string failure;
  double stop_deadline = -1;
  const auto now = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  const auto signal_running = [&](int signal) {
    for (auto& c : children)
      if (c.running) kill(c.pid, signal);
  };
  bool interrupted = false;
  while (std::any_of(children.begin(), children.end(), [](const Child& c) { return c.running; })) {
    if (g_pending_signal != 0) {
      signal_running(g_pending_signal);
      g_pending_signal = 0;
      interrupted = true;
    }
    if (stop_deadline > 0 && now() > stop_deadline) {
      signal_running(SIGKILL);
      stop_deadline = -1;
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    auto it = std::find_if(children.begin(), children.end(),
                           [pid](const Child& c) { return c.pid == pid; });
    if (it == children.end()) continue;
    it->running = false;
    const bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (failed && result == 0) {
      result = exit_code(status);
      failure = "rank " + std::to_string(it->rank) + " (pid " + std::to_string(pid) + ") " +
                describe(status);
      if (!interrupted) {
        signal_running(SIGTERM);
        stop_deadline = now() + grace_s;
      }
    }
  }
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  if (result != 0 && !interrupted)
    std::fprintf(
        stderr,
        "amalgam: error: %s (its own error, if any, is above); the other ranks were stopped\n",
        failure.c_str());
  return result;
}

}  // namespace amalgam
