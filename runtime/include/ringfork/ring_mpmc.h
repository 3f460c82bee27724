// MpmcRing<T>: a bounded multi-producer multi-consumer ring of trivially copyable T in a
// shared segment, any number of producer and consumer threads in any processes, that
// survives participants being killed at any instruction.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <type_traits>

#include "ringfork/arena.h"
#include "ringfork/cache_line.h"
#include "ringfork/claim_registry.h"
#include "ringfork/eventcount.h"
#include "ringfork/ring_common.h"
#include "ringfork/ring_mpmc_layout.h"
#include "ringfork/spin_wait.h"

namespace ringfork {

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
    return attach(arena, create_mpmc_control(arena, options, sizeof(Slot)));
  }

  static MpmcRing attach(SharedArena& arena, std::uint64_t offset) {
    std::atomic<std::uint64_t>* directory = nullptr;
    MpmcRingControl* control = attach_mpmc_control(arena, offset, sizeof(Slot), directory);
    return MpmcRing(arena, offset, control, directory);
  }

  std::uint64_t offset() const noexcept { return offset_; }
  std::size_t capacity() const noexcept { return mask_ + 1; }
  std::size_t limit() const noexcept { return limit_; }

  // ---- producers ----

  // kOk, kFull (no room now, or the limit is reached), kClosed, or kNoMemory.
  RingStatus try_push(const T& value) noexcept {
    return try_push_with([&value](T& slot) noexcept { slot = value; });
  }

  // Claims one position, lets `write(T&)` fill its slot where it lies, then publishes it: a
  // message that fills only part of a T is not copied through a whole one. `write` must not
  // throw or use this ring. A producer killed inside `write` leaves an unpublished hole that
  // consumers skip (see the class contract).
  template <class Write>
  [[gnu::always_inline]] RingStatus try_push_with(Write&& write) noexcept {
    ClaimRecord* record = nullptr;
    std::uint64_t position = 0;
    if (const RingStatus status = claim_for_push(1, record, position); status != RingStatus::kOk) {
      return status;
    }
    publish(*record, position, 1, [&write](std::size_t, T& slot) noexcept { write(slot); });
    return RingStatus::kOk;
  }

  // Pushes all of `values` as one claim, or none of them (kFull when they do not all fit).
  // `pushed` (optional) receives how many were pushed: values.size() or 0.
  RingStatus try_push_batch(std::span<const T> values, std::size_t* pushed) noexcept {
    if (pushed != nullptr) *pushed = 0;
    const std::size_t count = values.size();
    if (count == 0) return RingStatus::kOk;
    ClaimRecord* record = nullptr;
    std::uint64_t position = 0;
    if (const RingStatus status = claim_for_push(count, record, position);
        status != RingStatus::kOk) {
      return status;
    }
    publish(*record, position, count,
            [values](std::size_t i, T& slot) noexcept { slot = values[i]; });
    if (pushed != nullptr) *pushed = count;
    return RingStatus::kOk;
  }

  RingStatus push(const T& value, Deadline deadline = Deadline::never()) {
    return push_with([&value](T& slot) noexcept { slot = value; }, deadline);
  }

  // try_push_with that waits for room until the deadline (then kTimedOut).
  template <class Write>
  RingStatus push_with(Write&& write, Deadline deadline = Deadline::never()) {
    for (;;) {
      const RingStatus status = try_push_with(write);
      if (status != RingStatus::kFull) return status;
      control_->full_waits.fetch_add(1, std::memory_order_relaxed);
      const Deadline slice = deadline.min(Deadline::after(kLivenessInterval));
      const std::uint64_t seen_head = control_->head.load(std::memory_order_acquire);
      spin_then_park(
          control_->not_full,
          [&] { return closed() || control_->head.load(std::memory_order_acquire) != seen_head; },
          slice);
      if (deadline.expired()) {
        const RingStatus last = try_push_with(write);
        return last == RingStatus::kFull ? RingStatus::kTimedOut : last;
      }
    }
  }

  // ---- consumers ----

  // kOk, kEmpty, or kClosed once the ring is closed and every claimed position was taken.
  RingStatus try_pop(T& value) noexcept {
    return try_pop_with([&value](const T& slot) noexcept { value = slot; });
  }

  // Claims the next message and lets `read(const T&)` read it where it lies before the slot
  // is freed. `read` must not throw or use this ring; a consumer killed inside it loses that
  // one message (see the class contract).
  template <class Read>
  [[gnu::always_inline]] RingStatus try_pop_with(Read&& read) noexcept {
    ClaimRecord* record = nullptr;
    std::uint64_t position = 0;
    std::size_t count = 0;
    if (const RingStatus status = claim_for_pop(1, record, position, count);
        status != RingStatus::kOk) {
      return status;
    }
    release_taken(*record, position, 1, [&read](std::size_t, const T& slot) noexcept { read(slot); });
    return RingStatus::kOk;
  }

  // Takes up to out.size() consecutive ready messages as one claim; `taken` gets how many.
  RingStatus try_pop_batch(std::span<T> out, std::size_t* taken) noexcept {
    *taken = 0;
    if (out.empty()) return RingStatus::kOk;
    ClaimRecord* record = nullptr;
    std::uint64_t position = 0;
    std::size_t count = 0;
    if (const RingStatus status = claim_for_pop(out.size(), record, position, count);
        status != RingStatus::kOk) {
      return status;
    }
    release_taken(*record, position, count,
                  [out](std::size_t i, const T& slot) noexcept { out[i] = slot; });
    *taken = count;
    return RingStatus::kOk;
  }

  RingStatus pop(T& value, Deadline deadline = Deadline::never()) {
    return pop_with([&value](const T& slot) noexcept { value = slot; }, deadline);
  }

  // try_pop_with that waits for a message until the deadline (then kTimedOut).
  template <class Read>
  RingStatus pop_with(Read&& read, Deadline deadline = Deadline::never()) {
    return wait_to_pop([&] { return try_pop_with(read); }, deadline);
  }

  // Blocks until at least one message is taken (then takes up to out.size()), the ring is
  // closed and drained, or the deadline passes.
  RingStatus pop_batch(std::span<T> out, std::size_t* taken, Deadline deadline = Deadline::never()) {
    return wait_to_pop([&] { return try_pop_batch(out, taken); }, deadline);
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

  // Claims [position, position + count) for this thread's producer record: kOk, or why not.
  [[gnu::always_inline]] RingStatus claim_for_push(std::size_t count, ClaimRecord*& record,
                                                   std::uint64_t& position) noexcept {
    if (count > limit_) return RingStatus::kFull;
    record = claim_record_for_this_thread(control_->producers);
    if (record == nullptr) return RingStatus::kNoMemory;
    position = control_->tail.load(std::memory_order_relaxed);
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
        return RingStatus::kOk;
      }
    }
  }

  // Fills the claimed slots with write(i, slot) and makes them visible to consumers.
  template <class Write>
  [[gnu::always_inline]] void publish(ClaimRecord& record, std::uint64_t position,
                                      std::size_t count, Write&& write) noexcept {
    for (std::size_t i = 0; i < count; ++i) {
      Slot* slot = slot_at(position + i, false);
      write(i, slot->value);
      // release: the value is visible to a consumer that acquires this state.
      slot->state.store(lap_base(position + i) + 1, std::memory_order_release);
    }
    finish_claim(record);
    if (((position + count) & 63) < count) sample_high_water(position + count);
    control_->not_empty.notify_all();
  }

  // Claims up to `most` consecutive published positions for this thread's consumer record;
  // on kOk they are [position, position + count), count >= 1.
  [[gnu::always_inline]] RingStatus claim_for_pop(std::size_t most, ClaimRecord*& record,
                                                  std::uint64_t& position,
                                                  std::size_t& count) noexcept {
    record = claim_record_for_this_thread(control_->consumers);
    if (record == nullptr) return RingStatus::kNoMemory;
    position = control_->head.load(std::memory_order_relaxed);
    for (;;) {
      count = 0;
      bool moved = false;
      while (count < most) {
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
      // acq_rel: as for tail in claim_for_push.
      if (control_->head.compare_exchange_weak(position, position + count,
                                               std::memory_order_acq_rel,
                                               std::memory_order_relaxed)) {
        return RingStatus::kOk;
      }
    }
  }

  // Reads the claimed slots with read(i, slot) and frees them for producers.
  template <class Read>
  [[gnu::always_inline]] void release_taken(ClaimRecord& record, std::uint64_t position,
                                            std::size_t count, Read&& read) noexcept {
    for (std::size_t i = 0; i < count; ++i) {
      Slot* slot = slot_at(position + i, false);
      read(i, static_cast<const T&>(slot->value));
      // release: our read of the value completes before a producer may overwrite it.
      slot->state.store(lap_base(position + i) + capacity(), std::memory_order_release);
    }
    finish_claim(record);
    control_->not_full.notify_all();
  }

  // Runs `attempt` (a try_pop variant) until it finds a message, the ring is closed and
  // drained, or the deadline passes; sleeps on not_empty between attempts.
  template <class Attempt>
  RingStatus wait_to_pop(Attempt&& attempt, Deadline deadline) {
    // The common case takes a message at once: no clock read for it.
    if (const RingStatus status = attempt(); status != RingStatus::kEmpty) return status;
    Deadline liveness_check = Deadline::after(kLivenessInterval);
    for (;;) {
      const RingStatus status = attempt();
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
        const RingStatus last = attempt();
        return last == RingStatus::kEmpty ? RingStatus::kTimedOut : last;
      }
    }
  }

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
