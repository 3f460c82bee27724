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
#include "ringfork/throttle.h"

namespace ringfork {

// Contract: any thread of any process mapping the segment may push and pop. A message is
// visible whole or not at all: its slot's state is released only after the value is
// written. A producer that dies after claiming a position leaves a hole that consumers
// skip once no live process claims it (counted in dead_producer_slots); a consumer that
// dies while copying holds its slots until producers find it dead (dead_consumer_slots
// counts the positions its claim covered; those messages are lost with it).
//
// Only producers write a slot. A consumer frees what it took by ending the claim in its own
// ClaimRecord, and producers gate on the oldest position still claimed (or head), which they
// re-read only when a cached bound runs out: each message's lines then cross between the
// CPUs once, from producer to consumer, and no locked instruction waits for a line the
// other side wrote. try_* never block,
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
  // close() sets this bit of tail (positions never reach 2^63), so that closing and claiming
  // are ordered on one word: a producer that checked closed() before close() and claims after
  // it would otherwise put a message into a ring its consumers have already left as drained
  // (a RingChain seals full rings this way, and such a message was lost).
  static constexpr std::uint64_t kTailClosed = std::uint64_t{1} << 63;

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
    RingStatus status = try_push_with(write);
    if (status != RingStatus::kFull) return status;
    for (;;) {
      control_->full_waits.fetch_add(1, std::memory_order_relaxed);
      // Room comes back when the gate moves: head, or a consumer finishing what it took. The
      // gate is read before an attempt, so that a consumer freeing room after that attempt
      // failed moves it past what we wait on. (Read after a failure, it could already show
      // the room: we then slept on a gate nobody would move, the ring empty and its consumers
      // asleep, until the liveness slice ran out: with 32 slots, one full wait in 13 to 40
      // stalled 20 ms that way, test ProducerWaitingForRoomIsWokenByTheConsumer.)
      const std::uint64_t seen_gate = gate();
      status = try_push_with(write);
      if (status != RingStatus::kFull) return status;
      const Deadline slice = deadline.min(Deadline::after(kLivenessInterval));
      const WaitOutcome outcome = spin_then_park(
          control_->not_full, [&] { return closed() || gate() != seen_gate; }, slice);
      if (deadline.expired()) {
        const RingStatus last = try_push_with(write);
        return last == RingStatus::kFull ? RingStatus::kTimedOut : last;
      }
      if (outcome == WaitOutcome::kTimedOut) {
        control_->stalled_full_waits.fetch_add(1, std::memory_order_relaxed);
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

  void close() noexcept {
    // acq_rel: a consumer that acquires the bit sees every claim made before it in tail.
    control_->tail.fetch_or(kTailClosed, std::memory_order_acq_rel);
    close_ring(*control_);
  }
  bool closed() const noexcept { return control_->closed.load(std::memory_order_acquire) != 0; }

  // Claimed and not yet taken; approximate while others are active (like Python's qsize).
  std::size_t size() const noexcept {
    const std::uint64_t head = control_->head.load(std::memory_order_acquire);
    const std::uint64_t tail = tail_position(std::memory_order_acquire);
    return tail - head > capacity() ? 0 : static_cast<std::size_t>(tail - head);
  }

  // Skips the position at head if its producer died before publishing it. Returns true if
  // a hole was skipped. Called by blocked consumers; callable by anyone.
  bool recover_dead_producer() noexcept {
    std::uint64_t position = control_->head.load(std::memory_order_acquire);
    // acquire: claims up to tail were announced before tail moved.
    if (tail_position(std::memory_order_acquire) <= position) return false;
    Slot* slot = slot_at(position, false);
    if (slot == nullptr) return false;
    if (slot->state.load(std::memory_order_acquire) == position + 1) return false;
    if (control_->producers.live_claim_covers(position)) return false;
    // The claimer may have published and left its record idle while we scanned: the scan's
    // acquire loads make its publication visible to this re-read.
    if (slot->state.load(std::memory_order_acquire) == position + 1) return false;
    // acq_rel: like a consumer's claim; nobody will ever publish this position, and the
    // slot's stale state never matches a later position.
    if (!control_->head.compare_exchange_strong(position, position + 1, std::memory_order_acq_rel)) {
      return false;
    }
    control_->dead_producer_slots.fetch_add(1, std::memory_order_relaxed);
    control_->not_full.notify_all();
    return true;
  }

  // A published message waits at head: what a waiter on several rings checks before it sleeps.
  bool head_ready() noexcept {
    const std::uint64_t position = control_->head.load(std::memory_order_acquire);
    Slot* slot = slot_at(position, false);
    return slot != nullptr && slot->state.load(std::memory_order_acquire) == position + 1;
  }

  RingCounters counters() const noexcept {
    RingCounters counters = read_common_counters(*control_);
    counters.puts = tail_position(std::memory_order_relaxed);
    counters.dead_producer_slots = control_->dead_producer_slots.load(std::memory_order_relaxed);
    counters.dead_consumer_slots = control_->dead_consumer_slots.load(std::memory_order_relaxed);
    counters.stalled_full_waits = control_->stalled_full_waits.load(std::memory_order_relaxed);
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
        // A lower bound of the gate: every use recomputes it before trusting "full". Not head:
        // a consumer may still be reading a slot below head when this handle is made.
        cached_gate_(std::make_shared<std::atomic<std::uint64_t>>(0)),
        producer_check_(std::make_shared<ProducerCheck>()) {}

  // The oldest position a consumer may still be reading: head, or an earlier one that a
  // consumer claimed and has not finished. Producers may fill positions up to gate + limit.
  std::uint64_t gate() const noexcept {
    // acquire: pairs with the consumers' release CAS of head: a claim that moved head was
    // announced before it, so the scan below sees the announcement or what replaced it.
    std::uint64_t oldest = control_->head.load(std::memory_order_acquire);
    for (const ClaimRecord& record : control_->consumers.used()) {
      // acquire: pairs with finish_claim's release (the claim's reads are done) and with a
      // later announcement's release (the claim before it was finished).
      const std::uint64_t start = record.position.load(std::memory_order_acquire);
      if (start < oldest) oldest = start;  // kIdle is above every position
    }
    return oldest;
  }

  // Claims [position, position + count) for this thread's producer record: kOk, or why not.
  [[gnu::always_inline]] RingStatus claim_for_push(std::size_t count, ClaimRecord*& record,
                                                   std::uint64_t& position) noexcept {
    if (count > limit_) return RingStatus::kFull;
    record = claim_record_for_this_thread(control_->producers);
    if (record == nullptr) return RingStatus::kNoMemory;
    position = control_->tail.load(std::memory_order_relaxed);
    // An announcement whose CAS failed must not outlive this call: it would make a hole at
    // that position look claimed by a live producer.
    bool announced = false;
    const auto give_up = [&](RingStatus status) {
      if (announced) finish_claim(*record);
      return status;
    };
    for (;;) {
      // The bit in tail decides: a CAS from a position read before close() fails, and then
      // `position` holds the bit. closed() only returns sooner.
      if ((position & kTailClosed) != 0 || closed()) return give_up(RingStatus::kClosed);
      // Room under the limit? A stale gate only makes us more cautious; recompute it then.
      // acquire/release: the cached gate is shared by this process's producer threads; one
      // that uses another's gate must also see the consumers' finished reads behind it.
      if (position + count > cached_gate_->load(std::memory_order_acquire) + limit_) {
        const std::uint64_t oldest = gate();
        cached_gate_->store(oldest, std::memory_order_release);
        if (position + count > oldest + limit_) {
          if (recover_dead_consumer(position + count - limit_)) continue;
          return give_up(RingStatus::kFull);
        }
      }
      for (std::size_t i = 0; i < count; ++i) {
        if (slot_at(position + i, /*create=*/true) == nullptr) return give_up(RingStatus::kNoMemory);
      }
      prefetch_slot_for_write(position + count);
      announce_claim(*record, position, static_cast<std::uint32_t>(count));
      announced = true;
      // acq_rel: release orders our announcement before the claim (a consumer that sees
      // the new tail sees who claimed); acquire orders the slot writes after the claim and
      // after the gate reads that allowed them. On failure `position` is the current tail.
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
      slot->state.store(position + i + 1, std::memory_order_release);
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
    // An announcement whose CAS failed must not outlive this call: producers gate on it.
    bool announced = false;
    for (;;) {
      count = 0;
      bool moved = false;
      while (count < most) {
        Slot* slot = slot_at(position + count, false);
        if (slot == nullptr) break;
        // Start on the slot's other lines now: the claim's locked CAS below would hold back
        // loads issued after it.
        if constexpr (sizeof(Slot) > kCacheLineSize) {
          __builtin_prefetch(reinterpret_cast<const char*>(slot) + kCacheLineSize);
        }
        // acquire: pairs with the producer's release, so the value is visible.
        const auto diff = static_cast<std::int64_t>(slot->state.load(std::memory_order_acquire) -
                                                    (position + count + 1));
        if (diff < 0) break;  // not published yet
        if (diff > 0) {       // a later lap's message: our position is stale
          moved = count == 0;
          break;
        }
        ++count;
      }
      if (moved) {
        position = control_->head.load(std::memory_order_relaxed);
        continue;
      }
      if (count == 0) {
        if (announced) {
          finish_claim(*record);
          control_->not_full.notify_all();  // a producer may be waiting on that gate
        }
        return drained_status(position);
      }
      announce_claim(*record, position, static_cast<std::uint32_t>(count));
      announced = true;
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
      read(i, static_cast<const T&>(slot_at(position + i, false)->value));
    }
    // Frees the slots: its release orders our reads before a producer, gating on this
    // record, may overwrite them.
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

  // The next claim's slot, fetched for writing while this claim's CAS waits: its last
  // reader was a consumer on another CPU, and the CAS after our stores to it would otherwise
  // wait for the line to come back.
  void prefetch_slot_for_write(std::uint64_t position) noexcept {
    if (Slot* slot = slot_at(position, false)) {
      for (std::size_t line = 0; line < sizeof(Slot); line += kCacheLineSize) {
        prefetch_for_write(reinterpret_cast<const char*>(slot) + line);
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


  // kEmpty or kClosed for a pop that found `position` unpublished.
  RingStatus drained_status(std::uint64_t position) noexcept {
    // An open ring is only looked into further now and then: tail's line is the one every
    // producer's claim writes, and a consumer polling an empty ring must not keep pulling it
    // away from them (that cost BM_QueueXproc/64 a fifth to a third of its rate).
    if (!closed() && !producer_check_due()) return RingStatus::kEmpty;
    // acquire: pairs with close()'s fetch_or, which precedes the closed flag. With the bit
    // set no claim can follow, so a position at or past tail will never be filled.
    const std::uint64_t tail = control_->tail.load(std::memory_order_acquire);
    if ((tail & ~kTailClosed) <= position) {
      return (tail & kTailClosed) != 0 ? RingStatus::kClosed : RingStatus::kEmpty;
    }
    // Claimed and not yet published: usually a producer between its claim and its publish,
    // but one that died there leaves a hole that only a dead-producer check gets past.
    check_for_dead_producer();
    return RingStatus::kEmpty;
  }

  // Every kPollsPerProducerCheck-th empty pop of this process's handles. relaxed load and
  // store, not an increment: a count lost to a race among consumer threads only shifts it.
  bool producer_check_due() noexcept {
    const std::uint32_t polls = producer_check_->polls.load(std::memory_order_relaxed) + 1;
    producer_check_->polls.store(polls, std::memory_order_relaxed);
    return polls % kPollsPerProducerCheck == 0;
  }

  // At most once per kLivenessInterval per handle, so that a consumer that only polls
  // (get_nowait, try_pop) gets past a dead producer's hole as a blocking one does.
  [[gnu::cold, gnu::noinline]] void check_for_dead_producer() noexcept {
    if (!producer_check_->liveness.due()) return;
    // A hole skipped: the next one (if any) may be looked at at once.
    if (recover_dead_producer()) producer_check_->liveness.reset();
  }

  std::uint64_t tail_position(std::memory_order order) const noexcept {
    return control_->tail.load(order) & ~kTailClosed;
  }

  // Ends the claims of dead consumers that hold the gate below `needed`: their messages are
  // lost with them (counted), and their slots free again. True if one was ended.
  bool recover_dead_consumer(std::uint64_t needed) noexcept {
    bool freed = false;
    for (ClaimRecord& record : control_->consumers.used()) {
      std::uint64_t start = record.position.load(std::memory_order_acquire);
      if (start >= needed) continue;  // idle, or not in the way
      if (process_alive(record.pid.load(std::memory_order_relaxed))) continue;
      const std::uint32_t count = record.count.load(std::memory_order_relaxed);
      // acq_rel: ends the claim exactly once among racing producers (its owner is dead).
      if (record.position.compare_exchange_strong(start, ClaimRecord::kIdle,
                                                  std::memory_order_acq_rel)) {
        control_->dead_consumer_slots.fetch_add(count, std::memory_order_relaxed);
        freed = true;
      }
    }
    if (freed) control_->not_full.notify_all();
    return freed;
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
  std::shared_ptr<std::atomic<std::uint64_t>> cached_gate_;  // a lower bound of gate()
  struct ProducerCheck {
    std::atomic<std::uint32_t> polls{0};  // empty pops, counted for producer_check_due()
    Throttle liveness{kLivenessInterval};  // dead-producer checks from failed pops
  };
  static constexpr std::uint32_t kPollsPerProducerCheck = 256;
  std::shared_ptr<ProducerCheck> producer_check_;
};

}  // namespace ringfork
