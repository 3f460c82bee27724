#include "ringfork/futex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace ringfork {
namespace {

long futex_syscall(const std::atomic<std::uint32_t>& word, int op, std::uint32_t value,
                   const timespec* timeout, std::uint32_t bitset) noexcept {
  // The kernel only reads the word; the const_cast is for the syscall's signature.
  auto* address = const_cast<std::uint32_t*>(reinterpret_cast<const std::uint32_t*>(&word));
  return syscall(SYS_futex, address, op, value, timeout, nullptr, bitset);
}

}  // namespace

FutexWaitResult futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                           Deadline deadline) noexcept {
  const timespec absolute = deadline.as_timespec();
  const timespec* timeout = deadline.is_never() ? nullptr : &absolute;
  for (;;) {
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time (plain FUTEX_WAIT takes a
    // relative one, which a retry after EINTR would have to recompute).
    if (futex_syscall(word, FUTEX_WAIT_BITSET, expected, timeout, FUTEX_BITSET_MATCH_ANY) == 0) {
      return FutexWaitResult::kWoken;
    }
    switch (errno) {
      case EINTR:
        continue;
      case EAGAIN:
        return FutexWaitResult::kValueChanged;
      case ETIMEDOUT:
        return FutexWaitResult::kTimedOut;
      default:
        // EFAULT/EINVAL mean a bad word address: a programming error upstream. Report it as a
        // wake so the caller re-checks its condition instead of sleeping on garbage.
        return FutexWaitResult::kWoken;
    }
  }
}

int futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept {
  const long woken = futex_syscall(word, FUTEX_WAKE, static_cast<std::uint32_t>(count), nullptr, 0);
  return woken < 0 ? 0 : static_cast<int>(woken);
}

int futex_wake_all(const std::atomic<std::uint32_t>& word) noexcept {
  return futex_wake(word, INT_MAX);
}

}  // namespace ringfork
