// Latency rows measured like their baselines in baselines_bench.cpp: a 64 B message
// ping-ponged between two forked processes through two SpscRings.
//   BM_LatencySpin/ringfork          both sides polling
//   BM_LatencySleep/ringfork         each waiter asleep in the kernel
//   BM_HeavyFence/{0,1}              the membarrier a waiter pays (EventCount), with the
//                                    other CPU idle (0) or running a ringfork process (1)
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_support.h"
#include "ring_bench_support.h"
#include "ringfork/arena.h"
#include "ringfork/asymmetric_fence.h"
#include "ringfork/block_pool.h"
#include "ringfork/cache_line.h"
#include "ringfork/deadline.h"
#include "ringfork/eventcount.h"
#include "ringfork/queue.h"
#include "ringfork/ring_mpmc.h"
#include "ringfork/ring_spsc.h"
#include "ringfork/segment.h"
#include "ringfork/spin_wait.h"

namespace {

namespace rb = ringfork::bench;
using ringfork::cpu_relax;
using ringfork::Deadline;
using ringfork::kFalseSharingRange;
using ringfork::RingStatus;
using rb::Flag;
using rb::Payload;
using rb::SharedMemory;

// ---- Latency: ping-pong through two SpscRings -------------------------------------------

using PingMessage = Payload<64>;

struct PingRings {
  ringfork::SpscRing<PingMessage> ping;  // parent -> child
  ringfork::SpscRing<PingMessage> pong;  // child -> parent
};

PingRings make_ping_rings(ringfork::SharedArena& arena) {
  return {ringfork::SpscRing<PingMessage>::create(arena, 64),
          ringfork::SpscRing<PingMessage>::create(arena, 64)};
}

bool check_ping(const PingMessage& m, std::uint64_t seq) {
  return rb::check_message(m.bytes, sizeof(m.bytes), seq);
}

// Both sides busy-poll try_pop; one clock read per round, as BM_LatencySpin/bare.
void BM_LatencySpinRingfork(benchmark::State& state) {
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  SharedMemory memory(std::size_t{16} << 20);
  PingRings rings = make_ping_rings(memory.arena);
  const rb::CpuPair cpus = rb::pick_cpus();
  rb::ScopedPin pin(cpus.producer);
  rb::ForkedPeer child(
      [&]() -> int {
        rb::PeerWatch watch;
        PingMessage m;
        for (std::uint64_t r = 1; r <= n; ++r) {
          while (rings.ping.try_pop(m) != RingStatus::kOk) {
            if (!watch.ok()) return 3;
            cpu_relax();
          }
          if (!check_ping(m, r)) return 1;
          rb::stamp_message(m.bytes, sizeof(m.bytes), r);
          if (rings.pong.try_push(m) != RingStatus::kOk) return 2;  // never full: one in flight
        }
        return 0;
      },
      cpus.consumer);
  PingMessage m;
  rb::stamp_message_full(m.bytes, sizeof(m.bytes), 0);
  rb::time_spin_pingpong(state, child, [&](std::uint64_t r, rb::PeerWatch& watch) {
    rb::stamp_message(m.bytes, sizeof(m.bytes), r);
    if (rings.ping.try_push(m) != RingStatus::kOk) return false;
    PingMessage reply;
    while (rings.pong.try_pop(reply) != RingStatus::kOk) {
      if (!watch.ok()) return false;
      cpu_relax();
    }
    return check_ping(reply, r);
  });
}
BENCHMARK(BM_LatencySpinRingfork)->Name("BM_LatencySpin/ringfork")->UseRealTime();

// Mirrors BM_LatencySleep/futex: round r, the child announces it is about to sleep
// (`child_waiting = r`) and sleeps until the ping arrives; the parent waits for the
// announcement, pushes the ping and sleeps until the pong arrives. SpscRing::pop spins ~2000
// times before parking (its SpinPolicy is not a parameter), so the waits here use ringfork's
// own spin_then_park on an EventCount beside each ring with no spinning and no yielding.
// EventCount::park still re-checks for a microsecond or two after announcing a waiter, where
// a ping sent at once would be caught without sleeping; so the parent also waits until the
// child's EventCount counts the sleep it is entering and the kernel shows the child asleep
// (state S in /proc/PID/stat, read before the round's clock starts), as the futex and pipe
// rows do. Every round then times the wake of a sleeping peer.
struct SleepShared {
  Flag child_waiting;
  alignas(kFalseSharingRange) ringfork::EventCount ping_ready;
  alignas(kFalseSharingRange) ringfork::EventCount pong_ready;
};

constexpr ringfork::SpinPolicy kSleepAtOnce{.spin_iterations = 0, .yield_iterations = 0};

// Sleeps until `ring` holds a message, then takes it; false on timeout.
bool sleep_pop(ringfork::SpscRing<PingMessage>& ring, ringfork::EventCount& ready,
               PingMessage& out) {
  const Deadline deadline = Deadline::after(rb::kWatchdog);
  const auto outcome = ringfork::spin_then_park(
      ready, [&] { return !ring.peek(1).empty(); }, deadline, kSleepAtOnce);
  return outcome == ringfork::WaitOutcome::kReady && ring.try_pop(out) == RingStatus::kOk;
}

void BM_LatencySleepRingfork(benchmark::State& state) {
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  SharedMemory memory(std::size_t{16} << 20);
  PingRings rings = make_ping_rings(memory.arena);
  rb::SharedRegion shm(sizeof(SleepShared));
  auto* shared = shm.construct<SleepShared>();
  const rb::CpuPair cpus = rb::pick_cpus();
  rb::ScopedPin pin(cpus.producer);
  rb::ForkedPeer child(
      [&]() -> int {
        PingMessage m;
        for (std::uint64_t r = 1; r <= n; ++r) {
          // release: the parent only has to see it; the wait that follows is measured.
          shared->child_waiting.value.store(r, std::memory_order_release);
          if (!sleep_pop(rings.ping, shared->ping_ready, m)) return 3;
          if (!check_ping(m, r)) return 1;
          rb::stamp_message(m.bytes, sizeof(m.bytes), r);
          if (rings.pong.try_push(m) != RingStatus::kOk) return 2;
          shared->pong_ready.notify_all();
        }
        return 0;
      },
      cpus.consumer);

  rb::LatencyRecorder latency(static_cast<std::int64_t>(n));
  bool failed = false;
  PingMessage m;
  rb::stamp_message_full(m.bytes, sizeof(m.bytes), 0);
  std::uint64_t child_sleeps = shared->ping_ready.sleeps();
  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(n))) {
    for (std::uint64_t r = 1; r <= n && !failed; ++r) {
      rb::PeerWatch watch(&child);
      while (shared->child_waiting.value.load(std::memory_order_acquire) != r ||
             shared->ping_ready.sleeps() == child_sleeps || !rb::asleep_in_kernel(child.pid())) {
        if (!watch.ok()) failed = true;
        if (failed) break;
        cpu_relax();
      }
      child_sleeps = shared->ping_ready.sleeps();
      const std::int64_t start = rb::now_ns();
      rb::stamp_message(m.bytes, sizeof(m.bytes), r);
      failed = failed || rings.ping.try_push(m) != RingStatus::kOk;
      if (!failed) shared->ping_ready.notify_all();
      PingMessage reply;
      failed = failed || !sleep_pop(rings.pong, shared->pong_ready, reply) || !check_ping(reply, r);
      latency.add(rb::now_ns() - start);
    }
  }
  if (failed) child.kill_now();
  if (!rb::finish_peer(state, child, "sleeping peer")) return;
  latency.report(state, 2.0);
  // Futex sleeps the child entered per round (~1 when each wake found it asleep).
  state.counters["peer_sleeps_frac"] = static_cast<double>(shared->ping_ready.sleeps()) /
                                       static_cast<double>(std::max<std::uint64_t>(n, 1));
}
BENCHMARK(BM_LatencySleepRingfork)->Name("BM_LatencySleep/ringfork")->UseRealTime();

// What EventCount::park defers and prepare_wait pays up front: membarrier(2) interrupts
// every CPU running a ringfork process and waits for each to fence.
void BM_HeavyFence(benchmark::State& state) {
  const bool peer_busy = state.range(0) != 0;
  const rb::CpuPair cpus = rb::pick_cpus();
  rb::ScopedPin pin(cpus.producer);
  rb::SharedRegion shm(sizeof(Flag));
  auto* stop = shm.construct<Flag>();
  std::unique_ptr<rb::ForkedPeer> peer;
  if (peer_busy) {
    peer = std::make_unique<rb::ForkedPeer>(
        [&]() -> int {
          while (stop->value.load(std::memory_order_relaxed) == 0) cpu_relax();
          return 0;
        },
        cpus.consumer);
  }
  bool fenced = true;
  for (auto _ : state) fenced = ringfork::heavy_fence() && fenced;
  stop->value.store(1, std::memory_order_relaxed);
  if (peer && !rb::finish_peer(state, *peer, "spinning peer")) return;
  if (!fenced) state.SkipWithError("membarrier refused: waiters poll instead");
}
BENCHMARK(BM_HeavyFence)->Arg(0)->Arg(1)->UseRealTime();

}  // namespace
