// ShardedMpmcRing<T>: an MPMC ring made of lanes, one MpmcRing per producer process, so that
// producers share no cache line.
//
// In one MpmcRing every claim is a locked CAS on the shared tail: with two producers running
// on two CPUs, each claim pulls that line from the other CPU (perf: 89 % of try_push's
// samples in BM_MpmcXproc/64/2/2). Here a producer process takes a lane of its own on its
// first push and keeps it; consumers take from any lane, staying with the one that last had
// a message (moodycamel's ConcurrentQueue shares out its producers the same way).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "ringfork/arena.h"
#include "ringfork/cache_line.h"
#include "ringfork/current_pid.h"
#include "ringfork/deadline.h"
#include "ringfork/eventcount.h"
#include "ringfork/ring_mpmc.h"
#include "ringfork/spin_wait.h"

namespace ringfork {

struct ShardedMpmcRingOptions {
  std::size_t lanes = 2;  // 1..kMaxLanes: as many as there will be producer processes
  MpmcRingOptions lane;   // each lane's geometry
};

// Shared layout: the lanes' MpmcRing control offsets, the counter that hands out lanes, and
// the eventcount consumers of any lane sleep on.
struct ShardedMpmcControl {
  static constexpr std::uint64_t kMagic = 0x44524148534e4952;  // "RINSHARD"
  static constexpr std::uint32_t kVersion = 1;
  static constexpr std::uint32_t kMaxLanes = 64;

  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t lane_count;
  std::uint64_t lanes[kMaxLanes];
  // Written once per producer process, when it takes a lane.
  alignas(kFalseSharingRange) std::atomic<std::uint32_t> next_lane;
  alignas(kFalseSharingRange) EventCount not_empty;
};
static_assert(std::is_standard_layout_v<ShardedMpmcControl>, "read by other processes");

// Contract: as MpmcRing's (statuses, blocking, deadlines, dead producers and consumers,
// close), with these differences. Lanes: a handle takes a lane on its first push in a
// process (the n-th handle to do so takes lane n mod lanes); its copies and threads share
// that lane, and a forked child's copy takes a lane of its own. With more producing handles
// than lanes some share one: still correct, only slower. Order: each lane is FIFO, so each
// producer's messages are; messages of different lanes have no order between them.
// Capacity and limit are per lane: a producer finds the ring full when its lane is.
template <class T>
class ShardedMpmcRing {
 public:
  static ShardedMpmcRing create(SharedArena& arena, const ShardedMpmcRingOptions& options) {
    if (options.lanes == 0 || options.lanes > ShardedMpmcControl::kMaxLanes) {
      throw std::invalid_argument("ShardedMpmcRing: lanes must be 1.." +
                                  std::to_string(ShardedMpmcControl::kMaxLanes) + ", got " +
                                  std::to_string(options.lanes));
    }
    const std::uint64_t offset = arena.allocate_or_throw(
        sizeof(ShardedMpmcControl), kFalseSharingRange, "a sharded MPMC ring");
    auto* control =
        new (arena.segment().at(Offset<ShardedMpmcControl>{offset})) ShardedMpmcControl{};
    control->magic = ShardedMpmcControl::kMagic;
    control->version = ShardedMpmcControl::kVersion;
    control->lane_count = static_cast<std::uint32_t>(options.lanes);
    for (std::size_t i = 0; i < options.lanes; ++i) {
      control->lanes[i] = MpmcRing<T>::create(arena, options.lane).offset();
    }
    return attach(arena, offset);
  }

  // Throws std::invalid_argument when `offset` does not hold a sharded ring of this T.
  static ShardedMpmcRing attach(SharedArena& arena, std::uint64_t offset) {
    ShardedMpmcControl* control = arena.segment().at(Offset<ShardedMpmcControl>{offset});
    if (control->magic != ShardedMpmcControl::kMagic ||
        control->version != ShardedMpmcControl::kVersion || control->lane_count == 0 ||
        control->lane_count > ShardedMpmcControl::kMaxLanes) {
      throw std::invalid_argument("ShardedMpmcRing::attach: no sharded ring of this version at " +
                                  std::to_string(offset));
    }
    std::vector<MpmcRing<T>> lanes;
    // Copied out first: the count is shared memory, and is trusted only as far as checked.
    const std::uint32_t count = control->lane_count;
    for (std::uint32_t i = 0; i < count; ++i) {
      lanes.push_back(MpmcRing<T>::attach(arena, control->lanes[i]));
    }
    return ShardedMpmcRing(offset, control, std::move(lanes));
  }

  std::uint64_t offset() const noexcept { return offset_; }
  std::size_t lane_count() const noexcept { return lanes_.size(); }
  // For inspection (size, counters): messages go through this class, which wakes consumers.
  const MpmcRing<T>& lane(std::size_t index) const { return lanes_.at(index); }

  // ---- producers: this process's lane ----

  RingStatus try_push(const T& value) noexcept {
    return notify_if_ok(producer_lane().try_push(value));
  }
  RingStatus try_push_batch(std::span<const T> values, std::size_t* pushed) noexcept {
    return notify_if_ok(producer_lane().try_push_batch(values, pushed));
  }
  RingStatus push(const T& value, Deadline deadline = Deadline::never()) {
    return notify_if_ok(producer_lane().push(value, deadline));
  }

  // ---- consumers: any lane ----

  RingStatus try_pop(T& value) noexcept {
    return sweep([&](MpmcRing<T>& lane) { return lane.try_pop(value); });
  }
  RingStatus try_pop_batch(std::span<T> out, std::size_t* taken) noexcept {
    *taken = 0;
    return sweep([&](MpmcRing<T>& lane) { return lane.try_pop_batch(out, taken); });
  }
  RingStatus pop(T& value, Deadline deadline = Deadline::never()) {
    return wait_to_pop([&] { return try_pop(value); }, deadline);
  }
  RingStatus pop_batch(std::span<T> out, std::size_t* taken, Deadline deadline = Deadline::never()) {
    return wait_to_pop([&] { return try_pop_batch(out, taken); }, deadline);
  }

  // ---- anyone ----

  void close() noexcept {
    for (MpmcRing<T>& lane : lanes_) lane.close();
    control_->not_empty.notify_all();
  }
  bool closed() const noexcept {
    return std::all_of(lanes_.begin(), lanes_.end(),
                       [](const MpmcRing<T>& lane) { return lane.closed(); });
  }
  std::size_t size() const noexcept {
    std::size_t total = 0;
    for (const MpmcRing<T>& lane : lanes_) total += lane.size();
    return total;
  }
  // The lanes' counters added up (high_water: the highest lane's).
  RingCounters counters() const noexcept {
    RingCounters total;
    for (const MpmcRing<T>& lane : lanes_) total.add(lane.counters());
    return total;
  }

 private:
  // The lane this process took (pid in the high half, lane in the low), shared by the
  // handle's copies and threads; a forked child sees another pid and takes its own.
  struct LaneChoice {
    std::atomic<std::uint64_t> producer{0};
    std::atomic<std::uint32_t> consumer_cursor{0};
  };

  ShardedMpmcRing(std::uint64_t offset, ShardedMpmcControl* control,
                  std::vector<MpmcRing<T>> lanes)
      : offset_(offset),
        control_(control),
        lanes_(std::move(lanes)),
        choice_(std::make_shared<LaneChoice>()) {}

  MpmcRing<T>& producer_lane() noexcept {
    const auto pid = static_cast<std::uint64_t>(static_cast<std::uint32_t>(current_pid()));
    // relaxed: the value orders nothing; the lanes themselves order the messages.
    std::uint64_t choice = choice_->producer.load(std::memory_order_relaxed);
    while ((choice >> 32) != pid) {
      const std::uint32_t ticket = control_->next_lane.fetch_add(1, std::memory_order_relaxed);
      const std::uint64_t mine = pid << 32 | ticket % lanes_.size();
      // Threads racing to take this process's lane agree on one (a thread whose messages went
      // to two lanes would lose their order): the loser uses the winner's, its ticket unused.
      if (choice_->producer.compare_exchange_strong(choice, mine, std::memory_order_relaxed)) {
        choice = mine;
      }
    }
    return lanes_[static_cast<std::uint32_t>(choice)];
  }

  RingStatus notify_if_ok(RingStatus status) noexcept {
    if (status == RingStatus::kOk) control_->not_empty.notify_all();
    return status;
  }

  // `attempt` on each lane in turn, from the one that last had a message: kOk from the first
  // that gives one; kClosed once every lane is closed and drained; else kEmpty (or the first
  // other status).
  template <class Attempt>
  RingStatus sweep(Attempt&& attempt) noexcept {
    const std::size_t count = lanes_.size();
    // relaxed: a hint; any starting lane is correct.
    const std::uint32_t start = choice_->consumer_cursor.load(std::memory_order_relaxed);
    bool all_closed = true;
    for (std::size_t k = 0; k < count; ++k) {
      const std::size_t index = (start + k) % count;
      const RingStatus status = attempt(lanes_[index]);
      if (status == RingStatus::kOk) {
        if (k != 0) {
          choice_->consumer_cursor.store(static_cast<std::uint32_t>(index),
                                         std::memory_order_relaxed);
        }
        return status;
      }
      if (status == RingStatus::kClosed) continue;
      all_closed = false;
      if (status != RingStatus::kEmpty) return status;
    }
    return all_closed ? RingStatus::kClosed : RingStatus::kEmpty;
  }

  bool any_lane_has_data() noexcept {
    return std::any_of(lanes_.begin(), lanes_.end(),
                       [](MpmcRing<T>& lane) { return lane.head_ready(); });
  }
  bool any_lane_ready() noexcept {
    return std::any_of(lanes_.begin(), lanes_.end(),
                       [](MpmcRing<T>& lane) { return lane.head_ready() || lane.closed(); });
  }

  // As MpmcRing's wait_to_pop, across the lanes: sleeps on the shared eventcount, and every
  // liveness interval skips holes left by producers that died between claim and publish.
  template <class Attempt>
  RingStatus wait_to_pop(Attempt&& attempt, Deadline deadline) {
    if (const RingStatus status = attempt(); status != RingStatus::kEmpty) return status;
    Deadline liveness_check = Deadline::after(MpmcRing<T>::kLivenessInterval);
    for (;;) {
      const RingStatus status = attempt();
      if (status != RingStatus::kEmpty) return status;
      if (liveness_check.expired()) {
        for (MpmcRing<T>& lane : lanes_) lane.recover_dead_producer();
        liveness_check = Deadline::after(MpmcRing<T>::kLivenessInterval);
      }
      const WaitOutcome outcome = spin_then_park(
          control_->not_empty, [&] { return any_lane_ready(); }, deadline.min(liveness_check));
      // Ready only because a lane is closed, with a claim still unpublished there: nothing
      // will notify us, so poll, yielding the CPU to the producer we wait for.
      if (outcome == WaitOutcome::kReady && !any_lane_has_data()) sched_yield();
      if (deadline.expired()) {
        const RingStatus last = attempt();
        return last == RingStatus::kEmpty ? RingStatus::kTimedOut : last;
      }
    }
  }

  std::uint64_t offset_;
  ShardedMpmcControl* control_;
  std::vector<MpmcRing<T>> lanes_;
  std::shared_ptr<LaneChoice> choice_;
};

}  // namespace ringfork
