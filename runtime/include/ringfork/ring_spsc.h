// SpscRing<T>: a bounded single-producer single-consumer ring of trivially copyable T in a
// shared segment; producer and consumer may be different processes.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <stdexcept>
#include <type_traits>

#include "ringfork/arena.h"
#include "ringfork/cache_line.h"
#include "ringfork/eventcount.h"
#include "ringfork/ring_common.h"
#include "ringfork/spin_wait.h"

namespace ringfork {

// Shared layout. The producer writes only its line, the consumer only its line; each keeps
// a process-local copy of the other's index (in the handle) and rereads the shared one only
// when the copy says "full" or "empty", so in steady state each side touches the other's
// line once per lap of free space, not once per message.
struct SpscRingControl {
  static constexpr std::uint64_t kMagic = 0x43505352474e4952;  // "RINGRSPC"
  static constexpr std::uint32_t kVersion = 1;

  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t slot_bytes;
  std::uint64_t capacity;  // a power of two
  std::uint64_t slots_offset;
  // Read-mostly: written once by close().
  std::atomic<std::uint32_t> closed;
  // Align to avoid false sharing between the producer's and the consumer's lines.
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> tail;  // next slot to write
  std::atomic<std::uint64_t> high_water;
  std::atomic<std::uint64_t> full_waits;
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> head;  // next slot to read
  std::atomic<std::uint64_t> empty_waits;
  alignas(kFalseSharingRange) EventCount not_empty;  // consumers park here
  alignas(kFalseSharingRange) EventCount not_full;   // producers park here
};
static_assert(std::is_standard_layout_v<SpscRingControl>, "read by other processes");

// Contract: exactly one producer thread (in any process) calls the producer functions and
// exactly one consumer thread calls the consumer functions; which processes they are may
// change over time as long as only one of each is active. A message becomes visible whole,
// at the release store of `tail`, so a producer killed mid-write publishes nothing.
// try_*, reserve/commit and peek/release never block, throw or allocate; push/pop block up
// to a deadline (spin briefly, then futex). create/attach throw.
template <class T>
class SpscRing {
  static_assert(std::is_trivially_copyable_v<T>,
                "ring slots are copied between processes byte by byte");

 public:
  static SpscRing create(SharedArena& arena, std::size_t min_capacity) {
    if (min_capacity == 0 || min_capacity > (std::size_t{1} << 40)) {
      throw std::invalid_argument("SpscRing capacity must be 1..2^40 slots, got " +
                                  std::to_string(min_capacity));
    }
    const std::uint64_t capacity = std::bit_ceil(static_cast<std::uint64_t>(min_capacity));
    const std::uint64_t control =
        arena.allocate_or_throw(sizeof(SpscRingControl), kFalseSharingRange, "an SPSC ring");
    const std::uint64_t slots = arena.allocate_or_throw(
        capacity * sizeof(T), std::max<std::size_t>(alignof(T), kCacheLineSize), "SPSC slots");
    auto* header = new (arena.segment().at(Offset<SpscRingControl>{control})) SpscRingControl{};
    header->magic = SpscRingControl::kMagic;
    header->version = SpscRingControl::kVersion;
    header->slot_bytes = sizeof(T);
    header->capacity = capacity;
    header->slots_offset = slots;
    return attach(arena.segment(), control);
  }

  static SpscRing attach(const Segment& segment, std::uint64_t offset) {
    auto* header = segment.try_at(Offset<SpscRingControl>{offset});
    if (header == nullptr) {
      throw std::invalid_argument(ring_mismatch_message("SPSC ring", offset, "out of bounds"));
    }
    if (header->magic != SpscRingControl::kMagic || header->version != SpscRingControl::kVersion) {
      throw std::invalid_argument(ring_mismatch_message("SPSC ring", offset, "bad magic/version"));
    }
    if (header->slot_bytes != sizeof(T) || !std::has_single_bit(header->capacity)) {
      throw std::invalid_argument(
          ring_mismatch_message("SPSC ring", offset, "slot size or capacity mismatch"));
    }
    T* slots = segment.try_at(Offset<T>{header->slots_offset}, header->capacity);
    if (slots == nullptr) {
      throw std::invalid_argument(ring_mismatch_message("SPSC ring", offset, "slots outside segment"));
    }
    return SpscRing(offset, header, slots);
  }

  std::uint64_t offset() const noexcept { return offset_; }
  std::size_t capacity() const noexcept { return mask_ + 1; }

  // ---- producer ----

  RingStatus try_push(const T& value) noexcept {
    std::span<T> space = reserve(1);
    if (space.empty()) return closed() ? RingStatus::kClosed : RingStatus::kFull;
    space[0] = value;
    commit(1);
    return RingStatus::kOk;
  }

  // Pushes a prefix of `values` (as much as fits) and publishes it once; returns its length.
  std::size_t try_push_batch(std::span<const T> values) noexcept {
    std::size_t pushed = 0;
    while (pushed < values.size()) {
      std::span<T> space = reserve(values.size() - pushed);
      if (space.empty()) break;
      std::memcpy(static_cast<void*>(space.data()), values.data() + pushed, space.size_bytes());
      pushed += space.size();
      advance_tail(space.size());
    }
    if (pushed > 0) publish_tail();
    return pushed;
  }

  // Zero-copy: up to `count` contiguous free slots to write in place (fewer at the wrap;
  // empty when full or closed). Nothing is visible to the consumer until commit().
  std::span<T> reserve(std::size_t count) noexcept {
    // relaxed: only this producer writes tail.
    const std::uint64_t tail = local_tail_;
    std::uint64_t free_slots = capacity() - (tail - cached_head_);
    if (free_slots < count) {
      // acquire: pairs with the consumer's release of head, so the slots it freed are no
      // longer being read when we overwrite them.
      cached_head_ = control_->head.load(std::memory_order_acquire);
      free_slots = capacity() - (tail - cached_head_);
      if (free_slots == 0) return {};
    }
    // acquire: a close() seen here happened before; nothing else depends on it.
    if (control_->closed.load(std::memory_order_acquire) != 0) return {};
    const std::uint64_t index = tail & mask_;
    const std::size_t contiguous = static_cast<std::size_t>(
        std::min<std::uint64_t>({count, free_slots, capacity() - index}));
    return {slots_ + index, contiguous};
  }

  // Publishes `count` slots written since reserve(), and wakes a sleeping consumer.
  void commit(std::size_t count) noexcept {
    advance_tail(count);
    publish_tail();
  }

  // Blocks until there is room, the ring is closed, or the deadline passes.
  RingStatus push(const T& value, Deadline deadline = Deadline::never()) {
    RingStatus status = try_push(value);
    if (status != RingStatus::kFull) return status;
    control_->full_waits.fetch_add(1, std::memory_order_relaxed);
    spin_then_park(
        control_->not_full,
        [&] { return closed() || control_->head.load(std::memory_order_acquire) + capacity() > local_tail_; },
        deadline);
    status = try_push(value);
    return status == RingStatus::kFull ? RingStatus::kTimedOut : status;
  }

  // ---- consumer ----

  RingStatus try_pop(T& value) noexcept {
    std::span<const T> ready = peek(1);
    if (ready.empty()) return drained_status();
    value = ready[0];
    release(1);
    return RingStatus::kOk;
  }

  std::size_t try_pop_batch(std::span<T> out) noexcept {
    std::size_t taken = 0;
    while (taken < out.size()) {
      std::span<const T> ready = peek(out.size() - taken);
      if (ready.empty()) break;
      std::memcpy(static_cast<void*>(out.data() + taken), ready.data(), ready.size_bytes());
      taken += ready.size();
      local_head_ += ready.size();
    }
    if (taken > 0) publish_head();
    return taken;
  }

  // Zero-copy: up to `count` contiguous published slots to read in place, valid until
  // release(). Empty when nothing is ready.
  std::span<const T> peek(std::size_t count) noexcept {
    const std::uint64_t head = local_head_;
    std::uint64_t ready = cached_tail_ - head;
    if (ready < count) {
      // acquire: pairs with the producer's release of tail, so the slots' bytes are visible.
      cached_tail_ = control_->tail.load(std::memory_order_acquire);
      ready = cached_tail_ - head;
      // An untrusted tail further ahead than the ring holds is treated as empty.
      if (ready == 0 || ready > capacity()) return {};
    }
    const std::uint64_t index = head & mask_;
    const std::size_t contiguous =
        static_cast<std::size_t>(std::min<std::uint64_t>({count, ready, capacity() - index}));
    return {slots_ + index, contiguous};
  }

  void release(std::size_t count) noexcept {
    local_head_ += count;
    publish_head();
  }

  // Blocks until a message arrives, the ring is closed and drained, or the deadline passes.
  RingStatus pop(T& value, Deadline deadline = Deadline::never()) {
    RingStatus status = try_pop(value);
    if (status != RingStatus::kEmpty) return status;
    control_->empty_waits.fetch_add(1, std::memory_order_relaxed);
    spin_then_park(
        control_->not_empty,
        [&] { return closed() || control_->tail.load(std::memory_order_acquire) != local_head_; },
        deadline);
    status = try_pop(value);
    return status == RingStatus::kEmpty ? RingStatus::kTimedOut : status;
  }

  // ---- either side ----

  // After close() producers get kClosed; consumers drain what is left, then get kClosed.
  // close() is the producer's call, the end of its stream. Called by another thread or
  // process while the producer pushes, it can race one push: that push returns kOk after a
  // consumer that found the ring empty has returned kClosed, and the message is not received.
  // (MpmcRing and Queue close safely from anywhere: their producers publish with a CAS that
  // fails once closed, which this ring's single producer does not pay for.)
  void close() noexcept { close_ring(*control_); }
  bool closed() const noexcept { return control_->closed.load(std::memory_order_acquire) != 0; }

  // Messages published and not yet released; exact when both sides are quiescent.
  std::size_t size() const noexcept { return published_span(*control_, capacity()); }

  RingCounters counters() const noexcept {
    RingCounters counters = read_common_counters(*control_);
    return counters;
  }

 private:
  SpscRing(std::uint64_t offset, SpscRingControl* control, T* slots)
      : offset_(offset),
        control_(control),
        slots_(slots),
        mask_(control->capacity - 1),
        // The handle resumes wherever the shared indices are (a new process may take over a
        // side). relaxed: the acquire loads in reserve()/peek() order the data.
        local_tail_(control->tail.load(std::memory_order_relaxed)),
        local_head_(control->head.load(std::memory_order_relaxed)),
        cached_head_(local_head_),
        cached_tail_(local_tail_) {}

  void advance_tail(std::size_t count) noexcept { local_tail_ += count; }

  void publish_tail() noexcept {
    // release: the slots' bytes written before this are visible to a consumer that
    // acquires the new tail.
    control_->tail.store(local_tail_, std::memory_order_release);
    const std::uint64_t held = local_tail_ - cached_head_;
    if (held > high_water_seen_) {
      high_water_seen_ = held;
      atomic_max(control_->high_water, held);
    }
    control_->not_empty.notify_all();
  }

  void publish_head() noexcept {
    // release: our reads of the slots finish before the producer may overwrite them.
    control_->head.store(local_head_, std::memory_order_release);
    control_->not_full.notify_all();
  }

  RingStatus drained_status() const noexcept {
    if (!closed()) return RingStatus::kEmpty;
    // Closed: report kClosed only once everything published before close() was taken.
    // acquire: pairs with the producer's release of tail.
    return control_->tail.load(std::memory_order_acquire) == local_head_ ? RingStatus::kClosed
                                                                         : RingStatus::kEmpty;
  }

  std::uint64_t offset_;
  SpscRingControl* control_;
  T* slots_;
  std::uint64_t mask_;
  // Process-local state of this handle's side(s).
  std::uint64_t local_tail_;
  std::uint64_t local_head_;
  std::uint64_t cached_head_;
  std::uint64_t cached_tail_;
  std::uint64_t high_water_seen_ = 0;
};

}  // namespace ringfork
