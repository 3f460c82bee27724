// An absolute point on CLOCK_MONOTONIC: what every ringfork wait is bounded by.
#pragma once

#include <time.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>

namespace ringfork {

// Absolute deadlines (not relative timeouts) let a wait that is interrupted, or that wakes
// for someone else's event, go back to sleep without stretching the caller's timeout.
class Deadline {
 public:
  static Deadline never() noexcept { return Deadline(kNever); }
  static Deadline now() noexcept { return Deadline(monotonic_ns()); }
  static Deadline after(std::chrono::nanoseconds timeout) noexcept {
    if (timeout.count() < 0) timeout = std::chrono::nanoseconds(0);
    const std::int64_t now_ns = monotonic_ns();
    if (timeout.count() >= kNever - now_ns) return never();
    return Deadline(now_ns + timeout.count());
  }
  // A Python-style optional timeout in seconds: negative means "wait forever", and so does
  // one too long for a nanosecond count (about 292 years; infinity too), whose conversion
  // would overflow. NaN also waits forever here; for_timeout() refuses it.
  static Deadline after_seconds(double seconds) noexcept {
    if (seconds < 0 || !(seconds < kLongestSeconds)) return never();
    return after(std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(seconds)));
  }
  // after_seconds() for a timeout a user passed: throws std::invalid_argument for NaN, which
  // names no wait (Python refuses it too).
  static Deadline for_timeout(double seconds) {
    if (std::isnan(seconds)) throw std::invalid_argument("a timeout of NaN seconds");
    return after_seconds(seconds);
  }

  bool is_never() const noexcept { return ns_ == kNever; }
  bool expired() const noexcept { return !is_never() && monotonic_ns() >= ns_; }
  std::int64_t ns_since_epoch() const noexcept { return ns_; }
  std::chrono::nanoseconds remaining() const noexcept {
    if (is_never()) return std::chrono::nanoseconds::max();
    const std::int64_t left = ns_ - monotonic_ns();
    return std::chrono::nanoseconds(left > 0 ? left : 0);
  }
  timespec as_timespec() const noexcept {
    return timespec{static_cast<time_t>(ns_ / 1'000'000'000),
                    static_cast<long>(ns_ % 1'000'000'000)};
  }
  // The earlier of two deadlines: used to cap a long wait with a liveness-check interval.
  Deadline min(Deadline other) const noexcept { return ns_ <= other.ns_ ? *this : other; }

  static std::int64_t monotonic_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  }

 private:
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
  static constexpr double kLongestSeconds = 9.0e9;  // below INT64_MAX nanoseconds
  explicit Deadline(std::int64_t ns) noexcept : ns_(ns) {}
  std::int64_t ns_;
};

}  // namespace ringfork
