// RingChain<T>: the MpmcRings under a queue. A bounded queue has exactly one. An unbounded
// one starts with a small ring and, when that fills, links a ring twice as large, so its
// memory follows the largest backlog it has held, not the number of messages it has passed,
// and a queue that is read as fast as it is written keeps cycling through a ring that stays
// in cache.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ringfork/arena.h"
#include "ringfork/cache_line.h"
#include "ringfork/deadline.h"
#include "ringfork/ring_common.h"
#include "ringfork/ring_mpmc.h"

namespace ringfork {

// Lives in shared memory inside the queue's control block. Ring k + 1, once it exists,
// follows ring k: a producer that finds ring k full makes ring k + 1, links it, and then
// closes ring k (it is "sealed"); consumers drain a sealed ring before they move on, so
// every message is taken and each producer's messages stay in order.
struct RingChainControl {
  static constexpr int kMaxRings = 32;  // 1 Ki slots doubling to 2^32 takes 23
  std::uint64_t most_held;  // maxsize (bounded) or max_backlog (unbounded)
  std::uint32_t grows;      // 1: unbounded, links larger rings when full
  std::uint32_t reserved;
  std::atomic<std::uint64_t> ring_offsets[kMaxRings];  // 0: not made yet
  // Hints for processes that attach later: rings before them are sealed (and, for the
  // consumer hint, drained). Advanced rarely, so they share a line.
  alignas(kFalseSharingRange) std::atomic<std::uint32_t> producer_ring;
  std::atomic<std::uint32_t> consumer_ring;
  std::atomic<std::uint32_t> closed;  // close() was called: no ring is opened after it
};
static_assert(std::is_standard_layout_v<RingChainControl>, "read by other processes");

// Contract: as MpmcRing<T> (any thread of any process that maps the segment; handles made
// before fork() work in the child), plus: try_push on an unbounded chain never returns
// kFull; it links a ring twice as large (up to most_held), or returns kNoMemory when the
// chain holds most_held messages, its newest ring is full at most_held, or the segment is
// exhausted. A ring is linked only while fewer than most_held are held, so fewer than twice
// most_held are ever held. Rings are never freed (the arena does not free): a chain's
// memory is that of its largest backlog, about twice over.
template <class T>
class RingChain {
 public:
  using Ring = MpmcRing<T>;
  static constexpr std::size_t kFirstUnboundedCapacity = 1024;
  static constexpr std::size_t kChunkSlots = 512;

  // Fills a zeroed control block: one ring of `most_held` (bounded), or a growing chain
  // whose newest ring holds at most `most_held` (unbounded). Throws like MpmcRing::create.
  static void create(SharedArena& arena, RingChainControl& control, std::size_t most_held,
                     bool grows) {
    control.most_held = most_held;
    control.grows = grows ? 1 : 0;
    const std::size_t first = grows ? std::min(most_held, kFirstUnboundedCapacity) : most_held;
    // relaxed: the control block is published to other processes with the queue's offset.
    control.ring_offsets[0].store(make_ring(arena, first, most_held), std::memory_order_relaxed);
  }

  // Throws std::invalid_argument when `control` does not describe a chain.
  static RingChain attach(SharedArena& arena, RingChainControl& control) {
    // acquire: the first ring was published with the control block.
    if (control.most_held == 0 || control.ring_offsets[0].load(std::memory_order_acquire) == 0) {
      throw std::invalid_argument("queue control block has no ring (corrupt or not a queue)");
    }
    RingChain chain(arena, control);
    // Checked here, where a corrupt ring can still be reported; rings linked later are made by
    // this code and attached on first use.
    for (std::uint32_t i = 0; i < RingChainControl::kMaxRings; ++i) {
      const std::uint64_t offset = control.ring_offsets[i].load(std::memory_order_acquire);
      if (offset == 0) break;
      chain.local_->rings[i].store(new Ring(Ring::attach(arena, offset)), std::memory_order_release);
    }
    return chain;
  }

  // ---- producers ----

  template <class Write>
  [[gnu::always_inline]] RingStatus try_push_with(Write&& write) noexcept {
    // relaxed: a hint; every ring it names exists, and a stale one only costs a walk.
    std::uint32_t index = local_->producer_ring.load(std::memory_order_relaxed);
    for (;;) {
      RingStatus status = ring(index).try_push_with(write);
      if (status == RingStatus::kFull && control_->grows != 0) status = grow(index);
      // A ring closed by close() (not sealed by a grower) ends the put even when a successor
      // exists: a grower that raced close() may link one that consumers will never read.
      // close() stores the flag before it closes any ring, so it is seen here.
      if (status != RingStatus::kClosed || !next_exists(index) || closed()) return status;
      index = advance(local_->producer_ring, control_->producer_ring, index);
    }
  }

  template <class Write>
  RingStatus push_with(Write&& write, Deadline deadline) {
    // A growing chain never waits for room; a bounded one has a single ring.
    if (control_->grows != 0) return try_push_with(write);
    return ring(0).push_with(write, deadline);
  }

  RingStatus try_push(const T& value) noexcept {
    return try_push_with([&value](T& slot) noexcept { slot = value; });
  }
  RingStatus push(const T& value, Deadline deadline) {
    return push_with([&value](T& slot) noexcept { slot = value; }, deadline);
  }

  // ---- consumers ----

  template <class Read>
  [[gnu::always_inline]] RingStatus try_pop_with(Read&& read) noexcept {
    return pop_from_chain([&read](Ring& ring) { return ring.try_pop_with(read); });
  }

  template <class Read>
  RingStatus pop_with(Read&& read, Deadline deadline) {
    return pop_from_chain([&read, deadline](Ring& ring) { return ring.pop_with(read, deadline); });
  }

  RingStatus try_pop(T& value) noexcept {
    return try_pop_with([&value](const T& slot) noexcept { value = slot; });
  }
  RingStatus pop(T& value, Deadline deadline) {
    return pop_with([&value](const T& slot) noexcept { value = slot; }, deadline);
  }

  // ---- anyone ----

  // No push succeeds once close() returned; consumers drain every ring, then see kClosed.
  void close() noexcept {
    // seq_cst: with grow()'s seq_cst link and load of `closed`, either close() sees the
    // new ring (and closes it) or the grower sees `closed` (and closes it).
    control_->closed.store(1, std::memory_order_seq_cst);
    for (std::uint32_t i = 0; i < RingChainControl::kMaxRings; ++i) {
      if (control_->ring_offsets[i].load(std::memory_order_seq_cst) == 0) break;
      ring(i).close();
    }
  }
  bool closed() const noexcept { return control_->closed.load(std::memory_order_acquire) != 0; }

  // Messages held in all rings; approximate while others are active (like Python's qsize).
  std::size_t size() const noexcept {
    std::size_t held = 0;
    for_each_ring([&held](Ring& ring) { held += ring.size(); });
    return held;
  }

  // The rings' counters summed (high_water: the largest ring's).
  RingCounters counters() const noexcept {
    RingCounters sum;
    for_each_ring([&sum](Ring& ring) { sum.add(ring.counters()); });
    return sum;
  }

  // Rings made so far (1 for a bounded queue).
  std::size_t ring_count() const noexcept {
    std::size_t count = 0;
    for_each_ring([&count](Ring&) { ++count; });
    return count;
  }

 private:
  // Process-local: the rings attached so far and this process's hints. Shared by copies of
  // the handle and by the threads using them.
  struct Local {
    std::array<std::atomic<Ring*>, RingChainControl::kMaxRings> rings{};
    std::atomic<std::uint32_t> producer_ring{0};
    std::atomic<std::uint32_t> consumer_ring{0};
    ~Local() {
      for (auto& ring : rings) delete ring.load(std::memory_order_relaxed);
    }
  };

  RingChain(SharedArena& arena, RingChainControl& control)
      : arena_(arena), control_(&control), local_(std::make_shared<Local>()) {
    // relaxed: hints, checked against the rings themselves as they are used.
    local_->producer_ring.store(control.producer_ring.load(std::memory_order_relaxed),
                                std::memory_order_relaxed);
    local_->consumer_ring.store(control.consumer_ring.load(std::memory_order_relaxed),
                                std::memory_order_relaxed);
  }

  static std::uint64_t make_ring(SharedArena& arena, std::size_t capacity, std::size_t limit) {
    return Ring::create(arena, {.capacity = capacity,
                                .limit = std::min(limit, std::bit_ceil(capacity)),
                                .chunk_slots = kChunkSlots})
        .offset();
  }

  template <class Attempt>
  [[gnu::always_inline]] RingStatus pop_from_chain(Attempt&& attempt) {
    // relaxed: a hint, as for producers.
    std::uint32_t index = local_->consumer_ring.load(std::memory_order_relaxed);
    for (;;) {
      const RingStatus status = attempt(ring(index));
      // kClosed from a ring means closed and drained: move on if it was sealed by a grower.
      if (status != RingStatus::kClosed || !next_exists(index)) return status;
      index = advance(local_->consumer_ring, control_->consumer_ring, index);
    }
  }

  // Ring `index`, which exists (every index a hint or a walk reaches was made first).
  Ring& ring(std::uint32_t index) const noexcept {
    // acquire: pairs with the release CAS below, so the handle is fully built.
    if (Ring* known = local_->rings[index].load(std::memory_order_acquire)) return *known;
    return attach_ring(index);
  }

  [[gnu::noinline]] Ring& attach_ring(std::uint32_t index) const noexcept {
    // acquire: the ring's control block was written before its offset was linked.
    const std::uint64_t offset = control_->ring_offsets[index].load(std::memory_order_acquire);
    Ring* made = nullptr;
    try {
      made = new Ring(Ring::attach(arena_, offset));
    } catch (...) {
      // The chain's own rings were checked when made; failing here means the segment is
      // corrupt, and a queue that cannot reach its messages must not pretend otherwise.
      std::terminate();
    }
    Ring* expected = nullptr;
    // release: publishes the built handle to this process's other threads.
    if (!local_->rings[index].compare_exchange_strong(expected, made, std::memory_order_acq_rel)) {
      delete made;
      return *expected;
    }
    return *made;
  }

  bool next_exists(std::uint32_t index) const noexcept {
    // acquire: a ring is sealed (closed) only after its successor was linked, and the caller
    // saw it closed with acquire, so the link is visible here.
    return index + 1 < RingChainControl::kMaxRings &&
           control_->ring_offsets[index + 1].load(std::memory_order_acquire) != 0;
  }

  static std::uint32_t advance(std::atomic<std::uint32_t>& local, std::atomic<std::uint32_t>& shared,
                               std::uint32_t from) noexcept {
    const std::uint32_t next = from + 1;
    // relaxed: hints only ever move forward; a lost race leaves a hint behind, never ahead.
    std::uint32_t seen = local.load(std::memory_order_relaxed);
    while (seen < next && !local.compare_exchange_weak(seen, next, std::memory_order_relaxed)) {
    }
    seen = shared.load(std::memory_order_relaxed);
    while (seen < next && !shared.compare_exchange_weak(seen, next, std::memory_order_relaxed)) {
    }
    return next;
  }

  // Ring `index` is full: make sure ring index + 1 exists and ring `index` is sealed. kClosed
  // (the caller moves on), or kNoMemory at the cap or when the segment is exhausted.
  [[gnu::noinline]] RingStatus grow(std::uint32_t index) noexcept {
    Ring& full = ring(index);
    if (!next_exists(index)) {
      // The cap: a ring of most_held is full, or the chain already holds that many.
      if (index + 1 >= RingChainControl::kMaxRings || full.limit() >= control_->most_held ||
          size() >= control_->most_held) {
        return RingStatus::kNoMemory;
      }
      std::uint64_t offset = 0;
      try {
        offset = make_ring(arena_, 2 * full.capacity(), control_->most_held);
      } catch (...) {
        return RingStatus::kNoMemory;
      }
      std::uint64_t expected = 0;
      // seq_cst: see close(). A producer that loses this race leaves its ring unused (the
      // arena cannot take it back); racing growers are rare, one per doubling at most.
      control_->ring_offsets[index + 1].compare_exchange_strong(expected, offset,
                                                                std::memory_order_seq_cst);
    }
    // Sealed only now that its successor exists: a consumer that finds it closed and
    // drained moves on instead of reporting the queue closed.
    full.close();
    if (control_->closed.load(std::memory_order_seq_cst) != 0) ring(index + 1).close();
    return RingStatus::kClosed;
  }

  // Every ring made so far, oldest first (the counters start at ring 0; sealed, drained
  // rings add nothing to size()).
  template <class Visit>
  void for_each_ring(Visit&& visit) const noexcept {
    for (std::uint32_t i = 0; i < RingChainControl::kMaxRings; ++i) {
      if (control_->ring_offsets[i].load(std::memory_order_acquire) == 0) break;
      visit(ring(i));
    }
  }

  mutable SharedArena arena_;  // a handle; attaching a ring to read its counters is not a change
  RingChainControl* control_;
  std::shared_ptr<Local> local_;
};

}  // namespace ringfork
