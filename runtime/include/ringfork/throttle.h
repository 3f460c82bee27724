// Throttle: lets a check through at most once an interval, for checks too costly for every
// call of a hot path (is a peer process still alive?).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "ringfork/deadline.h"

namespace ringfork {

// Shared by threads: of the calls that find the interval over, exactly one gets true and
// starts the next interval; the others go on as if the check had just been made. relaxed
// throughout: it is a schedule and publishes nothing (the check itself orders what it reads).
class Throttle {
 public:
  explicit Throttle(std::chrono::nanoseconds interval) noexcept
      : interval_ns_(interval.count()) {}

  bool due() noexcept {
    const std::int64_t now = Deadline::monotonic_ns();
    std::int64_t next = next_ns_.load(std::memory_order_relaxed);
    return now >= next &&
           next_ns_.compare_exchange_strong(next, now + interval_ns_, std::memory_order_relaxed);
  }
  // The next call is due at once: the check just found something, so another may follow.
  void reset() noexcept { next_ns_.store(0, std::memory_order_relaxed); }

 private:
  const std::int64_t interval_ns_;
  std::atomic<std::int64_t> next_ns_{0};
};

}  // namespace ringfork
