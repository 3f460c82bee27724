// ringfork's own rows, measured exactly like their baselines in baselines_bench.cpp (same
// binary, so every ratio comes from one run; STYLE.md item 9): producer and consumer are
// forked processes, every message is checked by its receiver, and a receiver that sees a bad
// message exits non-zero so the benchmark reports an error instead of a figure.
//   BM_SpscXproc/{8,64,1024,65536}   SpscRing, one (blocking) push / pop per message
//   BM_SpscXprocBatch/{8,64,1024}    SpscRing, try_push_batch / try_pop_batch of 32
//   BM_MpmcXproc/64/P/C              ShardedMpmcRing (a lane per producer), P producer and C
//                                    consumer processes, one op
//   BM_MpmcXprocBatch/64/P/C         the same with batches of up to 32
//   BM_MpmcOneRingXproc/64/P/C       one MpmcRing shared by all, one op (info)
//   BM_QueueXproc/{64,4096}          ByteQueue (Queue<Bytes>'s core), one put / get each
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_support.h"
#include "ring_bench_support.h"
#include "ringfork/arena.h"
#include "ringfork/block_pool.h"
#include "ringfork/cache_line.h"
#include "ringfork/deadline.h"
#include "ringfork/eventcount.h"
#include "ringfork/queue.h"
#include "ringfork/ring_mpmc.h"
#include "ringfork/ring_sharded.h"
#include "ringfork/ring_spsc.h"
#include "ringfork/segment.h"
#include "ringfork/spin_wait.h"

namespace {

namespace rb = ringfork::bench;
using ringfork::cpu_relax;
using ringfork::Deadline;
using ringfork::RingStatus;
using rb::await_flag;
using rb::Flag;
using rb::Handshake;
using rb::Payload;
using rb::prefault_ring;
using rb::set_processed;
using rb::SharedMemory;
using rb::spsc_slots;

// ---- SpscRing --------------------------------------------------------------------------

// Per message: the blocking push / pop, one call per message, as a user writes it. Their hot
// path is try_push / try_pop; only a full or empty ring spins (2000 pauses), yields, then
// parks. A bare try_push / try_pop loop spinning on cpu_relax measured no faster on a quiet
// machine and far slower on a busy one (a spinner burns the slice its peer needs).
// Batched: try_push_batch / try_pop_batch of up to kBatch, spinning like the bare ring.
constexpr std::size_t kBatch = 32;

template <std::size_t kSize, bool kBatched>
void spsc_xproc(benchmark::State& state) {
  using Message = Payload<kSize>;
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  SharedMemory memory(std::size_t{64} << 20);
  auto ring = ringfork::SpscRing<Message>::create(memory.arena, spsc_slots(kSize));
  prefault_ring(ring);
  rb::SharedRegion shm(sizeof(Handshake));
  auto* hs = shm.construct<Handshake>();

  const rb::CpuPair cpus = rb::pick_cpus();
  rb::ScopedPin pin(cpus.producer);
  rb::ForkedPeer consumer = rb::fork_consumer(*hs, cpus.consumer, [&]() -> int {
    std::uint64_t bad = 0;
    if constexpr (kBatched) {
      rb::PeerWatch watch;
      std::vector<Message> batch(kBatch);
      for (std::uint64_t seq = 0; seq < n;) {
        const std::size_t taken = ring.try_pop_batch(batch);
        if (taken == 0) {
          if (!watch.ok()) return 3;
          cpu_relax();
          continue;
        }
        for (std::size_t i = 0; i < taken; ++i, ++seq) {
          bad += !rb::check_message(batch[i].bytes, kSize, seq);
        }
      }
    } else {
      const Deadline deadline = Deadline::after(rb::kWatchdog);
      Message message;
      for (std::uint64_t seq = 0; seq < n; ++seq) {
        if (ring.pop(message, deadline) != RingStatus::kOk) return 3;
        bad += !rb::check_message(message.bytes, kSize, seq);
      }
    }
    return bad == 0 ? 0 : 1;
  });
  if (!rb::await_consumer_ready(state, *hs, consumer)) return;
  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(n))) {
    bool failed = false;
    if constexpr (kBatched) {
      std::vector<Message> batch(kBatch);
      for (Message& m : batch) rb::stamp_message_full(m.bytes, kSize, 0);
      for (std::uint64_t seq = 0; seq < n && !failed;) {
        const auto count = static_cast<std::size_t>(std::min<std::uint64_t>(kBatch, n - seq));
        for (std::size_t i = 0; i < count; ++i) rb::stamp_message(batch[i].bytes, kSize, seq + i);
        rb::PeerWatch watch(&consumer);
        for (std::size_t pushed = 0; pushed < count;) {
          const std::size_t now =
              ring.try_push_batch(std::span(batch).subspan(pushed, count - pushed));
          if (now == 0) {
            if (!watch.ok()) {
              failed = true;
              break;
            }
            cpu_relax();
          }
          pushed += now;
        }
        seq += count;
      }
    } else {
      const Deadline deadline = Deadline::after(rb::kWatchdog);
      Message message;
      rb::stamp_message_full(message.bytes, kSize, 0);
      for (std::uint64_t seq = 0; seq < n && !failed; ++seq) {
        rb::stamp_message(message.bytes, kSize, seq);
        failed = ring.push(message, deadline) != RingStatus::kOk;
      }
    }
    // Timed: the consumer has drained and checked everything.
    if (!failed) await_flag(hs->consumer_done, 1, &consumer);
    if (failed) consumer.kill_now();
  }
  if (rb::finish_peer(state, consumer, "consumer")) set_processed(state, kSize);
}

void BM_SpscXproc(benchmark::State& state) {
  switch (state.range(0)) {
    case 8: return spsc_xproc<8, false>(state);
    case 64: return spsc_xproc<64, false>(state);
    case 1024: return spsc_xproc<1024, false>(state);
    case 65536: return spsc_xproc<65536, false>(state);
    default: state.SkipWithError("unsupported message size");
  }
}
void BM_SpscXprocBatch(benchmark::State& state) {
  switch (state.range(0)) {
    case 8: return spsc_xproc<8, true>(state);
    case 64: return spsc_xproc<64, true>(state);
    case 1024: return spsc_xproc<1024, true>(state);
    default: state.SkipWithError("unsupported message size");
  }
}
BENCHMARK(BM_SpscXproc)->Arg(8)->Arg(64)->Arg(1024)->Arg(65536)->UseRealTime();
BENCHMARK(BM_SpscXprocBatch)->Arg(8)->Arg(64)->Arg(1024)->UseRealTime();

// ---- MpmcRing --------------------------------------------------------------------------

// Producer p sends sequence numbers [n*p/P, n*(p+1)/P) in order, stamped with stamp_message
// (head seq, tail ~seq*kMix) and its own index in bytes 8..11. A consumer checks each message
// whole, that it came from the producer it names, and that each producer's numbers reach it
// in increasing order; the shared totals check that every number arrived exactly once.
using MpmcMessage = Payload<64>;

struct MpmcShared {
  Flag ready;          // children running (producers and consumers)
  Flag go;             // the parent started the timed run
  Flag consumed;       // messages taken, all consumers (added in batches)
  Flag consumers_done;
  Flag seq_sum;        // sum of the sequence numbers taken
  Flag bad;            // messages that failed a check
};

std::uint64_t first_seq(std::uint64_t n, std::uint32_t producer, std::uint32_t producers) {
  return n * producer / producers;
}

void stamp_mpmc(MpmcMessage& m, std::uint64_t seq, std::uint32_t producer) {
  rb::stamp_message(m.bytes, sizeof(m.bytes), seq);
  std::memcpy(m.bytes + 8, &producer, sizeof(producer));
}

template <bool kBatched, class Ring>
bool mpmc_produce(Ring& ring, std::uint64_t n, std::uint32_t producer,
                  std::uint32_t producers, rb::ForkedPeer* watched) {
  const std::uint64_t last = first_seq(n, producer + 1, producers);
  std::array<MpmcMessage, kBatch> batch;
  for (MpmcMessage& m : batch) rb::stamp_message_full(m.bytes, sizeof(m.bytes), 0);
  rb::PeerWatch watch(watched);
  for (std::uint64_t seq = first_seq(n, producer, producers); seq < last;) {
    const std::size_t count =
        kBatched ? static_cast<std::size_t>(std::min<std::uint64_t>(kBatch, last - seq)) : 1;
    for (std::size_t i = 0; i < count; ++i) stamp_mpmc(batch[i], seq + i, producer);
    for (std::uint32_t idle = 0;;) {
      const RingStatus status =
          kBatched ? ring.try_push_batch(std::span<const MpmcMessage>(batch.data(), count), nullptr)
                   : ring.try_push(batch[0]);
      if (status == RingStatus::kOk) break;
      if (status != RingStatus::kFull || !watch.ok()) return false;
      // More processes than cores (2/2): let a consumer run.
      if (++idle > 64) {
        sched_yield();
      } else {
        cpu_relax();
      }
    }
    seq += count;
  }
  return true;
}

template <bool kBatched, class Ring>
int mpmc_consume(Ring& ring, MpmcShared* shared, std::uint64_t n,
                 std::uint32_t producers) {
  std::vector<std::uint64_t> next_min(producers);  // per producer: lowest acceptable seq
  std::vector<std::uint64_t> end(producers);
  for (std::uint32_t p = 0; p < producers; ++p) {
    next_min[p] = first_seq(n, p, producers);
    end[p] = first_seq(n, p + 1, producers);
  }
  std::array<MpmcMessage, kBatch> batch;
  std::uint64_t pending = 0, sum = 0, bad = 0;
  std::uint32_t idle = 0;
  rb::PeerWatch watch;
  for (;;) {
    std::size_t taken = 0;
    const RingStatus status =
        kBatched ? ring.try_pop_batch(batch, &taken)
                 : (ring.try_pop(batch[0]) == RingStatus::kOk ? (taken = 1, RingStatus::kOk)
                                                              : RingStatus::kEmpty);
    if (status == RingStatus::kOk && taken > 0) {
      for (std::size_t i = 0; i < taken; ++i) {
        const MpmcMessage& m = batch[i];
        std::uint64_t seq = 0;
        std::uint32_t producer = 0;
        std::memcpy(&seq, m.bytes, sizeof(seq));
        std::memcpy(&producer, m.bytes + 8, sizeof(producer));
        const bool ok = rb::check_message(m.bytes, sizeof(m.bytes), seq) && producer < producers &&
                        seq >= next_min[producer] && seq < end[producer];
        if (ok) next_min[producer] = seq + 1;
        bad += !ok;
        sum += seq;
      }
      pending += taken;
      if (pending >= 256) {
        shared->consumed.value.fetch_add(std::exchange(pending, 0), std::memory_order_relaxed);
      }
      idle = 0;
      continue;
    }
    if (status != RingStatus::kOk && status != RingStatus::kEmpty) return 2;
    // Looked empty: account for what we took, then stop once everything is taken.
    shared->consumed.value.fetch_add(std::exchange(pending, 0), std::memory_order_relaxed);
    if (shared->consumed.value.load(std::memory_order_relaxed) >= n) break;
    if (!watch.ok()) return 3;
    if (++idle > 64) {
      sched_yield();  // 4 processes may share 2 cores
    } else {
      cpu_relax();
    }
  }
  shared->seq_sum.value.fetch_add(sum, std::memory_order_relaxed);
  shared->bad.value.fetch_add(bad, std::memory_order_relaxed);
  // release: our totals are visible to the parent that sees the count.
  shared->consumers_done.value.fetch_add(1, std::memory_order_release);
  return bad == 0 ? 0 : 1;
}

// Like moodycamel's initial 1024 slots per producer. Slot chunks are made up front, not
// timed: one lap through every slot (which creates them), then drained.
template <class Ring>
void prefault(Ring& ring, std::size_t slots) {
  std::vector<MpmcMessage> fill(slots);
  for (std::size_t i = 0; i < fill.size(); i += kBatch) {
    ring.try_push_batch(std::span<const MpmcMessage>(fill).subspan(i, kBatch), nullptr);
  }
  std::size_t taken = 0;
  while (ring.try_pop_batch(fill, &taken) == RingStatus::kOk && taken > 0) {
  }
}

ringfork::MpmcRing<MpmcMessage> one_ring(ringfork::SharedArena& arena, std::uint32_t producers) {
  auto ring = ringfork::MpmcRing<MpmcMessage>::create(
      arena, {.capacity = 1024 * producers, .limit = 0, .chunk_slots = 1024});
  prefault(ring, ring.capacity());
  return ring;
}

ringfork::ShardedMpmcRing<MpmcMessage> sharded_ring(ringfork::SharedArena& arena,
                                                   std::uint32_t producers) {
  using Ring = ringfork::ShardedMpmcRing<MpmcMessage>;
  auto ring = Ring::create(
      arena, {.lanes = producers, .lane = {.capacity = 1024, .limit = 0, .chunk_slots = 1024}});
  for (std::uint32_t lane = 0; lane < producers; ++lane) {
    Ring handle = Ring::attach(arena, ring.offset());  // takes the next lane at its first push
    prefault(handle, 1024);
  }
  return ring;
}

template <bool kBatched, class MakeRing>
void mpmc_xproc(benchmark::State& state, MakeRing make_ring) {
  const auto producers = static_cast<std::uint32_t>(state.range(1));
  const auto consumers = static_cast<std::uint32_t>(state.range(2));
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  SharedMemory memory(std::size_t{64} << 20);
  auto ring = make_ring(memory.arena, producers);
  rb::SharedRegion shm(sizeof(MpmcShared));
  auto* shared = shm.construct<MpmcShared>();

  // One producer and one consumer: pinned like every other pair. With four processes on
  // two cores, the scheduler places them (moodycamel's threads are not pinned either).
  const bool pin_pair = producers == 1 && consumers == 1;
  const rb::CpuPair cpus = pin_pair ? rb::pick_cpus() : rb::CpuPair{};
  rb::ScopedPin pin(cpus.producer);
  std::vector<std::unique_ptr<rb::ForkedPeer>> children;
  for (std::uint32_t c = 0; c < consumers; ++c) {
    children.push_back(std::make_unique<rb::ForkedPeer>(
        [&]() -> int {
          shared->ready.value.fetch_add(1, std::memory_order_release);
          return mpmc_consume<kBatched>(ring, shared, n, producers);
        },
        cpus.consumer));
  }
  for (std::uint32_t p = 1; p < producers; ++p) {  // the parent is producer 0
    children.push_back(std::make_unique<rb::ForkedPeer>([&, p]() -> int {
      shared->ready.value.fetch_add(1, std::memory_order_release);
      if (!rb::wait_until([&] { return shared->go.value.load(std::memory_order_acquire) != 0; })) {
        return 3;
      }
      return mpmc_produce<kBatched>(ring, n, p, producers, nullptr) ? 0 : 2;
    }));
  }
  const std::uint64_t child_count = children.size();
  if (!await_flag(shared->ready, child_count, children.front().get())) {
    state.SkipWithError("children did not start");
    return;
  }
  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(n))) {
    shared->go.value.store(1, std::memory_order_release);
    if (mpmc_produce<kBatched>(ring, n, 0, producers, children.front().get())) {
      // Timed: the consumers have taken and checked everything.
      await_flag(shared->consumers_done, consumers, children.front().get());
    }
  }
  bool ok = true;
  for (auto& child : children) ok = rb::finish_peer(state, *child, "mpmc peer") && ok;
  if (!ok) return;
  if (shared->consumed.value.load() != n || shared->bad.value.load() != 0 ||
      shared->seq_sum.value.load() != n * (n - 1) / 2) {
    state.SkipWithError("mpmc: lost, duplicated, reordered or corrupted messages");
    return;
  }
  set_processed(state, sizeof(MpmcMessage));
}

void BM_MpmcXproc(benchmark::State& state) { mpmc_xproc<false>(state, sharded_ring); }
void BM_MpmcXprocBatch(benchmark::State& state) { mpmc_xproc<true>(state, sharded_ring); }
void BM_MpmcOneRingXproc(benchmark::State& state) { mpmc_xproc<false>(state, one_ring); }
BENCHMARK(BM_MpmcXproc)->Args({64, 1, 1})->Args({64, 2, 2})->UseRealTime();
BENCHMARK(BM_MpmcXprocBatch)->Args({64, 1, 1})->Args({64, 2, 2})->UseRealTime();
BENCHMARK(BM_MpmcOneRingXproc)->Args({64, 1, 1})->Args({64, 2, 2})->UseRealTime();

// ---- Queue<Bytes> ----------------------------------------------------------------------

// The queue's byte core (Queue<Bytes>::bytes()): put copies the message into shared memory,
// get copies it out into a reused buffer (Queue<Bytes>::get would hand back a fresh vector
// each time), both the blocking calls. maxsize bounds the queue at kQueueDepth messages:
// unbounded, a producer that outruns its consumer grows the backlog (and the 4 KiB blocks
// behind it) until put fails at the memory cap; bounded, put waits instead. Memory stays
// under kQueueDepth messages either way, and put/get take the same path until it is reached.
constexpr std::size_t kQueueDepth = 4096;

void BM_QueueXproc(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  SharedMemory memory(std::size_t{256} << 20);
  ringfork::BlockPool pool = ringfork::BlockPool::create(memory.arena);
  auto typed = ringfork::Queue<ringfork::Bytes>::create(
      memory.arena, pool, {.maxsize = kQueueDepth, .max_backlog = kQueueDepth});
  ringfork::ByteQueue& queue = typed.bytes();
  rb::SharedRegion shm(sizeof(Handshake));
  auto* hs = shm.construct<Handshake>();

  const rb::CpuPair cpus = rb::pick_cpus();
  rb::ScopedPin pin(cpus.producer);
  rb::ForkedPeer consumer = rb::fork_consumer(*hs, cpus.consumer, [&]() -> int {
    std::vector<std::byte> message;
    message.reserve(size);
    std::uint64_t bad = 0;
    const Deadline deadline = Deadline::after(rb::kWatchdog);
    for (std::uint64_t seq = 0; seq < n; ++seq) {
      queue.get(message, deadline);  // throws Empty on the watchdog: exit code 70
      bad += message.size() != size || !rb::check_message(message.data(), size, seq);
    }
    return bad == 0 ? 0 : 1;
  });
  if (!rb::await_consumer_ready(state, *hs, consumer)) return;
  std::vector<std::byte> message(size);
  rb::stamp_message_full(message.data(), size, 0);
  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(n))) {
    const Deadline deadline = Deadline::after(rb::kWatchdog);
    bool failed = false;
    try {
      for (std::uint64_t seq = 0; seq < n; ++seq) {
        rb::stamp_message(message.data(), size, seq);
        queue.put(message, deadline);
      }
    } catch (const std::exception&) {  // Full at the watchdog: the consumer is stuck
      failed = true;
      consumer.kill_now();
    }
    if (!failed) await_flag(hs->consumer_done, 1, &consumer);
  }
  if (rb::finish_peer(state, consumer, "consumer")) set_processed(state, size);
}
BENCHMARK(BM_QueueXproc)->Arg(64)->Arg(4096)->UseRealTime();

}  // namespace
