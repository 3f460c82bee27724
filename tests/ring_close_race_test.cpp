// MpmcRing::close() against a producer already past its closed() check: the push must fail,
// not land in a ring whose consumers were told it is closed and drained (a RingChain seals
// full rings with close(), so an unbounded Queue's put returned with its message in a ring
// nobody would read again).
//
// The window is a few instructions wide, so this program widens it: it defines madvise(),
// which Segment::populate calls when a handle first touches a slot chunk (inside the claim,
// between the closed() check and the CAS of tail). A thread that asks for it waits there
// until the test releases it. Its own program, so no other test runs with this madvise.
#include "ringfork/ring_mpmc.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "mpmc_test_support.h"

namespace {

thread_local bool pause_in_madvise = false;
std::atomic<bool> paused{false};
std::atomic<bool> released{false};

}  // namespace

extern "C" int madvise(void* address, std::size_t length, int advice) {
  if (pause_in_madvise) {
    pause_in_madvise = false;
    paused = true;
    while (!released) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return static_cast<int>(::syscall(SYS_madvise, address, length, advice));
}

namespace ringfork {
namespace {

using namespace std::chrono_literals;
using testing::Fixture;

bool await(const std::atomic<bool>& flag) {
  const Deadline deadline = Deadline::after(10s);
  while (!flag && !deadline.expired()) std::this_thread::sleep_for(1ms);
  return flag;
}

TEST(MpmcRingClose, ThreadPushRacingCloseIsRefusedNotLost) {
  paused = released = false;
  Fixture f;
  auto ring = MpmcRing<std::uint64_t>::create(f.arena, {.capacity = 1024});
  RingStatus pushed = RingStatus::kOk;
  std::thread producer([&] {
    // A handle of its own: it has touched no slot chunk, so its claim calls madvise.
    auto handle = MpmcRing<std::uint64_t>::attach(f.arena, ring.offset());
    pause_in_madvise = true;
    pushed = handle.try_push(7);
  });
  ASSERT_TRUE(await(paused)) << "the producer never reached madvise inside its claim: this "
                                "test needs another place to pause it";
  ring.close();
  std::uint64_t value = 0;
  EXPECT_EQ(ring.try_pop(value), RingStatus::kClosed) << "closed, nothing published";
  released = true;
  producer.join();
  EXPECT_EQ(pushed, RingStatus::kClosed) << "a push that raced close() succeeded";
  EXPECT_EQ(ring.try_pop(value), RingStatus::kClosed);
  EXPECT_EQ(ring.counters().puts, 0u);
}

}  // namespace
}  // namespace ringfork
