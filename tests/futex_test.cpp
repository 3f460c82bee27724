// futex_wait / futex_wake across processes: wake, value-changed, absolute deadlines, EINTR.
#include "ringfork/futex.h"

#include <gtest/gtest.h>
#include <signal.h>

#include "ringfork/segment.h"
#include "test_support.h"

namespace ringfork {
namespace {

using namespace std::chrono_literals;
using testing::expect_clean_exit;
using testing::fork_child;

std::atomic<std::uint32_t>* shared_words(Segment& segment) {
  return segment.at(Offset<std::atomic<std::uint32_t>>{Segment::kDataOffset}, 4);
}

TEST(Futex, WakesAWaiterInAnotherProcess) {
  Segment segment = Segment::create({.capacity = 4 << 20});
  auto* words = shared_words(segment);
  std::atomic<std::uint32_t>& value = words[0];
  std::atomic<std::uint32_t>& child_waiting = words[1];
  const pid_t child = fork_child([&] {
    child_waiting.store(1, std::memory_order_release);
    const Deadline deadline = Deadline::after(20s);
    while (value.load(std::memory_order_acquire) == 0) {
      if (futex_wait(value, 0, deadline) == FutexWaitResult::kTimedOut) return 1;
    }
    return value.load(std::memory_order_acquire) == 42 ? 0 : 2;
  });
  while (child_waiting.load(std::memory_order_acquire) == 0) std::this_thread::yield();
  std::this_thread::sleep_for(20ms);  // let the child reach the kernel
  value.store(42, std::memory_order_release);
  futex_wake_all(value);
  expect_clean_exit(child);
}

TEST(Futex, ReturnsValueChangedWhenWordDiffers) {
  std::atomic<std::uint32_t> word{7};
  EXPECT_EQ(futex_wait(word, 6, Deadline::after(5s)), FutexWaitResult::kValueChanged);
}

TEST(Futex, TimeoutIsHonouredAndNotEarly) {
  std::atomic<std::uint32_t> word{0};
  for (auto timeout : {1ms, 20ms, 80ms}) {
    const std::int64_t start = Deadline::monotonic_ns();
    EXPECT_EQ(futex_wait(word, 0, Deadline::after(timeout)), FutexWaitResult::kTimedOut);
    const std::int64_t elapsed = Deadline::monotonic_ns() - start;
    EXPECT_GE(elapsed, std::chrono::nanoseconds(timeout).count()) << "woke early";
  }
  EXPECT_EQ(futex_wait(word, 0, Deadline::now()), FutexWaitResult::kTimedOut);
}

void on_alarm(int) {}

TEST(Futex, SignalDoesNotShortenTheWait) {
  struct sigaction action {};
  action.sa_handler = on_alarm;  // no SA_RESTART: the futex call really sees EINTR
  struct sigaction previous {};
  ASSERT_EQ(::sigaction(SIGALRM, &action, &previous), 0);
  std::atomic<std::uint32_t> word{0};
  const pthread_t waiter = ::pthread_self();
  std::thread signaller([&] {
    for (int i = 0; i < 5; ++i) {
      std::this_thread::sleep_for(10ms);
      ::pthread_kill(waiter, SIGALRM);
    }
  });
  const std::int64_t start = Deadline::monotonic_ns();
  EXPECT_EQ(futex_wait(word, 0, Deadline::after(150ms)), FutexWaitResult::kTimedOut);
  EXPECT_GE(Deadline::monotonic_ns() - start, 150'000'000);
  signaller.join();
  ::sigaction(SIGALRM, &previous, nullptr);
}

TEST(Deadline, ArithmeticSaturates) {
  EXPECT_TRUE(Deadline::after(std::chrono::nanoseconds::max()).is_never());
  EXPECT_TRUE(Deadline::after_seconds(-1).is_never());
  EXPECT_TRUE(Deadline::after(-5s).expired());
  EXPECT_FALSE(Deadline::never().expired());
  EXPECT_EQ(Deadline::never().min(Deadline::after(1s)).is_never(), false);
}

}  // namespace
}  // namespace ringfork
