// MpmcRing<T>: a bounded multi-producer multi-consumer ring of trivially copyable T in a
// shared segment, any number of producer and consumer threads in any processes, that
// survives participants being killed at any instruction.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "ringfork/arena.h"
#include "ringfork/cache_line.h"
#include "ringfork/claim_registry.h"
#include "ringfork/eventcount.h"
#include "ringfork/ring_common.h"
#include "ringfork/spin_wait.h"

namespace ringfork {

// A slot's `state` says which position it serves and whether it holds a message. With
// `base = position & ~mask` (the lap's first position): base = free for `position`,
// base + 1 = holds its message, base + capacity = free for the next lap. Zeroed memory is
// therefore "free for lap 0", so slot chunks can be created lazily from zeroed arena memory.
template <class T>
struct alignas(kCacheLineSize) MpmcSlot {
  std::atomic<std::uint64_t> state;
  T value;
};

struct MpmcRingControl {
  static constexpr std::uint64_t kMagic = 0x434d504d474e4952;  // "RINGMPMC"
  static constexpr std::uint32_t kVersion = 1;

  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t slot_bytes;
  std::uint64_t capacity;       // slots, a power of two
  std::uint64_t limit;          // most messages held at once (maxsize), <= capacity
  std::uint32_t chunk_shift;    // slots per chunk = 1 << chunk_shift
  std::uint32_t chunk_count;    // capacity >> chunk_shift
  std::uint64_t directory_offset;  // chunk_count offsets of slot chunks, 0 = not yet made
  std::atomic<std::uint32_t> closed;  // read-mostly
  // Align to avoid false sharing between producers' and consumers' hot indices.
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> tail;  // next position to claim
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> head;  // next position to take
  alignas(kFalseSharingRange) EventCount not_empty;
  alignas(kFalseSharingRange) EventCount not_full;
  // Slow-path statistics and the spare chunk share a line that the hot paths never touch.
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> full_waits;
  std::atomic<std::uint64_t> empty_waits;
  std::atomic<std::uint64_t> high_water;
  std::atomic<std::uint64_t> dead_producer_slots;
  std::atomic<std::uint64_t> dead_consumer_slots;
  std::atomic<std::uint64_t> spare_chunk;  // a chunk made by a producer that lost the race
  alignas(kFalseSharingRange) ClaimRegistry producers;
  ClaimRegistry consumers;
};
static_assert(std::is_standard_layout_v<MpmcRingControl>, "read by other processes");

struct MpmcRingOptions {
  std::size_t capacity = 1024;       // slots; rounded up to a power of two
  std::size_t limit = 0;             // 0: the capacity; otherwise the most messages held
  std::size_t chunk_slots = 1024;    // slot memory is made lazily, a chunk at a time
};

// Contract: any thread of any process mapping the segment may push and pop. A message is
// visible whole or not at all: its slot's state is released only after the value is
// written. A producer that dies after claiming a position leaves a hole that consumers
// skip once no live process claims it (counted in dead_producer_slots); a consumer that
// dies while copying leaves a slot that producers free once no live process claims it
// (dead_consumer_slots; that one message is lost with its consumer). try_* never block,
// throw or allocate shared memory except the first use of a slot chunk (kNoMemory if the
// segment is exhausted). push/pop block to a deadline (spin, then futex) and check for
// dead peers every kLivenessInterval. One handle (and its copies) may be used by many
// threads at once.
template <class T>
class MpmcRing {
  static_assert(std::is_trivially_copyable_v<T>,
                "ring slots are copied between processes byte by byte");

 public:
  using Slot = MpmcSlot<T>;
  static constexpr std::chrono::milliseconds kLivenessInterval{20};

  static MpmcRing create(SharedArena& arena, const MpmcRingOptions& options) {
    if (options.capacity == 0 || options.capacity > (std::size_t{1} << 40)) {
      throw std::invalid_argument("MpmcRing capacity must be 1..2^40 slots, got " +
                                  std::to_string(options.capacity));
    }
    const std::uint64_t capacity =
        std::max<std::uint64_t>(2, std::bit_ceil(static_cast<std::uint64_t>(options.capacity)));
    if (options.limit > capacity) {
      throw std::invalid_argument("MpmcRing limit " + std::to_string(options.limit) +
                                  " exceeds its capacity " + std::to_string(capacity));
    }
    const std::uint64_t chunk_slots = std::min<std::uint64_t>(
        capacity, std::bit_ceil(std::max<std::uint64_t>(1, options.chunk_slots)));
    const std::uint64_t chunk_count = capacity / chunk_slots;
    if (chunk_count > (std::uint64_t{1} << 24)) {
      throw std::invalid_argument("MpmcRing needs " + std::to_string(chunk_count) +
                                  " chunks; raise MpmcRingOptions.chunk_slots");
    }
    const std::uint64_t control =
        arena.allocate_or_throw(sizeof(MpmcRingControl), kFalseSharingRange, "an MPMC ring");
    const std::uint64_t directory = arena.allocate_or_throw(
        chunk_count * sizeof(std::atomic<std::uint64_t>), kCacheLineSize, "MPMC chunk directory");
    auto* header = new (arena.segment().at(Offset<MpmcRingControl>{control})) MpmcRingControl{};
    header->magic = MpmcRingControl::kMagic;
    header->version = MpmcRingControl::kVersion;
    header->slot_bytes = sizeof(Slot);
    header->capacity = capacity;
    header->limit = options.limit == 0 ? capacity : options.limit;
    header->chunk_shift = static_cast<std::uint32_t>(std::countr_zero(chunk_slots));
    header->chunk_count = static_cast<std::uint32_t>(chunk_count);
    header->directory_offset = directory;
    return attach(arena, control);
  }

  static MpmcRing attach(SharedArena& arena, std::uint64_t offset) {
    const Segment& segment = arena.segment();
    auto* header = segment.try_at(Offset<MpmcRingControl>{offset});
    if (header == nullptr) {
      throw std::invalid_argument(ring_mismatch_message("MPMC ring", offset, "out of bounds"));
    }
    if (header->magic != MpmcRingControl::kMagic || header->version != MpmcRingControl::kVersion ||
        header->slot_bytes != sizeof(Slot)) {
      throw std::invalid_argument(
          ring_mismatch_message("MPMC ring", offset, "bad magic, version or slot size"));
    }
    const bool geometry_ok = std::has_single_bit(header->capacity) && header->limit >= 1 &&
                             header->limit <= header->capacity && header->chunk_shift < 40 &&
                             (header->capacity >> header->chunk_shift) == header->chunk_count &&
                             header->chunk_count >= 1;
    if (!geometry_ok) {
      throw std::invalid_argument(ring_mismatch_message("MPMC ring", offset, "corrupt geometry"));
    }
    auto* directory = segment.try_at(
        Offset<std::atomic<std::uint64_t>>{header->directory_offset}, header->chunk_count);
    if (directory == nullptr) {
      throw std::invalid_argument(
          ring_mismatch_message("MPMC ring", offset, "chunk directory outside segment"));
    }
    return MpmcRing(arena, offset, header, directory);
  }

  std::uint64_t offset() const noexcept { return offset_; }
  std::size_t capacity() const noexcept { return mask_ + 1; }
  std::size_t limit() const noexcept { return limit_; }

  // ---- producers ----

  // kOk, kFull (no room now, or the limit is reached), kClosed, or kNoMemory.
  RingStatus try_push(const T& value) noexcept { return try_push_batch({&value, 1}, nullptr); }

  // Pushes all of `values` as one claim, or none of them (kFull when they do not all fit).
  // `pushed` (optional) receives how many were pushed: values.size() or 0.
  RingStatus try_push_batch(std::span<const T> values, std::size_t* pushed) noexcept {
    if (pushed != nullptr) *pushed = 0;
    const std::size_t count = values.size();
    if (count == 0) return RingStatus::kOk;
    if (count > limit_) return RingStatus::kFull;
    ClaimRecord* record = claim_record_for_this_thread(control_->producers);
    if (record == nullptr) return RingStatus::kNoMemory;
    std::uint64_t position = control_->tail.load(std::memory_order_relaxed);
    for (;;) {
      if (closed()) return RingStatus::kClosed;
      // Room under the limit? A stale head only makes us more cautious; reread it then.
      // relaxed: a stale lower bound only sends us to reread head.
      if (position + count > cached_head_->load(std::memory_order_relaxed) + limit_) {
        // acquire: consumers released the slots before publishing head.
        const std::uint64_t head = control_->head.load(std::memory_order_acquire);
        cached_head_->store(head, std::memory_order_relaxed);
        if (position + count > head + limit_) {
          if (recover_dead_consumer(position)) continue;
          return RingStatus::kFull;
        }
      }
      bool all_free = true;
      bool moved = false;
      for (std::size_t i = 0; i < count; ++i) {
        Slot* slot = slot_at(position + i, /*create=*/true);
        if (slot == nullptr) return RingStatus::kNoMemory;
        // acquire: pairs with the consumer's release of the slot, so its reads are done.
        const auto diff = static_cast<std::int64_t>(slot->state.load(std::memory_order_acquire) -
                                                    lap_base(position + i));
        if (diff < 0) {  // the previous lap's message is still there
          all_free = false;
          break;
        }
        if (diff > 0) {  // another producer claimed it: our position is stale
          moved = true;
          break;
        }
      }
      if (moved) {
        position = control_->tail.load(std::memory_order_relaxed);
        continue;
      }
      if (!all_free) {
        if (recover_dead_consumer(position)) continue;
        return RingStatus::kFull;
      }
      announce_claim(*record, position, static_cast<std::uint32_t>(count));
      // acq_rel: release orders our announcement before the claim (a consumer that sees
      // the new tail sees who claimed); acquire orders the slot writes after the claim.
      if (control_->tail.compare_exchange_weak(position, position + count,
                                               std::memory_order_acq_rel,
                                               std::memory_order_relaxed)) {
        break;
      }
    }
    for (std::size_t i = 0; i < count; ++i) {
      Slot* slot = slot_at(position + i, false);
      slot->value = values[i];
      // release: the value is visible to a consumer that acquires this state.
      slot->state.store(lap_base(position + i) + 1, std::memory_order_release);
    }
    finish_claim(*record);
    if (((position + count) & 63) < count) sample_high_water(position + count);
    control_->not_empty.notify_all();
    if (pushed != nullptr) *pushed = count;
    return RingStatus::kOk;
  }

  RingStatus push(const T& value, Deadline deadline = Deadline::never()) {
    for (;;) {
      const RingStatus status = try_push(value);
      if (status != RingStatus::kFull) return status;
      control_->full_waits.fetch_add(1, std::memory_order_relaxed);
      const Deadline slice = deadline.min(Deadline::after(kLivenessInterval));
      const std::uint64_t seen_head = control_->head.load(std::memory_order_acquire);
      spin_then_park(
          control_->not_full,
          [&] { return closed() || control_->head.load(std::memory_order_acquire) != seen_head; },
          slice);
      if (deadline.expired()) {
        const RingStatus last = try_push(value);
        return last == RingStatus::kFull ? RingStatus::kTimedOut : last;
      }
    }
  }

  // ---- consumers ----

  // kOk, kEmpty, or kClosed once the ring is closed and every claimed position was taken.
  RingStatus try_pop(T& value) noexcept {
    std::size_t taken = 0;
    return try_pop_batch({&value, 1}, &taken);
  }

  // Takes up to out.size() consecutive ready messages as one claim; `taken` gets how many.
  RingStatus try_pop_batch(std::span<T> out, std::size_t* taken) noexcept {
    *taken = 0;
    if (out.empty()) return RingStatus::kOk;
    ClaimRecord* record = claim_record_for_this_thread(control_->consumers);
    if (record == nullptr) return RingStatus::kNoMemory;
    std::uint64_t position = control_->head.load(std::memory_order_relaxed);
    std::size_t count = 0;
    for (;;) {
      count = 0;
      bool moved = false;
      while (count < out.size()) {
        Slot* slot = slot_at(position + count, false);
        if (slot == nullptr) break;
        // acquire: pairs with the producer's release, so the value is visible.
        const auto diff = static_cast<std::int64_t>(slot->state.load(std::memory_order_acquire) -
                                                    (lap_base(position + count) + 1));
        if (diff < 0) break;  // not published yet
        if (diff > 0) {       // already taken by another consumer: our position is stale
          moved = count == 0;
          break;
        }
        ++count;
      }
      if (moved) {
        position = control_->head.load(std::memory_order_relaxed);
        continue;
      }
      if (count == 0) return drained_status(position);
      announce_claim(*record, position, static_cast<std::uint32_t>(count));
      // acq_rel: as for tail in try_push_batch.
      if (control_->head.compare_exchange_weak(position, position + count,
                                               std::memory_order_acq_rel,
                                               std::memory_order_relaxed)) {
        break;
      }
    }
    for (std::size_t i = 0; i < count; ++i) {
      Slot* slot = slot_at(position + i, false);
      out[i] = slot->value;
      // release: our read of the value completes before a producer may overwrite it.
      slot->state.store(lap_base(position + i) + capacity(), std::memory_order_release);
    }
    finish_claim(*record);
    *taken = count;
    control_->not_full.notify_all();
    return RingStatus::kOk;
  }

  RingStatus pop(T& value, Deadline deadline = Deadline::never()) {
    std::size_t taken = 0;
    return pop_batch({&value, 1}, &taken, deadline);
  }

  // Blocks until at least one message is taken (then takes up to out.size()), the ring is
  // closed and drained, or the deadline passes.
  RingStatus pop_batch(std::span<T> out, std::size_t* taken, Deadline deadline = Deadline::never()) {
    // The common case takes a message at once: no clock read for it.
    if (const RingStatus status = try_pop_batch(out, taken); status != RingStatus::kEmpty) {
      return status;
    }
    Deadline liveness_check = Deadline::after(kLivenessInterval);
    for (;;) {
      const RingStatus status = try_pop_batch(out, taken);
      if (status != RingStatus::kEmpty) return status;
      control_->empty_waits.fetch_add(1, std::memory_order_relaxed);
      // A position claimed but unpublished for a whole interval may belong to a dead
      // producer: check then, not on every empty poll (it scans the claim registry).
      if (liveness_check.expired()) {
        recover_dead_producer();
        liveness_check = Deadline::after(kLivenessInterval);
      }
      const WaitOutcome outcome = spin_then_park(
          control_->not_empty, [&] { return head_ready() || closed(); },
          deadline.min(liveness_check));
      // Closed with a claimed position still unpublished: nothing will notify us, so poll.
      if (outcome == WaitOutcome::kReady && !head_ready()) sched_yield();
      if (deadline.expired()) {
        const RingStatus last = try_pop_batch(out, taken);
        return last == RingStatus::kEmpty ? RingStatus::kTimedOut : last;
      }
    }
  }

  // ---- anyone ----

  void close() noexcept { close_ring(*control_); }
  bool closed() const noexcept { return control_->closed.load(std::memory_order_acquire) != 0; }

  // Claimed and not yet taken; approximate while others are active (like Python's qsize).
  std::size_t size() const noexcept { return published_span(*control_, capacity()); }

  // Skips the position at head if its producer died before publishing it. Returns true if
  // a hole was skipped. Called by blocked consumers; callable by anyone.
  bool recover_dead_producer() noexcept {
    std::uint64_t position = control_->head.load(std::memory_order_acquire);
    // acquire: claims up to tail were announced before tail moved.
    if (control_->tail.load(std::memory_order_acquire) <= position) return false;
    Slot* slot = slot_at(position, false);
    if (slot == nullptr) return false;
    if (slot->state.load(std::memory_order_acquire) != lap_base(position)) return false;
    if (control_->producers.live_claim_covers(position)) return false;
    // The claimer may have published and left its record idle while we scanned: the scan's
    // acquire loads make its publication visible to this re-read.
    if (slot->state.load(std::memory_order_acquire) != lap_base(position)) return false;
    // acq_rel: like a consumer's claim; nobody will ever publish this position.
    if (!control_->head.compare_exchange_strong(position, position + 1, std::memory_order_acq_rel)) {
      return false;
    }
    slot->state.store(lap_base(position) + capacity(), std::memory_order_release);
    control_->dead_producer_slots.fetch_add(1, std::memory_order_relaxed);
    control_->not_full.notify_all();
    return true;
  }

  RingCounters counters() const noexcept {
    RingCounters counters = read_common_counters(*control_);
    counters.dead_producer_slots = control_->dead_producer_slots.load(std::memory_order_relaxed);
    counters.dead_consumer_slots = control_->dead_consumer_slots.load(std::memory_order_relaxed);
    return counters;
  }

 private:
  MpmcRing(SharedArena& arena, std::uint64_t offset, MpmcRingControl* control,
           std::atomic<std::uint64_t>* directory)
      : arena_(arena),
        offset_(offset),
        control_(control),
        directory_(directory),
        mask_(control->capacity - 1),
        limit_(control->limit),
        chunk_shift_(control->chunk_shift),
        chunk_mask_((std::uint64_t{1} << control->chunk_shift) - 1),
        chunks_(new std::atomic<Slot*>[control->chunk_count]()),
        // relaxed: a hint; every use rereads head with acquire before trusting "full".
        cached_head_(std::make_shared<std::atomic<std::uint64_t>>(
            control->head.load(std::memory_order_relaxed))) {}

  std::uint64_t lap_base(std::uint64_t position) const noexcept { return position & ~mask_; }

  // The slot serving `position`, making its chunk on first use when `create`. nullptr when
  // the chunk does not exist (and !create), cannot be made, or its offset is corrupt.
  Slot* slot_at(std::uint64_t position, bool create) noexcept {
    const std::uint64_t chunk = (position & mask_) >> chunk_shift_;
    // relaxed: every thread resolves a chunk to the same address; the slot's own state is
    // what orders its contents.
    Slot* base = chunks_[chunk].load(std::memory_order_relaxed);
    if (base == nullptr) {
      base = resolve_chunk(chunk, create);
      if (base == nullptr) return nullptr;
    }
    return base + (position & chunk_mask_);
  }

  Slot* resolve_chunk(std::uint64_t chunk, bool create) noexcept {
    const std::size_t chunk_slots = chunk_mask_ + 1;
    // acquire: pairs with the release CAS that published the chunk (zeroed = all free).
    std::uint64_t offset = directory_[chunk].load(std::memory_order_acquire);
    if (offset == 0) {
      if (!create) return nullptr;
      std::uint64_t fresh = control_->spare_chunk.exchange(0, std::memory_order_acquire);
      if (fresh == 0 && arena_.allocate(chunk_slots * sizeof(Slot), alignof(Slot), fresh)) {
        return nullptr;
      }
      // release: the zeroed chunk is visible before its offset.
      if (directory_[chunk].compare_exchange_strong(offset, fresh, std::memory_order_acq_rel)) {
        offset = fresh;
      } else {
        // Lost the race: keep the chunk for the next one that is needed.
        std::uint64_t empty = 0;
        control_->spare_chunk.compare_exchange_strong(empty, fresh, std::memory_order_release);
      }
    }
    Slot* base = arena_.segment().try_at(Offset<Slot>{offset}, chunk_slots);
    // Once per chunk per process: every producer and consumer streams through all of it.
    if (base != nullptr) arena_.segment().populate(base, chunk_slots * sizeof(Slot));
    chunks_[chunk].store(base, std::memory_order_relaxed);
    return base;
  }

  bool head_ready() noexcept {
    const std::uint64_t position = control_->head.load(std::memory_order_acquire);
    Slot* slot = slot_at(position, false);
    return slot != nullptr &&
           slot->state.load(std::memory_order_acquire) == lap_base(position) + 1;
  }

  RingStatus drained_status(std::uint64_t position) const noexcept {
    if (!closed()) return RingStatus::kEmpty;
    // acquire: every claim before close is counted in tail.
    return control_->tail.load(std::memory_order_acquire) <= position ? RingStatus::kClosed
                                                                      : RingStatus::kEmpty;
  }

  // Frees the slot a lap behind `position` if a consumer took it and died before releasing.
  bool recover_dead_consumer(std::uint64_t position) noexcept {
    const std::uint64_t previous = position - capacity();
    if (position < capacity()) return false;
    if (control_->head.load(std::memory_order_acquire) <= previous) return false;  // not taken
    Slot* slot = slot_at(position, false);
    if (slot == nullptr) return false;
    std::uint64_t state = slot->state.load(std::memory_order_acquire);
    if (state != lap_base(previous) + 1) return false;
    if (control_->consumers.live_claim_covers(previous)) return false;
    // acq_rel: makes the slot free for `position` exactly once among racing producers.
    if (!slot->state.compare_exchange_strong(state, lap_base(position), std::memory_order_acq_rel)) {
      return false;
    }
    control_->dead_consumer_slots.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  void sample_high_water(std::uint64_t tail) noexcept {
    const std::uint64_t head = control_->head.load(std::memory_order_relaxed);
    if (tail > head) atomic_max(control_->high_water, tail - head);
  }

  SharedArena arena_;
  std::uint64_t offset_;
  MpmcRingControl* control_;
  std::atomic<std::uint64_t>* directory_;
  std::uint64_t mask_;
  std::uint64_t limit_;
  std::uint32_t chunk_shift_;
  std::uint64_t chunk_mask_;
  // Process-local, shared by copies of the handle and by the threads using them.
  std::shared_ptr<std::atomic<Slot*>[]> chunks_;  // resolved chunk addresses
  std::shared_ptr<std::atomic<std::uint64_t>> cached_head_;  // a lower bound of head
};

}  // namespace ringfork
