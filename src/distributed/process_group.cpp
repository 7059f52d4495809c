#include "distributed/process_group.h"

#include <torch/torch.h>

// Gloo's headers come from Debian's libgloo-dev (a LibTorch bundle may lack them): without them
// amalgam still builds, and a data-parallel run says why it cannot start.
#if __has_include(<gloo/config.h>)
#define AMALGAM_HAVE_GLOO 1
// c10d's headers compile their Gloo parts only with this defined (LibTorch's own build defines it).
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
// NCCL: LibTorch's CUDA build defines USE_C10D_NCCL; the header comes with the wheel's NCCL.
#if defined(AMALGAM_HAVE_GLOO) && defined(USE_C10D_NCCL) && __has_include(<nccl.h>)
#define AMALGAM_HAVE_NCCL 1
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "core/error.h"
#include "core/log.h"

namespace amalgam {

DistributedAddress parse_dist_url(const std::string& url) {
  const std::string scheme = "tcp://";
  const std::string usage = "--dist-url: expected tcp://HOST:PORT, got '" + url + "'";
  AMALGAM_CHECK(url.rfind(scheme, 0) == 0, usage);
  const std::string rest = url.substr(scheme.size());
  const size_t colon = rest.rfind(':');
  AMALGAM_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < rest.size(), usage);
  DistributedAddress address;
  address.host = rest.substr(0, colon);
  if (address.host.size() > 2 && address.host.front() == '[' && address.host.back() == ']')
    address.host = address.host.substr(1, address.host.size() - 2);
  const std::string port = rest.substr(colon + 1);
  AMALGAM_CHECK(port.find_first_not_of("0123456789") == std::string::npos && port.size() <= 5,
                usage);
  address.port = std::stoi(port);
  AMALGAM_CHECK(address.port > 0 && address.port < 65536,
                "--dist-url: port " + port + " is not a TCP port (1-65535)");
  return address;
}

void validate(const DistributedOptions& o) {
  AMALGAM_CHECK(o.world_size >= 1,
                "--world-size: must be >= 1, got " + std::to_string(o.world_size));
  AMALGAM_CHECK(o.rank >= 0 && o.rank < o.world_size,
                "--rank: must be in 0.." + std::to_string(o.world_size - 1) + " for --world-size " +
                    std::to_string(o.world_size) + ", got " + std::to_string(o.rank));
  AMALGAM_CHECK(o.timeout_s > 0, "--dist-timeout: must be > 0 seconds");
  if (o.enabled()) {
    AMALGAM_CHECK(!o.url.empty(),
                  "--dist-url: required with --world-size > 1 (tcp://HOST:PORT of rank 0)");
    parse_dist_url(o.url);
  }
}

LaunchEnvironment read_launch_environment(const char* (*get)(const char*)) {
  const auto value = [get](const char* name) -> std::string {
    const char* text = get != nullptr ? get(name) : std::getenv(name);
    return text != nullptr ? text : "";
  };
  const auto number = [&value](const char* name) -> int {
    const std::string text = value(name);
    if (text.empty()) return -1;
    AMALGAM_CHECK(
        text.find_first_not_of("0123456789") == std::string::npos && text.size() <= 6,
        std::string(name) + " (environment): expected a non-negative integer, got '" + text + "'");
    return std::stoi(text);
  };
  LaunchEnvironment env;
  const std::string address = value("MASTER_ADDR");
  int world = number("WORLD_SIZE");
  int rank = number("RANK");
  int local = number("LOCAL_RANK");
  if (world < 0 && !address.empty()) {  // srun: SLURM numbers the tasks, the script the address
    world = number("SLURM_NTASKS");
    rank = number("SLURM_PROCID");
    local = number("SLURM_LOCALID");
  }
  if (world > 1) {
    const std::string size = std::to_string(world);
    AMALGAM_CHECK(rank >= 0, "RANK (environment): unset while WORLD_SIZE is " + size);
    AMALGAM_CHECK(!address.empty(), "MASTER_ADDR (environment): unset while WORLD_SIZE is " + size);
    const std::string port = value("MASTER_PORT");
    AMALGAM_CHECK(!port.empty(),
                  "MASTER_PORT (environment): unset while MASTER_ADDR is " + address);
    const bool ipv6 = address.find(':') != std::string::npos && address.front() != '[';
    env.url = "tcp://" + (ipv6 ? "[" + address + "]" : address) + ":" + port;
  }
  env.world_size = std::max(world, 0);
  env.rank = rank;
  env.local_rank = local;
  env.agent_store = value("TORCHELASTIC_USE_AGENT_STORE") == "True";
  return env;
}

#ifdef AMALGAM_HAVE_NCCL
bool nccl_compiled() {
  return true;
}
#else
bool nccl_compiled() {
  return false;
}
#endif

#ifdef AMALGAM_HAVE_GLOO

namespace {

std::chrono::milliseconds milliseconds(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(seconds * 1000.0)));
}

std::string message_of(const std::exception& e) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&e))
    return first_line(torch_error->what_without_backtrace());
  return first_line(e.what());
}

bool contains(const std::string& text, const char* part) {
  return text.find(part) != std::string::npos;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// The address of this host's interface that routes to `host` ("" when unknown): the ranks must
// listen where the others can reach them, and a host name often resolves to a loopback address.
std::string local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return "";
  std::string address;
  for (addrinfo* a = found; a != nullptr && address.empty(); a = a->ai_next) {
    const int fd = socket(a->ai_family, SOCK_DGRAM, 0);
    if (fd < 0) continue;
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    // A UDP connect sends nothing; it only asks the kernel for the route.
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0) {
      char text[INET6_ADDRSTRLEN] = {};
      const void* raw =
          local.ss_family == AF_INET
              ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(&local)->sin_addr)
              : static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(&local)->sin6_addr);
      if (inet_ntop(local.ss_family, raw, text, sizeof text) != nullptr) address = text;
    }
    close(fd);
  }
  freeaddrinfo(found);
  return address;
}

// c10d logs every failed bind or connect attempt through glog before it throws; the exception
// carries the same facts, and the user should see one line. Quiet for the rendezvous only.
class QuietTorchLogs {
 public:
  QuietTorchLogs() {
#ifdef C10_USE_GLOG
    saved_ = FLAGS_minloglevel;
    FLAGS_minloglevel = 3;
#else
    saved_ = FLAGS_caffe2_log_level;
    FLAGS_caffe2_log_level = 3;
#endif
  }
  ~QuietTorchLogs() {
#ifdef C10_USE_GLOG
    FLAGS_minloglevel = saved_;
#else
    FLAGS_caffe2_log_level = saved_;
#endif
  }

 private:
  int saved_ = 0;
};

// FNV-1a: the same 64-bit digest of the same text on every host and build.
int64_t digest(const std::string& text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  int64_t out;
  std::memcpy(&out, &h, sizeof out);
  return out;
}

// Gloo reads and writes contiguous CPU memory, NCCL memory on its GPU; tensors elsewhere go
// through a copy there.
at::Tensor staged(const at::Tensor& t, c10::Device device) {
  return t.device() == device && t.is_contiguous() ? t : t.to(device).contiguous();
}

// Runs an in-place collective on `t` (through a staged copy that gives the result back).
void in_place(at::Tensor& t, c10::Device device,
              const std::function<c10::intrusive_ptr<c10d::Work>(std::vector<at::Tensor>&)>& op) {
  std::vector<at::Tensor> buffer = {staged(t, device)};
  op(buffer)->wait();
  if (!buffer[0].is_same(t)) t.copy_(buffer[0]);
}

c10::intrusive_ptr<c10d::Backend> gloo_group(const c10::intrusive_ptr<c10d::Store>& store,
                                             const DistributedOptions& o,
                                             const DistributedAddress& address) {
  auto gloo_options = c10d::ProcessGroupGloo::Options::create(milliseconds(o.timeout_s));
  if (!o.interface.empty())
    gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(o.interface));
  else if (is_loopback(address.host))
    gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else if (const std::string local = local_address_towards(address.host, address.port);
           !local.empty())
    gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(local));
  else
    gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, o.rank, o.world_size, gloo_options);
}

c10::intrusive_ptr<c10d::Backend> nccl_group(const c10::intrusive_ptr<c10d::Store>& store,
                                             const DistributedOptions& o) {
#ifdef AMALGAM_HAVE_NCCL
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(o.nccl_device));
  auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
  nccl_options->timeout = milliseconds(o.timeout_s);
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, o.rank, o.world_size, nccl_options);
#else
  (void)store;
  throw Error("--device cuda:" + std::to_string(o.nccl_device) +
              ": this amalgam was built without NCCL, so a CUDA run cannot be data-parallel");
#endif
}

}  // namespace

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> group;
  c10::Device device{c10::kCPU};  // where the backend's collectives read and write
};

ProcessGroup::ProcessGroup(const DistributedOptions& options)
    : options_(options), impl_(std::make_unique<Impl>()) {
  validate(options_);
  const DistributedAddress address = parse_dist_url(options_.url);
  const std::string where = "--dist-url " + options_.url;
  const std::string timeout_text =
      std::to_string(static_cast<long long>(std::llround(options_.timeout_s))) + " s";
  log_info("distributed: rank " + std::to_string(options_.rank) + " of " +
           std::to_string(options_.world_size) + " joining " + options_.url);
  QuietTorchLogs quiet;
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(address.port);
    // Under torchrun the agent already serves a store at MASTER_PORT: every rank is a client.
    store_options.isServer = options_.rank == 0 && !options_.launcher_store;
    store_options.numWorkers = static_cast<size_t>(options_.world_size);
    store_options.waitWorkers = false;
    store_options.timeout = milliseconds(options_.timeout_s);
    // Our keys apart from any a launcher keeps in the same store.
    impl_->store = c10::make_intrusive<c10d::PrefixStore>(
        "amalgam", c10::make_intrusive<c10d::TCPStore>(address.host, store_options));
  } catch (const std::exception& e) {
    const std::string what = message_of(e);
    if (contains(what, "already in use"))
      throw Error(where + ": port " + std::to_string(address.port) +
                  " is already in use on this host (another run?); choose another port");
    if (contains(what, "timed out") || contains(what, "connect"))
      throw Error(where + ": cannot reach rank 0 within " + timeout_text + " (" + what +
                  "); is rank 0 started and the address right?");
    throw Error(where + ": rendezvous failed: " + what);
  }
  try {
    if (options_.nccl_device >= 0) {
      impl_->device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(options_.nccl_device));
      impl_->group = nccl_group(impl_->store, options_);
    } else {
      impl_->group = gloo_group(impl_->store, options_, address);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    const std::string what = message_of(e);
    if (contains(what, "imeout") || contains(what, "timed out"))
      throw Error(where + ": not every one of the " + std::to_string(options_.world_size) +
                  " ranks arrived within " + timeout_text + " (" + what + ")");
    throw Error(where + ": connecting the ranks failed on rank " + std::to_string(options_.rank) +
                ": " + what);
  }
  log_info("distributed: all " + std::to_string(options_.world_size) + " ranks connected");
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::fail(const std::string& operation, const std::exception& e) const {
  throw Error("distributed " + operation + " failed on rank " + std::to_string(options_.rank) +
              " (" + message_of(e) +
              "): another rank died, was stopped, or hung past --dist-timeout (" +
              std::to_string(static_cast<long long>(std::llround(options_.timeout_s))) + " s)");
}

void ProcessGroup::all_reduce_sum(std::vector<at::Tensor>& tensors) {
  try {
    c10d::AllreduceOptions reduce;
    reduce.reduceOp = c10d::ReduceOp::SUM;
    for (auto& t : tensors)
      in_place(t, impl_->device, [&](auto& b) { return impl_->group->allreduce(b, reduce); });
  } catch (const std::exception& e) {
    fail("all-reduce", e);
  }
}

void ProcessGroup::all_reduce_max(at::Tensor& tensor) {
  try {
    c10d::AllreduceOptions reduce;
    reduce.reduceOp = c10d::ReduceOp::MAX;
    in_place(tensor, impl_->device, [&](auto& b) { return impl_->group->allreduce(b, reduce); });
  } catch (const std::exception& e) {
    fail("all-reduce", e);
  }
}

void ProcessGroup::broadcast(at::Tensor& tensor, int root) {
  try {
    c10d::BroadcastOptions from;
    from.rootRank = root;
    in_place(tensor, impl_->device, [&](auto& b) { return impl_->group->broadcast(b, from); });
  } catch (const std::exception& e) {
    fail("broadcast", e);
  }
}

at::Tensor ProcessGroup::all_gather(const at::Tensor& local) {
  try {
    std::vector<at::Tensor> input = {staged(local, impl_->device)};
    std::vector<std::vector<at::Tensor>> output(1);
    for (int r = 0; r < size(); ++r) output[0].push_back(torch::empty_like(input[0]));
    impl_->group->allgather(output, input)->wait();
    return torch::cat(output[0], 0).to(local.device());
  } catch (const std::exception& e) {
    fail("all-gather", e);
  }
}

std::string ProcessGroup::broadcast_bytes(const std::string& bytes, int root) {
  at::Tensor length = torch::tensor({static_cast<int64_t>(bytes.size())}, torch::kInt64);
  broadcast(length, root);
  at::Tensor data = torch::empty({length.item<int64_t>()}, torch::kUInt8);
  if (rank() == root && !bytes.empty()) std::memcpy(data.data_ptr(), bytes.data(), bytes.size());
  broadcast(data, root);
  return std::string(reinterpret_cast<const char*>(data.data_ptr()),
                     static_cast<size_t>(data.numel()));
}

void ProcessGroup::require_same(const std::string& text, const std::string& what) {
  const at::Tensor all = all_gather(torch::tensor({digest(text)}, torch::kInt64)).contiguous();
  const int64_t* d = all.data_ptr<int64_t>();
  for (int r = 1; r < size(); ++r)
    AMALGAM_CHECK(d[r] == d[0], "distributed: rank " + std::to_string(r) + "'s " + what +
                                    " differ from rank 0's; give every rank the same command line, "
                                    "files and data");
}

void ProcessGroup::barrier() {
  at::Tensor token = torch::zeros({1});
  std::vector<at::Tensor> tokens = {token};
  all_reduce_sum(tokens);
}

#else  // no Gloo headers at build time

struct ProcessGroup::Impl {};

ProcessGroup::ProcessGroup(const DistributedOptions& options) : options_(options) {
  validate(options_);
  throw Error(
      "--world-size: this amalgam was built without Gloo's headers (Debian: libgloo-dev), "
      "so it cannot run data-parallel; rebuild after scripts/setup.sh");
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::fail(const std::string& operation, const std::exception& e) const {
  throw Error("distributed " + operation + ": " + e.what());
}

void ProcessGroup::all_reduce_sum(std::vector<at::Tensor>&) {}
void ProcessGroup::all_reduce_max(at::Tensor&) {}
void ProcessGroup::broadcast(at::Tensor&, int) {}
at::Tensor ProcessGroup::all_gather(const at::Tensor& local) {
  return local;
}
std::string ProcessGroup::broadcast_bytes(const std::string& bytes, int) {
  return bytes;
}
void ProcessGroup::require_same(const std::string&, const std::string&) {}
void ProcessGroup::barrier() {}

#endif

}  // namespace amalgam
