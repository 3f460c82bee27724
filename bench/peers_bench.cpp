// The libraries a user would pick instead of ringfork (issue 9), measured the way ringfork
// is: producer and consumer in different processes, every message checked by its receiver.
//   BM_BoostMqXproc/{64,4096}  boost::interprocess::message_queue, one send/receive per call
//   BM_ZmqIpcXproc/{64,4096}   ZeroMQ PUSH/PULL over ipc:// in a temporary directory
//   BM_LatencySpin/{boost,zmq} one-way latency of a ping-pong, receivers polling
// Built only for the peers found at configure time (RINGFORK_HAVE_BOOST_IPC, _ZMQ).
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_support.h"
#include "ringfork/cache_line.h"

#if RINGFORK_HAVE_BOOST_IPC
#include <boost/interprocess/ipc/message_queue.hpp>
#endif
#if RINGFORK_HAVE_ZMQ
#include <zmq.h>
#endif

namespace {

namespace rb = ringfork::bench;
using ringfork::cpu_relax;
using ringfork::kFalseSharingRange;

// Flags the parent and its forked peer exchange outside the channel under test.
struct Handshake {
  alignas(kFalseSharingRange) std::atomic<std::uint32_t> ready{0};
  alignas(kFalseSharingRange) std::atomic<std::uint32_t> done{0};
};

bool wait_flag(const std::atomic<std::uint32_t>& flag, rb::ForkedPeer& peer) {
  rb::PeerWatch watch(&peer);
  while (flag.load(std::memory_order_acquire) == 0) {
    if (!watch.ok()) return false;
    cpu_relax();
  }
  return true;
}

std::string unique_name(const char* what) {
  static std::atomic<int> counter{0};
  return std::string("ringfork-bench-") + what + "-" + std::to_string(getpid()) + "-" +
         std::to_string(counter.fetch_add(1));
}

// ---- Boost.Interprocess message_queue --------------------------------------------------
#if RINGFORK_HAVE_BOOST_IPC
namespace bip = boost::interprocess;

// Removes a named queue on construction (a stale one from a killed run) and destruction.
struct QueueName {
  std::string name;
  explicit QueueName(std::string n) : name(std::move(n)) { bip::message_queue::remove(name.c_str()); }
  QueueName(const QueueName&) = delete;
  QueueName& operator=(const QueueName&) = delete;
  ~QueueName() { bip::message_queue::remove(name.c_str()); }
};

constexpr std::size_t kBoostQueueDepth = 256;

void BM_BoostMqXproc(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  rb::SharedRegion shm(sizeof(Handshake));
  auto* hs = shm.construct<Handshake>();
  QueueName name(unique_name("mq"));
  bip::message_queue queue(bip::create_only, name.name.c_str(), kBoostQueueDepth, size);
  const rb::CpuPair cpus = rb::pick_cpus();
  rb::ScopedPin pin(cpus.producer);
  rb::ForkedPeer consumer(
      [&]() -> int {
        bip::message_queue in(bip::open_only, name.name.c_str());
        hs->ready.store(1, std::memory_order_release);
        std::vector<unsigned char> message(size);
        std::uint64_t bad = 0;
        for (std::uint64_t seq = 0; seq < n; ++seq) {
          bip::message_queue::size_type received = 0;
          unsigned int priority = 0;
          in.receive(message.data(), size, received, priority);
          bad += received != size || !rb::check_message(message.data(), size, seq);
        }
        hs->done.store(1, std::memory_order_release);
        return bad == 0 ? 0 : 1;
      },
      cpus.consumer);
  if (!wait_flag(hs->ready, consumer)) {
    rb::finish_peer(state, consumer, "consumer");
    return;
  }
  std::vector<unsigned char> message(size);
  rb::stamp_message_full(message.data(), size, 0);
  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(n))) {
    for (std::uint64_t seq = 0; seq < n; ++seq) {
      rb::stamp_message(message.data(), size, seq);
      queue.send(message.data(), size, 0);
    }
    wait_flag(hs->done, consumer);
  }
  if (rb::finish_peer(state, consumer, "consumer")) rb::set_processed(state, size);
}
BENCHMARK(BM_BoostMqXproc)->Arg(64)->Arg(4096)->UseRealTime();

// Ping-pong over two queues, each receiver polling with try_receive.
void BM_LatencySpinBoost(benchmark::State& state) {
  constexpr std::size_t kSize = 64;
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  QueueName ping_name(unique_name("ping")), pong_name(unique_name("pong"));
  bip::message_queue ping(bip::create_only, ping_name.name.c_str(), 1, kSize);
  bip::message_queue pong(bip::create_only, pong_name.name.c_str(), 1, kSize);
  const rb::CpuPair cpus = rb::pick_cpus();
  rb::ScopedPin pin(cpus.producer);
  rb::ForkedPeer child(
      [&]() -> int {
        bip::message_queue in(bip::open_only, ping_name.name.c_str());
        bip::message_queue out(bip::open_only, pong_name.name.c_str());
        unsigned char message[kSize];
        rb::PeerWatch watch;
        for (std::uint64_t r = 1; r <= n; ++r) {
          bip::message_queue::size_type received = 0;
          unsigned int priority = 0;
          while (!in.try_receive(message, kSize, received, priority)) {
            if (!watch.ok()) return 3;
          }
          if (received != kSize || !rb::check_message(message, kSize, r)) return 1;
          out.send(message, kSize, 0);
        }
        return 0;
      },
      cpus.consumer);
  unsigned char message[kSize];
  rb::stamp_message_full(message, kSize, 0);
  rb::time_spin_pingpong(state, child, [&](std::uint64_t r, rb::PeerWatch& watch) {
    rb::stamp_message(message, kSize, r);
    ping.send(message, kSize, 0);
    bip::message_queue::size_type received = 0;
    unsigned int priority = 0;
    while (!pong.try_receive(message, kSize, received, priority)) {
      if (!watch.ok()) return false;
    }
    return received == kSize && rb::check_message(message, kSize, r);
  });
}
BENCHMARK(BM_LatencySpinBoost)->Name("BM_LatencySpin/boost")->UseRealTime();
#endif  // RINGFORK_HAVE_BOOST_IPC

// ---- ZeroMQ over ipc:// ----------------------------------------------------------------
#if RINGFORK_HAVE_ZMQ

// A temporary directory holding the ipc:// socket file, removed with everything in it.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "ringfork-bench-XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "mkdtemp");
    }
    path = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string endpoint(const char* name) const { return "ipc://" + (path / name).string(); }
};

// A context and one socket. Made after fork in the process that uses it: a ZeroMQ context
// does not survive fork. Its I/O thread starts before the caller pins itself, so it is not
// confined to the polling thread's core.
struct ZmqEndpoint {
  void* context = nullptr;
  void* socket = nullptr;
  ZmqEndpoint(int type, const std::string& endpoint, bool bind) {
    context = zmq_ctx_new();
    socket = zmq_socket(context, type);
    // Large high-water marks: PUSH blocks (never drops) at its HWM, but a bigger window
    // lets ZeroMQ batch as it is designed to.
    // Blocking calls time out with the watchdog, so a dead peer fails the benchmark.
    const int hwm = 100000, linger = 0;
    const int timeout_ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(rb::kWatchdog).count());
    zmq_setsockopt(socket, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(socket, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(socket, ZMQ_SNDTIMEO, &timeout_ms, sizeof(timeout_ms));
    zmq_setsockopt(socket, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    const int rc = bind ? zmq_bind(socket, endpoint.c_str()) : zmq_connect(socket, endpoint.c_str());
    if (rc != 0) throw std::runtime_error(std::string("zmq bind/connect: ") + zmq_strerror(zmq_errno()));
  }
  ZmqEndpoint(const ZmqEndpoint&) = delete;
  ZmqEndpoint& operator=(const ZmqEndpoint&) = delete;
  ~ZmqEndpoint() {
    zmq_close(socket);
    zmq_ctx_term(context);
  }
  bool send(const void* data, std::size_t size, int flags = 0) {
    for (;;) {
      if (zmq_send(socket, data, size, flags) == static_cast<int>(size)) return true;
      if (zmq_errno() != EINTR) return false;
    }
  }
  // Returns the message's size, or -1 (errno EAGAIN with ZMQ_DONTWAIT when nothing is there).
  int recv(void* data, std::size_t size, int flags = 0) {
    for (;;) {
      const int r = zmq_recv(socket, data, size, flags);
      if (r >= 0 || zmq_errno() != EINTR) return r;
    }
  }
};

void BM_ZmqIpcXproc(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  rb::SharedRegion shm(sizeof(Handshake));
  auto* hs = shm.construct<Handshake>();
  TempDir dir;
  const std::string endpoint = dir.endpoint("push");
  const rb::CpuPair cpus = rb::pick_cpus();
  rb::ForkedPeer consumer([&]() -> int {
    ZmqEndpoint in(ZMQ_PULL, endpoint, false);
    rb::pin_to_cpu(cpus.consumer);
    std::vector<unsigned char> message(size);
    std::uint64_t bad = 0;
    if (in.recv(message.data(), size) != static_cast<int>(size)) return 2;  // the warm-up
    hs->ready.store(1, std::memory_order_release);
    for (std::uint64_t seq = 0; seq < n; ++seq) {
      const int got = in.recv(message.data(), size);
      if (got < 0) return 2;
      bad += static_cast<std::size_t>(got) != size || !rb::check_message(message.data(), size, seq);
    }
    hs->done.store(1, std::memory_order_release);
    return bad == 0 ? 0 : 1;
  });
  ZmqEndpoint out(ZMQ_PUSH, endpoint, true);
  rb::ScopedPin pin(cpus.producer);
  std::vector<unsigned char> message(size);
  rb::stamp_message_full(message.data(), size, 0);
  // Warm-up: the connection is up before timing starts.
  if (!out.send(message.data(), size) || !wait_flag(hs->ready, consumer)) {
    rb::finish_peer(state, consumer, "consumer");
    return;
  }
  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(n))) {
    for (std::uint64_t seq = 0; seq < n; ++seq) {
      rb::stamp_message(message.data(), size, seq);
      if (!out.send(message.data(), size)) break;
    }
    wait_flag(hs->done, consumer);
  }
  if (rb::finish_peer(state, consumer, "consumer")) rb::set_processed(state, size);
}
BENCHMARK(BM_ZmqIpcXproc)->Arg(64)->Arg(4096)->UseRealTime();

// Ping-pong over one PAIR socket; each receiver polls with ZMQ_DONTWAIT. A failed poll
// yields: the message is moved by ZeroMQ's I/O thread, which may need this core.
void BM_LatencySpinZmq(benchmark::State& state) {
  constexpr std::size_t kSize = 64;
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  TempDir dir;
  const std::string endpoint = dir.endpoint("pair");
  const rb::CpuPair cpus = rb::pick_cpus();
  rb::ForkedPeer child([&]() -> int {
    ZmqEndpoint pair(ZMQ_PAIR, endpoint, false);
    rb::pin_to_cpu(cpus.consumer);
    unsigned char message[kSize];
    rb::PeerWatch watch;
    for (std::uint64_t r = 0; r <= n; ++r) {  // round 0 is the warm-up
      int got;
      while ((got = pair.recv(message, kSize, ZMQ_DONTWAIT)) < 0) {
        if (zmq_errno() != EAGAIN || !watch.ok()) return 3;
        sched_yield();
      }
      if (got != static_cast<int>(kSize) || !rb::check_message(message, kSize, r)) return 1;
      if (!pair.send(message, kSize)) return 2;
    }
    return 0;
  });
  ZmqEndpoint pair(ZMQ_PAIR, endpoint, true);
  rb::ScopedPin pin(cpus.producer);
  unsigned char message[kSize];
  rb::stamp_message_full(message, kSize, 0);
  auto round = [&](std::uint64_t r, rb::PeerWatch& watch) {
    rb::stamp_message(message, kSize, r);
    if (!pair.send(message, kSize)) return false;
    int got;
    while ((got = pair.recv(message, kSize, ZMQ_DONTWAIT)) < 0) {
      if (zmq_errno() != EAGAIN || !watch.ok()) return false;
      sched_yield();
    }
    return got == static_cast<int>(kSize) && rb::check_message(message, kSize, r);
  };
  rb::PeerWatch warmup_watch(&child);
  if (!round(0, warmup_watch)) {
    child.kill_now();
    rb::finish_peer(state, child, "ponger");
    return;
  }
  rb::time_spin_pingpong(state, child, round);
}
BENCHMARK(BM_LatencySpinZmq)->Name("BM_LatencySpin/zmq")->UseRealTime();
#endif  // RINGFORK_HAVE_ZMQ

}  // namespace
