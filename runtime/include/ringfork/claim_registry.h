// ClaimRegistry: who is in the middle of which ring positions, so that a position claimed by
// a process that then died can be told apart from one that is merely slow.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <span>

#include "ringfork/cache_line.h"
#include "ringfork/ring_common.h"

namespace ringfork {

// One per producer or consumer thread of a ring. Written only by its owner thread (one line
// each), read by peers only on the slow path, after a position stayed unfinished for a while.
struct alignas(kCacheLineSize) ClaimRecord {
  static constexpr std::uint64_t kIdle = ~std::uint64_t{0};
  std::atomic<std::int32_t> pid;        // 0 = free; a dead pid may be taken over
  std::atomic<std::uint32_t> count;     // positions [position, position + count)
  std::atomic<std::uint64_t> position;  // kIdle when no claim is in progress
};

// Lives in shared memory inside a ring's control block. Zero bytes = empty registry.
struct ClaimRegistry {
  static constexpr int kMaxRecords = 64;
  ClaimRecord records[kMaxRecords];
  // Records [0, records_used) have ever been taken: scans stop there. This line is read by
  // every operation (the incarnation, below): a whole false-sharing range of its own, so
  // that the adjacent-line prefetcher does not pair it with a record another thread writes
  // on every operation (the next registry's first record, as laid out in a ring's control).
  alignas(kFalseSharingRange) std::atomic<std::uint32_t> records_used;
  // Set by stamp() when the ring is made, and different for every registry ever made: a
  // thread's cached record in a registry since unmapped must not pass for its record in a
  // new registry made at the same address, whose record there another thread of the same
  // process may own (the pid check alone cannot tell them apart).
  std::atomic<std::uint64_t> incarnation;

  void stamp() noexcept;

  // The records ever taken (a prefix of `records`).
  std::span<const ClaimRecord> used() const noexcept {
    // acquire: pairs with take_free_record's release bump, so a record counted here is one
    // whose owner was set first.
    const std::uint32_t used = records_used.load(std::memory_order_acquire);
    return {records, std::min<std::uint32_t>(used, kMaxRecords)};
  }
  std::span<ClaimRecord> used() noexcept {
    const std::uint32_t used = records_used.load(std::memory_order_acquire);
    return {records, std::min<std::uint32_t>(used, kMaxRecords)};
  }

  // True if a live process other than a dead one has announced a claim covering `position`.
  bool live_claim_covers(std::uint64_t position) const noexcept {
    for (const ClaimRecord& record : used()) {
      // acquire: pairs with finish_claim's release, so a record seen idle means the slots
      // it covered were published first. An announced claim is visible through the
      // caller's acquire of the ring index (stored before the claimer's acq_rel CAS).
      const std::uint64_t start = record.position.load(std::memory_order_acquire);
      if (start == ClaimRecord::kIdle) continue;
      const std::uint32_t count = record.count.load(std::memory_order_relaxed);
      if (position - start < count && process_alive(record.pid.load(std::memory_order_relaxed))) {
        return true;
      }
    }
    return false;
  }
};
static_assert(std::is_standard_layout_v<ClaimRegistry>, "read by other processes");

namespace detail {
// The registries this thread used last and its records there: every ring operation asks
// for a record, almost always of the ring (producer side and consumer side: two entries) of
// the previous calls, so these answer without a function call or a general-dynamic TLS
// lookup (initial-exec: a fixed offset from the thread pointer; 80 bytes, well within what
// a dlopen'ed library may use).
struct LastClaimRecord {
  const ClaimRegistry* registry = nullptr;
  ClaimRecord* record = nullptr;
  std::uint64_t incarnation = 0;
  std::uint64_t fork_generation = 0;
  std::int32_t pid = 0;
};
inline constexpr int kLastClaimRecords = 2;
extern constinit thread_local LastClaimRecord last_claim_records[kLastClaimRecords]
    __attribute__((tls_model("initial-exec")));
// Bumped in the child after every fork(): records cached by the parent's threads are stale.
extern std::atomic<std::uint64_t> fork_generation;

ClaimRecord* claim_record_slow_path(ClaimRegistry& registry) noexcept;
}  // namespace detail

// Finds (or takes) this thread's record in `registry`. The lookup is cached per thread and
// invalidated by fork(), so a child never shares its parent's record. Returns nullptr when
// all kMaxRecords records belong to live threads.
inline ClaimRecord* claim_record_for_this_thread(ClaimRegistry& registry) noexcept {
  for (const detail::LastClaimRecord& last : detail::last_claim_records) {
    // The incarnation catches a registry made at the same address since it was cached.
    // relaxed: only this thread writes a record it owns; fork_generation changes only in a
    // single-threaded child right after fork; the incarnation only when the ring is made.
    if (last.registry == &registry &&
        last.incarnation == registry.incarnation.load(std::memory_order_relaxed) &&
        last.fork_generation == detail::fork_generation.load(std::memory_order_relaxed) &&
        last.record->pid.load(std::memory_order_relaxed) == last.pid) {
      return last.record;
    }
  }
  return detail::claim_record_slow_path(registry);
}

// Announces a claim of [position, position + count): must precede the CAS of the ring index
// that makes it (the CAS's release orders it). relaxed count: read only with the position.
// release position: a peer that reads this announcement also sees that the record's previous
// claim was finished (an MPMC producer gating on consumers relies on it).
inline void announce_claim(ClaimRecord& record, std::uint64_t position, std::uint32_t count) noexcept {
  record.count.store(count, std::memory_order_relaxed);
  record.position.store(position, std::memory_order_release);
}

// Ends the claim after the slots were published or released. release: a peer that sees the
// record idle also sees the slot states written before.
inline void finish_claim(ClaimRecord& record) noexcept {
  record.position.store(ClaimRecord::kIdle, std::memory_order_release);
}

}  // namespace ringfork
