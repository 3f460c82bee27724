// EventCount: cross-process wake, no lost wake-up under a long ping-pong, and no system call
// on notify when nobody sleeps.
#include "ringfork/eventcount.h"

#include <gtest/gtest.h>
#include <linux/membarrier.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ringfork/segment.h"
#include "ringfork/spin_wait.h"
#include "test_support.h"

namespace ringfork {
namespace {

// Linux 6.3's MEMBARRIER_CMD_GET_REGISTRATIONS, missing from older uapi headers.
constexpr int kMembarrierGetRegistrations = 1 << 9;

using namespace std::chrono_literals;
using testing::expect_clean_exit;
using testing::fork_child;

struct PingPong {
  EventCount ping_event;
  alignas(kFalseSharingRange) EventCount pong_event;
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> ping{0};
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> pong{0};
  std::atomic<std::uint64_t> lost_wakeups{0};
};

PingPong* make_shared_pingpong(Segment& segment) {
  void* memory = segment.try_bytes(Segment::kDataOffset, sizeof(PingPong), alignof(PingPong));
  return new (memory) PingPong{};
}

TEST(EventCount, NotifyWithoutSleepersMakesNoSyscall) {
  EventCount event;
  for (int i = 0; i < 1'000'000; ++i) event.notify_all();
  EXPECT_EQ(event.wake_syscalls(), 0u);
  // A cancelled wait leaves its flag to the next notify, which clears it with one wake;
  // notify is free again after that.
  event.prepare_wait();
  event.cancel_wait();
  EXPECT_TRUE(event.sleeper_flag());
  for (int i = 0; i < 1'000; ++i) event.notify_all();
  EXPECT_EQ(event.wake_syscalls(), 1u);
  EXPECT_FALSE(event.sleeper_flag());
  event.prepare_wait();
  event.notify_all();
  EXPECT_EQ(event.wake_syscalls(), 2u) << "an announced waiter must be woken";
}

// A waiter process SIGKILLed in its sleep cannot take its announcement back: it must cost
// the notifiers one wake, not a system call on every notify from then on (which a waiter
// count it never decremented did, slowing every later message 50-fold).
TEST(EventCount, WaiterKilledInItsSleepCostsOneWake) {
  Segment segment = Segment::create({.capacity = 4 << 20});
  PingPong* shared = make_shared_pingpong(segment);
  const pid_t victim = fork_child([&] {
    shared->ping_event.park([] { return false; }, Deadline::after(60s));
    return 1;  // never notified: it is killed first
  });
  while (shared->ping_event.sleeps() == 0) std::this_thread::yield();
  ::kill(victim, SIGKILL);
  testing::wait_child(victim);
  EXPECT_TRUE(shared->ping_event.sleeper_flag());
  for (int i = 0; i < 100'000; ++i) shared->ping_event.notify_all();
  EXPECT_EQ(shared->ping_event.wake_syscalls(), 1u);
  // A live waiter after that is still woken.
  const pid_t waiter = fork_child([&] {
    const bool woken = shared->ping_event.park(
        [&] { return shared->ping.load(std::memory_order_acquire) == 1; }, Deadline::after(30s));
    return woken ? 0 : 1;
  });
  while (shared->ping_event.sleeps() < 2) std::this_thread::yield();
  shared->ping.store(1, std::memory_order_release);
  shared->ping_event.notify_all();
  expect_clean_exit(waiter);
  EXPECT_EQ(shared->ping_event.wake_syscalls(), 2u);
}

TEST(EventCount, CommitWaitTimesOutWithoutNotify) {
  EventCount event;
  const auto key = event.prepare_wait();
  const std::int64_t start = Deadline::monotonic_ns();
  EXPECT_FALSE(event.commit_wait(key, Deadline::after(30ms)));
  EXPECT_GE(Deadline::monotonic_ns() - start, 30'000'000);
}

TEST(EventCount, NotifyBetweenPrepareAndCommitIsNotLost) {
  EventCount event;
  const auto key = event.prepare_wait();
  event.notify_all();
  const std::int64_t start = Deadline::monotonic_ns();
  EXPECT_TRUE(event.commit_wait(key, Deadline::after(10s)));
  EXPECT_LT(Deadline::monotonic_ns() - start, 5'000'000'000) << "slept through a notify";
}

// Notifiers' fences are compiler-only only while the kernel knows to interrupt their
// process; a forked child must be registered again or fall back to real fences.
TEST(EventCount, ForkedChildKeepsAsymmetricFencesRegistered) {
  std::printf("[ info ] light fences are %s in this process\n",
              asymmetric_fences_active() ? "compiler-only (membarrier)" : "full fences");
  const bool parent_active = asymmetric_fences_active();
  const pid_t child = fork_child([&] {
    if (asymmetric_fences_active() != parent_active) return 1;
    const long registered = syscall(SYS_membarrier, kMembarrierGetRegistrations, 0, 0);
    if (registered < 0) return 0;  // kernel older than 6.3: nothing more to ask
    const bool kernel_knows = (registered & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0;
    return kernel_knows == asymmetric_fences_active() ? 0 : 2;
  });
  expect_clean_exit(child);
}

// A waiter whose heavy fence failed cannot trust notifiers to see it, so it must not sleep
// past a short slice without rechecking its condition.
TEST(EventCount, WaiterThatCouldNotFencePollsInShortSlices) {
  EventCount event;
  auto key = event.prepare_wait();
  key.must_poll = true;
  const std::int64_t start = Deadline::monotonic_ns();
  EXPECT_TRUE(event.commit_wait(key, Deadline::after(30s))) << "a poll slice is not a timeout";
  EXPECT_LT(Deadline::monotonic_ns() - start, 5'000'000'000) << "slept as if it had fenced";
  EXPECT_GE(event.sleeps(), 1u);
  // ...but a real deadline still ends it with a timeout.
  key = event.prepare_wait();
  key.must_poll = true;
  EXPECT_FALSE(event.commit_wait(key, Deadline::after(std::chrono::microseconds(200))));
}

TEST(EventCount, ParkTimesOutWithoutNotify) {
  EventCount event;
  const std::int64_t start = Deadline::monotonic_ns();
  EXPECT_FALSE(event.park([] { return false; }, Deadline::after(30ms)));
  EXPECT_GE(Deadline::monotonic_ns() - start, 30'000'000);
  // After its first, short sleep the waiter has fenced and sleeps to the deadline: it does
  // not keep polling (unless the fence was refused, when polling is all it can do).
  if (asymmetric_fences_active()) {
    EXPECT_LE(event.sleeps(), 3u);
  }
}

// A notifier racing park()'s announcement may miss it before the waiter's deferred fence: its
// condition store is not yet visible to the waiter's checks, and its look at the waiters came
// too early to wake anyone. Modelled by a condition that reads false until the waiter has
// gone to sleep once, and no notify at all: the waiter must find it after its first, short
// sleep, not at its deadline.
TEST(EventCount, ParkFindsAConditionWhoseNotifyWasMissed) {
  EventCount event;
  const std::int64_t start = Deadline::monotonic_ns();
  EXPECT_TRUE(event.park([&] { return event.sleeps() > 0; }, Deadline::after(30s)));
  EXPECT_LT(Deadline::monotonic_ns() - start, 5'000'000'000) << "slept through the condition";
  EXPECT_EQ(event.sleeps(), 1u);
  EXPECT_EQ(event.wake_syscalls(), 0u);
}

TEST(EventCount, WakesASleeperInAnotherProcess) {
  Segment segment = Segment::create({.capacity = 4 << 20});
  PingPong* shared = make_shared_pingpong(segment);
  const pid_t child = fork_child([&] {
    const auto outcome = spin_then_park(
        shared->ping_event, [&] { return shared->ping.load(std::memory_order_acquire) == 1; },
        Deadline::after(20s), SpinPolicy{.spin_iterations = 0, .yield_iterations = 0});
    return outcome == WaitOutcome::kReady ? 0 : 1;
  });
  // Asleep, not just announced: park() re-checks for a moment after announcing, and a ping
  // stored then would be taken without any wake.
  while (shared->ping_event.sleeps() == 0) std::this_thread::yield();
  shared->ping.store(1, std::memory_order_release);
  shared->ping_event.notify_all();
  expect_clean_exit(child);
  EXPECT_GE(shared->ping_event.wake_syscalls(), 1u);
}

// Two processes hand a token back and forth a million times. Waits are short-spin then
// park, so both the spinning and the sleeping paths are crossed hundreds of thousands of
// times; a lost wake-up shows as a wait that reaches its (generous) deadline.
TEST(EventCount, MillionRoundPingPongLosesNoWakeup) {
  // A quarter of the rounds under sanitizers, which slow each round several times over. How
  // many rounds sleep depends on the load (here: about 100 to 120,000); the count is printed.
  constexpr std::uint64_t kRounds = testing::scaled(1'000'000, 4);
  Segment segment = Segment::create({.capacity = 4 << 20});
  PingPong* shared = make_shared_pingpong(segment);
  const SpinPolicy policy{.spin_iterations = 64, .yield_iterations = 1};
  const pid_t child = fork_child([&] {
    for (std::uint64_t round = 1; round <= kRounds; ++round) {
      const auto outcome = spin_then_park(
          shared->ping_event,
          [&] { return shared->ping.load(std::memory_order_acquire) >= round; },
          Deadline::after(10s), policy);
      if (outcome != WaitOutcome::kReady) {
        shared->lost_wakeups.fetch_add(1);
        return 1;
      }
      shared->pong.store(round, std::memory_order_release);
      shared->pong_event.notify_all();
    }
    return 0;
  });
  for (std::uint64_t round = 1; round <= kRounds; ++round) {
    shared->ping.store(round, std::memory_order_release);
    shared->ping_event.notify_all();
    const auto outcome = spin_then_park(
        shared->pong_event, [&] { return shared->pong.load(std::memory_order_acquire) >= round; },
        Deadline::after(10s), policy);
    if (outcome != WaitOutcome::kReady) {
      shared->lost_wakeups.fetch_add(1);
      break;
    }
  }
  expect_clean_exit(child, std::chrono::minutes(5));
  EXPECT_EQ(shared->lost_wakeups.load(), 0u);
  EXPECT_EQ(shared->pong.load(), kRounds);
  std::printf("[ info ] %llu sleeps, %llu wake syscalls over %llu rounds\n",
              static_cast<unsigned long long>(shared->ping_event.sleeps() +
                                              shared->pong_event.sleeps()),
              static_cast<unsigned long long>(shared->ping_event.wake_syscalls() +
                                              shared->pong_event.wake_syscalls()),
              static_cast<unsigned long long>(kRounds));
}

// The same handshake between two threads, so that ThreadSanitizer checks its orderings.
TEST(EventCount, ThreadedPingPongLosesNoWakeup) {
  constexpr std::uint64_t kRounds = 100'000;
  PingPong shared;
  const SpinPolicy policy{.spin_iterations = 16, .yield_iterations = 0};
  std::atomic<bool> child_failed{false};
  std::thread child([&] {
    for (std::uint64_t round = 1; round <= kRounds; ++round) {
      if (spin_then_park(shared.ping_event,
                         [&] { return shared.ping.load(std::memory_order_acquire) >= round; },
                         Deadline::after(10s), policy) != WaitOutcome::kReady) {
        child_failed = true;
        return;
      }
      shared.pong.store(round, std::memory_order_release);
      shared.pong_event.notify_all();
    }
  });
  bool parent_failed = false;
  for (std::uint64_t round = 1; round <= kRounds && !parent_failed; ++round) {
    shared.ping.store(round, std::memory_order_release);
    shared.ping_event.notify_all();
    parent_failed = spin_then_park(shared.pong_event,
                                   [&] { return shared.pong.load(std::memory_order_acquire) >= round; },
                                   Deadline::after(10s), policy) != WaitOutcome::kReady;
  }
  child.join();
  EXPECT_FALSE(parent_failed);
  EXPECT_FALSE(child_failed.load());
  EXPECT_EQ(shared.pong.load(), kRounds);
}

}  // namespace
}  // namespace ringfork
