#include "ringfork/claim_registry.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <array>

#include "ringfork/segment.h"

namespace ringfork {
namespace detail {
constinit thread_local LastClaimRecord last_claim_records[kLastClaimRecords];
std::atomic<std::uint64_t> fork_generation{1};
}  // namespace detail

namespace {

using detail::fork_generation;

void on_fork_child() noexcept { fork_generation.fetch_add(1, std::memory_order_relaxed); }

const bool atfork_registered = [] {
  ::pthread_atfork(nullptr, nullptr, on_fork_child);
  return true;
}();

struct CachedRecord {
  const ClaimRegistry* registry = nullptr;
  ClaimRecord* record = nullptr;
  std::uint64_t incarnation = 0;  // the registry's, when cached
  std::uint64_t generation = 0;
  std::int32_t pid = 0;
  std::uint64_t unmap_generation = 0;  // segment_unmap_generation() when cached
};

void give_back(CachedRecord& entry) noexcept {
  finish_claim(*entry.record);
  std::int32_t owner = entry.pid;
  // release: the record's last use happens before another thread takes it over. A CAS, so
  // a record that a new ring at the same address has since reset is left alone.
  entry.record->pid.compare_exchange_strong(owner, 0, std::memory_order_release,
                                            std::memory_order_relaxed);
  for (detail::LastClaimRecord& last : detail::last_claim_records) {
    if (last.record == entry.record) last = {};
  }
  entry = CachedRecord{};
}

// Returns this thread's records when it exits, so a long-lived process whose threads come
// and go does not exhaust a ring's registry.
struct ThreadRecords {
  std::array<CachedRecord, 16> entries{};
  std::size_t next_victim = 0;
  ~ThreadRecords() {
    const std::uint64_t generation = fork_generation.load(std::memory_order_relaxed);
    const std::uint64_t unmapped = segment_unmap_generation();
    for (CachedRecord& entry : entries) {
      // A record is written back only if no segment was unmapped since it was cached: it
      // may live in the one that went. Skipping leaves the record to be taken over once
      // this process is gone, which costs a registry entry, never a crash.
      if (entry.record != nullptr && entry.generation == generation &&
          entry.unmap_generation == unmapped) {
        give_back(entry);
      }
    }
  }
};

thread_local ThreadRecords thread_records;

ClaimRecord* take_free_record(ClaimRegistry& registry) noexcept {
  const std::int32_t self = ::getpid();
  for (int pass = 0; pass < 2; ++pass) {
    for (ClaimRecord& record : registry.records) {
      std::int32_t owner = record.pid.load(std::memory_order_acquire);
      const bool free = owner == 0 || (pass == 1 && owner != self && !process_alive(owner));
      if (!free) continue;
      // acq_rel: taking a record over from a dead owner must see its last writes.
      if (record.pid.compare_exchange_strong(owner, self, std::memory_order_acq_rel)) {
        finish_claim(record);
        // release: scans that count this record see its owner and idle position.
        const auto used = static_cast<std::uint32_t>(&record - registry.records + 1);
        std::uint32_t seen = registry.records_used.load(std::memory_order_relaxed);
        while (seen < used && !registry.records_used.compare_exchange_weak(
                                  seen, used, std::memory_order_release, std::memory_order_relaxed)) {
        }
        return &record;
      }
    }
  }
  return nullptr;
}

// Remembers the answer in the thread's fast cache, in place of the entry used less lately.
ClaimRecord* remember(const CachedRecord& entry) noexcept {
  auto& last = detail::last_claim_records;
  static_assert(detail::kLastClaimRecords == 2);
  last[1] = last[0];
  last[0] = {entry.registry, entry.record, entry.incarnation, entry.generation, entry.pid};
  return entry.record;
}

}  // namespace

void ClaimRegistry::stamp() noexcept {
  static std::atomic<std::uint64_t> made{0};
  const auto mix = [](std::uint64_t x) {  // splitmix64's finaliser
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
    x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
    return x ^ (x >> 31);
  };
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const auto nanoseconds = static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000 +
                           static_cast<std::uint64_t>(now.tv_nsec);
  // relaxed: only the value matters. Zero stays "never stamped".
  const std::uint64_t value =
      mix(mix(nanoseconds) ^ (static_cast<std::uint64_t>(::getpid()) << 32) ^
          made.fetch_add(1, std::memory_order_relaxed));
  incarnation.store(value | 1, std::memory_order_relaxed);
}

ClaimRecord* detail::claim_record_slow_path(ClaimRegistry& registry) noexcept {
  (void)atfork_registered;
  const std::uint64_t generation = fork_generation.load(std::memory_order_relaxed);
  ThreadRecords& cache = thread_records;
  const std::uint64_t incarnation = registry.incarnation.load(std::memory_order_relaxed);
  for (CachedRecord& entry : cache.entries) {
    if (entry.registry != &registry) continue;
    // relaxed: only this thread writes a record it owns.
    if (entry.incarnation == incarnation && entry.generation == generation &&
        entry.record->pid.load(std::memory_order_relaxed) == entry.pid) {
      return remember(entry);
    }
    // A registry made at this address after ours was unmapped: our record went with it,
    // so there is nothing to give back.
    if (entry.incarnation != incarnation) entry = CachedRecord{};
  }
  ClaimRecord* record = take_free_record(registry);
  if (record == nullptr) return nullptr;
  CachedRecord* slot = nullptr;
  for (CachedRecord& entry : cache.entries) {
    if (entry.registry == nullptr || entry.generation != generation) {
      slot = &entry;
      break;
    }
  }
  if (slot == nullptr) {
    // Evict round-robin and hand the evicted record back: no claim is in progress on it,
    // since this thread is here and not inside a ring operation.
    slot = &cache.entries[cache.next_victim++ % cache.entries.size()];
    if (slot->unmap_generation == segment_unmap_generation()) give_back(*slot);
  }
  *slot = CachedRecord{&registry, record, incarnation, generation,
                       record->pid.load(std::memory_order_relaxed), segment_unmap_generation()};
  return remember(*slot);
}

}  // namespace ringfork
