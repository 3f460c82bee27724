// Wait and wake on a 32-bit word in shared memory, across processes.
#pragma once

#include <atomic>
#include <cstdint>

#include "ringfork/deadline.h"

namespace ringfork {

enum class FutexWaitResult {
  kWoken,         // a wake arrived (or a spurious wake-up: callers re-check their condition)
  kValueChanged,  // the word no longer held the expected value when the kernel looked
  kTimedOut,      // the deadline passed
};

// Sleeps while `*word == expected`, until woken or `deadline`. Uses shared futexes (never
// FUTEX_PRIVATE_FLAG: waiters and wakers live in different processes) and an absolute
// CLOCK_MONOTONIC deadline via FUTEX_WAIT_BITSET. EINTR is retried with the same deadline,
// so a signal neither shortens nor stretches the wait.
FutexWaitResult futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                           Deadline deadline) noexcept;

// Wakes up to `count` waiters sleeping on `word`; returns how many were woken.
int futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept;
int futex_wake_all(const std::atomic<std::uint32_t>& word) noexcept;

static_assert(std::atomic<std::uint32_t>::is_always_lock_free &&
                  sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t),
              "a futex word must be a bare 32-bit integer in shared memory");

}  // namespace ringfork
