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
// Waiter, for a condition `ready()` published by the notifier with release stores:
//   ec.park(ready, deadline);           // true once ready(), false at the deadline
// or, in three steps (the heavy fence paid up front):
//   auto key = ec.prepare_wait();       // announce: "I may sleep"
//   if (ready()) { ec.cancel_wait(); }  // re-check after announcing, or a wake may be lost
//   else ec.commit_wait(key, deadline); // sleeps unless notify() ran since prepare_wait()
// Notifier: make `ready()` true, then notify_one()/notify_all(). notify costs a compiler
// barrier and one load of a line that only waiters write, so it stays cheap and syscall-free
// when no one is waiting. The handshake's full fence is paid by the waiter instead, as a
// membarrier(2) (asymmetric_fence.h): waiters are rare, notifies are per message. park()
// pays it only if its first sleep lasts kUnfencedSlice: in the VM this was measured on
// (bench BM_HeavyFence), a membarrier cost the waiter 41 us while the other CPU ran a
// ringfork process (which it interrupted), 1.5 us while that CPU was idle.
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

  // Waits, announced as a waiter throughout, until `ready()` (idempotent and cheap) returns
  // true (then true) or the deadline passes (then false). Until the heavy fence, a notifier
  // racing the announcement may miss it: its condition store still in its store buffer,
  // unseen by ready(), and its waiters_ load too early to see us. A store leaves the store
  // buffer within a microsecond, so re-checking for kSettleSpins pauses first makes that
  // practically impossible; to make it impossible, the first sleep ends after kUnfencedSlice
  // and the fence then makes every such store visible to the next ready(). Later notifiers
  // see the announcement, so later sleeps last until a notify or the deadline.
  template <class Ready>
  bool park(Ready&& ready, Deadline deadline) {
    // seq_cst: the announcement and the ready() reads after it are not reordered (the
    // waiter's side of the Dekker handshake; the fence below completes the other side).
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    for (int i = 0; i < kSettleSpins; ++i) {
      if (ready()) {
        waiters_.fetch_sub(1, std::memory_order_relaxed);
        return true;
      }
      cpu_relax();
    }
    bool fenced = false;
    bool must_poll = false;
    bool is_ready = false;
    for (;;) {
      // acquire: pairs with notify's release increment. Read before ready(): a notify after
      // this read moves the epoch, so the sleep below does not start or ends at once.
      const std::uint32_t epoch = epoch_.load(std::memory_order_acquire);
      is_ready = ready();
      if (is_ready || deadline.expired()) break;
      Deadline slice = deadline;
      if (!fenced) {
        slice = deadline.min(Deadline::after(kUnfencedSlice));
      } else if (must_poll) {
        slice = deadline.min(Deadline::after(kPollSlice));
      }
      sleeps_.fetch_add(1, std::memory_order_relaxed);
      const FutexWaitResult woke = futex_wait(epoch_, epoch, slice);
      if (woke == FutexWaitResult::kTimedOut) {
        if (!fenced) {
          fenced = true;
          must_poll = !heavy_fence();
        }
      } else if (ready()) {
        // Woken, most often by the notify that made ready() true: looking at it first spares
        // the way out a read of the epoch's line, which the notifier has just written on its
        // CPU (a cross-CPU miss, measurable in BM_LatencySleep).
        is_ready = true;
        break;
      }
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    return is_ready;
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
  static constexpr int kSettleSpins = 64;
  // A wait that lasts longer pays the fence; one that ends sooner (a peer answering) does not.
  // Also the longest a notify racing the announcement could be missed for. Longer than the
  // 4 ms scheduler tick (HZ=250): a sleep whose timer fires before the next tick has the
  // timer hardware reprogrammed when it is armed and again when the wake cancels it, which
  // doubled a sleeping consumer's wake latency in this VM at 200 us (BM_LatencySleep).
  static constexpr std::chrono::milliseconds kUnfencedSlice{5};

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
