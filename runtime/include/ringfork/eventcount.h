// EventCount: lets a thread or process sleep until a condition on shared memory may have
// changed, and lets the side that changes it pay a system call only when someone sleeps.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "ringfork/asymmetric_fence.h"
#include "ringfork/cache_line.h"
#include "ringfork/deadline.h"
#include "ringfork/futex.h"

namespace ringfork {

// Lives in shared memory (trivially destructible, standard layout, zero bytes = ready to
// use). Any number of waiters and notifiers in any processes.
//
// Waiter protocol, for a condition `ready()` published by the notifier with release stores:
//   auto key = ec.prepare_wait();       // announce: "I may sleep"
//   if (ready()) { ec.cancel_wait(); }  // re-check after announcing, or a wake may be lost
//   else ec.commit_wait(key, deadline); // sleeps unless notify() ran since prepare_wait()
// Notifier: make `ready()` true, then notify_one()/notify_all(). notify costs a compiler
// barrier and one load of a line that only waiters write, so it stays cheap and syscall-free
// when no one is waiting. The handshake's full fence is paid by the waiter instead, as a
// membarrier(2) in prepare_wait (asymmetric_fence.h): waiters are rare, notifies are per
// message.
//
// A waiter killed between prepare_wait and commit/cancel leaves `waiters_` one too high:
// notifiers then make a harmless extra futex_wake until the structure is re-created. That
// only costs time, never correctness.
class EventCount {
 public:
  struct Key {
    std::uint32_t epoch;
    // The heavy fence failed: a notifier may have missed our announcement, so sleep only in
    // short slices and let the caller re-check its condition.
    bool must_poll;
  };

  Key prepare_wait() noexcept {
    // seq_cst: this increment and the caller's following reads of the condition must not be
    // reordered with the notifier's condition write + waiters_ read (a Dekker handshake).
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    // The notifier's side of the handshake is only a compiler barrier: this makes every
    // running notifier's earlier condition store visible, or its later waiters_ load see us.
    const bool fenced = heavy_fence();
    return Key{epoch_.load(std::memory_order_seq_cst), !fenced};
  }

  void cancel_wait() noexcept {
    // relaxed: leaving the waiter set publishes nothing.
    waiters_.fetch_sub(1, std::memory_order_relaxed);
  }

  // Returns false if the deadline passed before any notify since prepare_wait().
  // With key.must_poll it may also return true after a short sleep without a notify; the
  // caller re-checks its condition either way.
  bool commit_wait(Key key, Deadline deadline) noexcept {
    bool notified = true;
    // acquire: pairs with notify's release increment, so the condition written before the
    // notify is visible once the epoch moved.
    while (epoch_.load(std::memory_order_acquire) == key.epoch) {
      sleeps_.fetch_add(1, std::memory_order_relaxed);
      const Deadline slice = key.must_poll ? deadline.min(Deadline::after(kPollSlice)) : deadline;
      if (futex_wait(epoch_, key.epoch, slice) == FutexWaitResult::kTimedOut) {
        notified = epoch_.load(std::memory_order_acquire) != key.epoch ||
                   (key.must_poll && !deadline.expired());
        break;
      }
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    return notified;
  }

  void notify_one() noexcept { notify(1); }
  void notify_all() noexcept { notify(kWakeAll); }

  // Statistics, for tests and ring counters.
  std::uint64_t wake_syscalls() const noexcept {
    return wake_syscalls_.load(std::memory_order_relaxed);
  }
  std::uint64_t sleeps() const noexcept { return sleeps_.load(std::memory_order_relaxed); }
  std::uint32_t waiters() const noexcept { return waiters_.load(std::memory_order_relaxed); }

 private:
  static constexpr int kWakeAll = 0x7fffffff;
  static constexpr std::chrono::milliseconds kPollSlice{1};

  void notify(int count) noexcept {
    // The caller's condition store must be ordered before our waiters_ read; pairs with the
    // increment + heavy fence in prepare_wait().
    if (waiters_after_fence() == 0) return;
    // release: a waiter that sees the new epoch also sees the condition.
    epoch_.fetch_add(1, std::memory_order_release);
    wake_syscalls_.fetch_add(1, std::memory_order_relaxed);
    futex_wake(epoch_, count);
  }

  std::uint32_t waiters_after_fence() noexcept {
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer does not model fences; a seq_cst read-modify-write is the same
    // handshake in a form it understands (and costs a cache-line write, so only here).
    return waiters_.fetch_add(0, std::memory_order_seq_cst);
#else
    light_fence();
    return waiters_.load(std::memory_order_relaxed);
#endif
  }

  std::atomic<std::uint32_t> epoch_{0};
  std::atomic<std::uint32_t> waiters_{0};
  std::atomic<std::uint64_t> wake_syscalls_{0};
  std::atomic<std::uint64_t> sleeps_{0};
};

static_assert(std::is_standard_layout_v<EventCount> &&
                  std::is_trivially_destructible_v<EventCount>,
              "EventCount is placed in shared memory");

}  // namespace ringfork
