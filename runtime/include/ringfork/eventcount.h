// EventCount: lets a thread or process sleep until a condition on shared memory may have
// changed, and lets the side that changes it pay a system call only when someone sleeps.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <type_traits>

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
//   else ec.commit_wait(key, deadline); // sleeps unless notify_all() ran since prepare_wait()
// Notifier: make `ready()` true, then notify_all(). notify costs a compiler barrier and one
// load of a line that only waiters write, so it stays cheap and syscall-free when no one is
// waiting. The handshake's full fence is paid by the waiter instead, as a membarrier(2)
// (asymmetric_fence.h): waiters are rare, notifies are per message. park() pays it only if a
// sleep after announcing lasts kUnfencedSlice: in the VM this was measured on (bench
// BM_HeavyFence), a membarrier cost the waiter 41 us while the other CPU ran a ringfork
// process (which it interrupted), 1.5 us while that CPU was idle.
//
// Waiters announce themselves with a flag, not a count, and the notify that sees the flag
// clears it as it wakes every sleeper; a waiter still waiting after that announces again.
// So a waiter that dies (a consumer process SIGKILLed while it sleeps, the common case)
// costs the next notify one futex_wake, where a count it never took back would make every
// later notify a system call, for as long as the ring lives.
class EventCount {
 public:
  struct Key {
    std::uint32_t state;  // the state word as announced; commit_wait sleeps while it holds
    // The heavy fence failed: a notifier may have missed our announcement, so sleep only in
    // short slices and let the caller re-check its condition.
    bool must_poll;
  };

  Key prepare_wait() noexcept {
    const std::uint32_t state = announce();
    // The notifier's side of the handshake is only a compiler barrier: this makes every
    // running notifier's earlier condition store visible, or its later look at the flag see it.
    const bool fenced = heavy_fence();
    return Key{state, !fenced};
  }

  // Nothing to undo: the flag may be other waiters' too, so it stays until the next notify,
  // which then makes one futex_wake that wakes no one.
  void cancel_wait() noexcept {}

  // Returns false if the deadline passed before any notify since prepare_wait().
  // With key.must_poll it may also return true after a short sleep without a notify; the
  // caller re-checks its condition either way.
  bool commit_wait(Key key, Deadline deadline) noexcept {
    // acquire: pairs with notify's release exchange, so the condition written before the
    // notify is visible once the state moved.
    while (state_.load(std::memory_order_acquire) == key.state) {
      sleeps_.fetch_add(1, std::memory_order_relaxed);
      const Deadline slice = key.must_poll ? deadline.min(Deadline::after(kPollSlice)) : deadline;
      if (futex_wait(state_, key.state, slice) == FutexWaitResult::kTimedOut) {
        return state_.load(std::memory_order_acquire) != key.state ||
               (key.must_poll && !deadline.expired());
      }
    }
    return true;
  }

  // Waits, announced, until `ready()` (idempotent and cheap) returns true (then true) or the
  // deadline passes (then false). Until the heavy fence, a notifier racing an announcement
  // may miss it: its condition store still in its store buffer, unseen by ready(), and its
  // look at the flag too early to see it. A store leaves the store buffer within a
  // microsecond, so re-checking for kSettleSpins pauses first makes that practically
  // impossible; to make it impossible, the first sleep after an announcement ends after
  // kUnfencedSlice and the fence then makes every such store visible to the next ready().
  // A wake that finds the condition still false (another consumer took the message) means
  // the flag was cleared: the waiter announces again, and the same steps follow.
  template <class Ready>
  bool park(Ready&& ready, Deadline deadline) {
    for (;;) {
      const std::uint32_t state = announce();
      for (int i = 0; i < kSettleSpins; ++i) {
        if (ready()) return true;
        cpu_relax();
      }
      bool fenced = false;
      bool must_poll = false;
      for (;;) {
        if (ready()) return true;
        if (deadline.expired()) return false;
        Deadline slice = deadline;
        if (!fenced) {
          slice = deadline.min(Deadline::after(kUnfencedSlice));
        } else if (must_poll) {
          slice = deadline.min(Deadline::after(kPollSlice));
        }
        sleeps_.fetch_add(1, std::memory_order_relaxed);
        if (futex_wait(state_, state, slice) != FutexWaitResult::kTimedOut) break;
        if (!fenced) {
          fenced = true;
          must_poll = !heavy_fence();
        }
      }
      // Woken, most often by the notify that made ready() true: looking at it before
      // announcing again spares the way out a write to the state's line, which the notifier
      // has just written on its CPU (a cross-CPU miss, measurable in BM_LatencySleep).
      if (ready()) return true;
    }
  }

  // Wakes every sleeper (a cleared flag cannot tell which of them to leave asleep); each
  // re-checks its condition.
  void notify_all() noexcept {
    // The caller's condition store must be ordered before our look at the flag; pairs with
    // the announcement + heavy fence of the waiter.
    std::uint32_t state = state_after_fence();
    while ((state & kSleeperFlag) != 0) {
      // release: a waiter that sees the new state also sees the condition. Clearing the flag
      // and moving the epoch in one step makes every announced waiter's futex value stale.
      if (state_.compare_exchange_weak(state, (state & ~kSleeperFlag) + kEpochStep,
                                       std::memory_order_release, std::memory_order_relaxed)) {
        wake_syscalls_.fetch_add(1, std::memory_order_relaxed);
        futex_wake_all(state_);
        return;
      }
      // Lost the race: another notifier cleared the flag and wakes every sleeper.
    }
  }

  // Statistics, for tests and ring counters.
  std::uint64_t wake_syscalls() const noexcept {
    return wake_syscalls_.load(std::memory_order_relaxed);
  }
  std::uint64_t sleeps() const noexcept { return sleeps_.load(std::memory_order_relaxed); }
  // A waiter announced itself (and may still wait, or may have left or died) since the last
  // notify that woke sleepers.
  bool sleeper_flag() const noexcept {
    return (state_.load(std::memory_order_relaxed) & kSleeperFlag) != 0;
  }

 private:
  static constexpr std::uint32_t kSleeperFlag = 1;  // bit 0; the epoch counts in the rest
  static constexpr std::uint32_t kEpochStep = 2;
  static constexpr std::chrono::milliseconds kPollSlice{1};
  static constexpr int kSettleSpins = 64;
  // A wait that lasts longer pays the fence; one that ends sooner (a peer answering) does not.
  // Also the longest a notify racing the announcement could be missed for. Longer than the
  // 4 ms scheduler tick (HZ=250): a sleep whose timer fires before the next tick has the
  // timer hardware reprogrammed when it is armed and again when the wake cancels it, which
  // doubled a sleeping consumer's wake latency in this VM at 200 us (BM_LatencySleep).
  static constexpr std::chrono::milliseconds kUnfencedSlice{5};

  // Sets the flag; returns the state word with it, the value to sleep on.
  std::uint32_t announce() noexcept {
    // seq_cst: the announcement and the caller's following reads of the condition must not
    // be reordered with the notifier's condition write + flag read (a Dekker handshake).
    return state_.fetch_or(kSleeperFlag, std::memory_order_seq_cst) | kSleeperFlag;
  }

  std::uint32_t state_after_fence() noexcept {
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer does not model fences; a seq_cst read-modify-write is the same
    // handshake in a form it understands (and costs a cache-line write, so only here).
    return state_.fetch_add(0, std::memory_order_seq_cst);
#else
    light_fence();
    return state_.load(std::memory_order_relaxed);
#endif
  }

  std::atomic<std::uint32_t> state_{0};  // kSleeperFlag | epoch * kEpochStep
  std::atomic<std::uint64_t> wake_syscalls_{0};
  std::atomic<std::uint64_t> sleeps_{0};
};

static_assert(std::is_standard_layout_v<EventCount> &&
                  std::is_trivially_destructible_v<EventCount>,
              "EventCount is placed in shared memory");

}  // namespace ringfork
