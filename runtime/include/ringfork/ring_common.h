// What every ring shares: operation status, counters, and the participant registry used to
// tell a dead peer from a slow one.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <string>

#include "ringfork/cache_line.h"

namespace ringfork {

enum class RingStatus {
  kOk,
  kEmpty,     // nothing to take right now (non-blocking calls)
  kFull,      // no free slot right now (non-blocking calls)
  kClosed,    // closed: producers may not add; consumers see this once drained
  kTimedOut,  // a blocking call reached its deadline
  kNoMemory,  // the segment (or the ring's participant registry) is exhausted
};
const char* to_string(RingStatus status) noexcept;

// A snapshot of a ring's statistics. puts/gets are derived from the indices, so counting
// them costs nothing on the hot path; the wait counters are bumped only on slow paths.
struct RingCounters {
  std::uint64_t puts = 0;
  std::uint64_t gets = 0;
  std::uint64_t full_waits = 0;   // times a producer had to wait (or give up) on a full ring
  std::uint64_t empty_waits = 0;  // times a consumer had to wait on an empty ring
  std::uint64_t wakes = 0;        // futex wake system calls made by notifiers
  std::uint64_t high_water = 0;   // most messages ever held at once (as seen by producers)
  std::uint64_t dead_producer_slots = 0;  // slots skipped: claimed by a producer that died
  std::uint64_t dead_consumer_slots = 0;  // slots freed: taken by a consumer that died
  // MPMC rings: full waits that lasted a whole liveness interval (20 ms) with no wake: the
  // consumers stopped taking for that long, or one died holding room.
  std::uint64_t stalled_full_waits = 0;

  // Adds another ring's counters, as for rings that make up one queue (high_water: the
  // larger of the two, the most one ring held).
  void add(const RingCounters& other) noexcept {
    puts += other.puts;
    gets += other.gets;
    full_waits += other.full_waits;
    empty_waits += other.empty_waits;
    wakes += other.wakes;
    high_water = high_water > other.high_water ? high_water : other.high_water;
    dead_producer_slots += other.dead_producer_slots;
    dead_consumer_slots += other.dead_consumer_slots;
    stalled_full_waits += other.stalled_full_waits;
  }
};

// Raises `target` to at least `value`. relaxed: a statistic, ordered with nothing.
inline void atomic_max(std::atomic<std::uint64_t>& target, std::uint64_t value) noexcept {
  std::uint64_t seen = target.load(std::memory_order_relaxed);
  while (seen < value &&
         !target.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

// The counters every ring control block keeps under the same names.
template <class Control>
RingCounters read_common_counters(const Control& control) noexcept {
  // relaxed: a statistics snapshot, ordered with nothing.
  RingCounters counters;
  counters.puts = control.tail.load(std::memory_order_relaxed);
  counters.gets = control.head.load(std::memory_order_relaxed);
  counters.full_waits = control.full_waits.load(std::memory_order_relaxed);
  counters.empty_waits = control.empty_waits.load(std::memory_order_relaxed);
  counters.wakes = control.not_empty.wake_syscalls() + control.not_full.wake_syscalls();
  counters.high_water = control.high_water.load(std::memory_order_relaxed);
  return counters;
}

// close(): producers get kClosed from now on; consumers drain what is left, then kClosed.
template <class Control>
void close_ring(Control& control) noexcept {
  // release: whatever was published before close stays visible to consumers that see it.
  control.closed.store(1, std::memory_order_release);
  control.not_empty.notify_all();
  control.not_full.notify_all();
}

// tail - head as published; 0 for indices that cannot be right (a corrupt peer).
template <class Control>
std::size_t published_span(const Control& control, std::uint64_t capacity) noexcept {
  const std::uint64_t head = control.head.load(std::memory_order_acquire);
  const std::uint64_t tail = control.tail.load(std::memory_order_acquire);
  return tail - head > capacity ? 0 : static_cast<std::size_t>(tail - head);
}

// Whether `pid` names a process that has not exited. A zombie (exited, not yet reaped by its
// parent) counts as gone: kill(pid, 0) alone calls it alive, and the claims of a killed
// producer or consumer would then pin a ring for as long as its parent does not reap it.
// A few microseconds (it reads /proc/<pid>/stat): for liveness checks, not hot paths.
bool process_alive(std::int32_t pid) noexcept;

// Thrown (as std::invalid_argument) when a ring header read from shared memory does not
// describe a ring of the expected kind; names the offset so the caller can find the bug.
std::string ring_mismatch_message(const char* kind, std::uint64_t offset, const char* detail);

}  // namespace ringfork
