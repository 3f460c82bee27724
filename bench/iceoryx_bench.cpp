// iceoryx (Eclipse, 2.x) as a peer (issue 9): zero-copy publish/subscribe through RouDi.
//   BM_IceoryxXproc/{64,4096}  untyped publisher -> subscriber, loan/publish and
//                              take/release, lossless (BLOCK_PRODUCER / WAIT_FOR_CONSUMER)
//   BM_LatencySpin/iceoryx     ping-pong over two services, both sides polling take()
// Needs a running RouDi daemon (iox-roudi); run_bench.py starts one. Without it the rows
// are skipped with "unavailable: ...".
//
// An iceoryx runtime is a per-process singleton registered with RouDi, and must not be
// inherited through fork. So the benchmark process never makes one: it forks both ends,
// each registers itself, and the ends time themselves with CLOCK_MONOTONIC (one clock
// for every process) and hand the figures back through shared memory (manual time).
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <benchmark/benchmark.h>

#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"

#include "bench_support.h"
#include "ringfork/cache_line.h"

namespace {

namespace rb = ringfork::bench;
using ringfork::cpu_relax;
using ringfork::kFalseSharingRange;

// How long registration and discovery may take (RouDi discovers every 100 ms or so).
constexpr std::chrono::seconds kConnectTimeout{20};

struct IoxShared {
  alignas(kFalseSharingRange) std::atomic<std::uint32_t> subscriber_ready{0};
  alignas(kFalseSharingRange) std::atomic<std::uint32_t> publisher_ready{0};
  alignas(kFalseSharingRange) std::atomic<std::int64_t> start_ns{0};
  alignas(kFalseSharingRange) std::atomic<std::int64_t> end_ns{0};
  double median_ns = 0;
  double p99_ns = 0;
};

// Why iceoryx cannot run here, or empty if RouDi looks up (its management segment exists).
std::string iceoryx_unavailable() {
  struct stat st;
  if (stat("/dev/shm/iceoryx_mgmt", &st) != 0) return "unavailable: iox-roudi is not running";
  return {};
}

std::string service_suffix(const char* what) {
  static int counter = 0;
  return std::string(what) + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

iox::capro::ServiceDescription service(const std::string& event) {
  return {"RingforkBench", "Xproc", iox::capro::IdString_t(iox::cxx::TruncateToCapacity, event)};
}

void init_runtime(const char* role) {
  // Quiet: the runtime's debug lines would land in the benchmark's output.
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn);
  const std::string name = std::string("rfb-") + role + "-" + std::to_string(getpid());
  iox::runtime::PoshRuntime::initRuntime(
      iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str()));
}

iox::popo::PublisherOptions lossless_publisher() {
  iox::popo::PublisherOptions options;
  options.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
  return options;
}

iox::popo::SubscriberOptions lossless_subscriber() {
  iox::popo::SubscriberOptions options;
  options.queueCapacity = iox::MAX_SUBSCRIBER_QUEUE_CAPACITY;
  options.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
  return options;
}

// Polls until the subscriber is connected to a publisher.
bool await_subscribed(const iox::popo::UntypedSubscriber& sub) {
  return rb::wait_until([&] {
    return sub.getSubscriptionState() == iox::SubscribeState::SUBSCRIBED;
  }, kConnectTimeout);
}

// Sends one message of `size` bytes; false only if no chunk could be loaned for too long.
bool publish(iox::popo::UntypedPublisher& pub, std::uint32_t size, std::uint64_t seq) {
  rb::PeerWatch watch;
  for (;;) {
    auto loaned = pub.loan(size);
    if (!loaned.has_error()) {
      rb::stamp_message(loaned.value(), size, seq);
      pub.publish(loaned.value());
      return true;
    }
    if (!watch.ok()) return false;
    cpu_relax();
  }
}

// Takes the next message, polling; checks it and releases the chunk.
bool take(iox::popo::UntypedSubscriber& sub, std::uint32_t size, std::uint64_t seq,
          rb::PeerWatch& watch) {
  for (;;) {
    auto taken = sub.take();
    if (!taken.has_error()) {
      const bool ok = rb::check_message(taken.value(), size, seq);
      sub.release(taken.value());
      return ok;
    }
    if (!watch.ok()) return false;
    cpu_relax();
  }
}

// Ends an iceoryx child with exit(), not _exit(): the runtime's destructor deregisters the
// process from RouDi, which would otherwise hold its ports until the keep-alive times out.
[[noreturn]] void leave(int code) { std::exit(code); }

// Joins both children and reports failures; true if both succeeded.
bool finish_both(benchmark::State& state, rb::ForkedPeer& a, rb::ForkedPeer& b) {
  return rb::finish_peer(state, a, "iceoryx subscriber") &&
         rb::finish_peer(state, b, "iceoryx publisher");
}

void BM_IceoryxXproc(benchmark::State& state) {
  if (const std::string why = iceoryx_unavailable(); !why.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
  const auto size = static_cast<std::uint32_t>(state.range(0));
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  rb::SharedRegion shm(sizeof(IoxShared));
  auto* shared = shm.construct<IoxShared>();
  const std::string event = service_suffix("data");
  const rb::CpuPair cpus = rb::pick_cpus();

  rb::ForkedPeer subscriber(
      [&]() -> int {
        init_runtime("sub");
        iox::popo::UntypedSubscriber sub(service(event), lossless_subscriber());
        if (!await_subscribed(sub)) leave(4);
        shared->subscriber_ready.store(1, std::memory_order_release);
        rb::PeerWatch watch;
        std::uint64_t bad = 0;
        for (std::uint64_t seq = 0; seq < n; ++seq) bad += !take(sub, size, seq, watch);
        shared->end_ns.store(rb::now_ns(), std::memory_order_release);
        leave(bad == 0 ? 0 : 1);
      },
      cpus.consumer);
  rb::ForkedPeer publisher(
      [&]() -> int {
        init_runtime("pub");
        iox::popo::UntypedPublisher pub(service(event), lossless_publisher());
        if (!rb::wait_until([&] {
              return pub.hasSubscribers() &&
                     shared->subscriber_ready.load(std::memory_order_acquire) != 0;
            }, kConnectTimeout)) {
          leave(4);
        }
        shared->start_ns.store(rb::now_ns(), std::memory_order_release);
        for (std::uint64_t seq = 0; seq < n; ++seq) {
          if (!publish(pub, size, seq)) leave(3);
        }
        leave(0);
      },
      cpus.producer);

  const bool ok = finish_both(state, subscriber, publisher);
  const double seconds =
      ok ? static_cast<double>(shared->end_ns.load() - shared->start_ns.load()) * 1e-9 : 0.0;
  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(n))) {
    state.SetIterationTime(seconds);
  }
  if (ok) {
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
  }
}
BENCHMARK(BM_IceoryxXproc)->Arg(64)->Arg(4096)->UseManualTime();

void BM_LatencySpinIceoryx(benchmark::State& state) {
  if (const std::string why = iceoryx_unavailable(); !why.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
  constexpr std::uint32_t kSize = 64;
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  rb::SharedRegion shm(sizeof(IoxShared));
  auto* shared = shm.construct<IoxShared>();
  const std::string ping_event = service_suffix("ping"), pong_event = service_suffix("pong");
  const rb::CpuPair cpus = rb::pick_cpus();

  rb::ForkedPeer ponger(
      [&]() -> int {
        init_runtime("ponger");
        iox::popo::UntypedSubscriber in(service(ping_event), lossless_subscriber());
        iox::popo::UntypedPublisher out(service(pong_event), lossless_publisher());
        if (!await_subscribed(in)) leave(4);
        rb::PeerWatch watch;
        for (std::uint64_t r = 0; r <= n; ++r) {  // round 0 is the warm-up
          if (!take(in, kSize, r, watch)) leave(1);
          if (!publish(out, kSize, r)) leave(3);
        }
        leave(0);
      },
      cpus.consumer);
  rb::ForkedPeer pinger(
      [&]() -> int {
        init_runtime("pinger");
        iox::popo::UntypedPublisher out(service(ping_event), lossless_publisher());
        iox::popo::UntypedSubscriber in(service(pong_event), lossless_subscriber());
        if (!await_subscribed(in) ||
            !rb::wait_until([&] { return out.hasSubscribers(); }, kConnectTimeout)) {
          leave(4);
        }
        rb::PeerWatch watch;
        if (!publish(out, kSize, 0) || !take(in, kSize, 0, watch)) leave(1);
        rb::LatencyRecorder latency(static_cast<std::int64_t>(n));
        const std::int64_t start = rb::now_ns();
        std::int64_t last = start;
        for (std::uint64_t r = 1; r <= n; ++r) {
          if (!publish(out, kSize, r) || !take(in, kSize, r, watch)) leave(1);
          const std::int64_t now = rb::now_ns();
          latency.add(now - last);
          last = now;
        }
        const auto summary = latency.summarize(2.0);
        shared->median_ns = summary.median_ns;
        shared->p99_ns = summary.p99_ns;
        shared->start_ns.store(start, std::memory_order_relaxed);
        shared->end_ns.store(last, std::memory_order_release);
        leave(0);
      },
      cpus.producer);

  const bool ok = finish_both(state, ponger, pinger);
  const double seconds =
      ok ? static_cast<double>(shared->end_ns.load() - shared->start_ns.load()) * 1e-9 : 0.0;
  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(n))) {
    state.SetIterationTime(seconds);
  }
  if (ok) rb::LatencyRecorder::report_summary(state, {shared->median_ns, shared->p99_ns});
}
BENCHMARK(BM_LatencySpinIceoryx)->Name("BM_LatencySpin/iceoryx")->UseManualTime();

}  // namespace
