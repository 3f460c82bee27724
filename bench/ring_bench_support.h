// What ring_bench.cpp and latency_bench.cpp share: fixed-size payloads, handshake flags
// between the two forked sides, the forked consumer of a one-way run, and the shared memory
// both map.
#pragma once

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include <benchmark/benchmark.h>

#include "bench_support.h"
#include "ringfork/arena.h"
#include "ringfork/cache_line.h"
#include "ringfork/ring_spsc.h"
#include "ringfork/segment.h"
#include "ringfork/spin_wait.h"

namespace ringfork::bench {

// A message of exactly N bytes: what a user of SpscRing<T> / MpmcRing<T> sends.
template <std::size_t N>
struct Payload {
  unsigned char bytes[N];
};
static_assert(sizeof(Payload<64>) == 64 && std::is_trivially_copyable_v<Payload<64>>);

// A flag alone on its false-sharing range, for handshakes outside the channel under test.
struct alignas(kFalseSharingRange) Flag {
  std::atomic<std::uint64_t> value{0};
};

struct Handshake {
  Flag consumer_ready;  // the consumer is running and polling
  Flag consumer_done;   // the consumer has checked every message
};

// Waits for `flag` to reach at least `at_least` while the peer lives; false on a dead or hung
// peer. Polls gently after a while: the peer may need this core.
inline bool await_flag(const Flag& flag, std::uint64_t at_least, ForkedPeer* peer) {
  PeerWatch watch(peer);
  for (std::uint32_t spins = 0; flag.value.load(std::memory_order_acquire) < at_least; ++spins) {
    if (!watch.ok()) return false;
    if (spins < 4096) {
      cpu_relax();
    } else {
      sched_yield();
    }
  }
  return true;
}

// Forks the consumer of a one-way run, pinned to `cpu`: it raises `hs.consumer_ready`, runs
// `consume()` (its exit code: 0 when every message arrived intact and in order), then raises
// `hs.consumer_done`, which the producer's timed batch waits for.
template <class Consume>
ForkedPeer fork_consumer(Handshake& hs, int cpu, Consume&& consume) {
  return ForkedPeer(
      [&]() -> int {
        // release (both flags): pairs with await_flag's acquire in the producer.
        hs.consumer_ready.value.store(1, std::memory_order_release);
        const int code = consume();
        hs.consumer_done.value.store(1, std::memory_order_release);
        return code;
      },
      cpu);
}

// Waits until the forked consumer runs; a dead or hung one marks the benchmark failed.
inline bool await_consumer_ready(benchmark::State& state, const Handshake& hs,
                                 ForkedPeer& consumer) {
  if (await_flag(hs.consumer_ready, 1, &consumer)) return true;
  state.SkipWithError("consumer did not start");
  return false;
}

// A segment and the arena laid over it, made before fork so both sides share them. The
// arena points at the segment: neither may move.
struct SharedMemory {
  ringfork::Segment segment;
  ringfork::SharedArena arena;
  explicit SharedMemory(std::size_t capacity)
      : segment(ringfork::Segment::create({.capacity = capacity})),
        arena(ringfork::SharedArena::create(segment)) {}
};

// Same geometry as the bare ring (bare_ring_slots): about 256 KiB of slots, at least 1024 so
// batching never starves; for 64 KiB messages, 64 slots (4 MiB).
inline std::size_t spsc_slots(std::size_t message_size) {
  if (message_size > 1024) return std::max<std::size_t>(64, (4u << 20) / message_size);
  return std::bit_ceil(std::clamp<std::size_t>((256 * 1024) / message_size, 1024, 65536));
}

// Touches every slot page in this process before the fork (the bare ring's prefault()).
template <class T>
void prefault_ring(ringfork::SpscRing<T>& ring) {
  std::span<T> slots = ring.reserve(ring.capacity());  // nothing is committed
  std::memset(static_cast<void*>(slots.data()), 0, slots.size_bytes());
}

}  // namespace ringfork::bench
