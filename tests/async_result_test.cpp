// AsyncResult: the completion word that replaced a mutex and condition variable. Waiters that
// arrive before, during and after completion must all see the one value or error, timeouts
// must time out, and nothing may be read before it is published.
#include "ringfork/async_result.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace ringfork {
namespace {

using namespace std::chrono_literals;

TEST(AsyncResult, TimeoutsBeforeCompletionThenTheValue) {
  auto state = std::make_shared<detail::ResultState<std::string>>();
  const AsyncResult<std::string> result(state);
  EXPECT_FALSE(result.ready());
  EXPECT_FALSE(result.wait(0s));
  EXPECT_FALSE(result.wait(10ms));
  EXPECT_THROW(result.get(5ms), TimeoutError);
  EXPECT_THROW(result.successful(), std::logic_error);
  state->set_value(std::string(100, 'v'));
  EXPECT_TRUE(result.ready());
  EXPECT_TRUE(result.wait(0s));
  EXPECT_TRUE(result.successful());
  EXPECT_EQ(result.get(), std::string(100, 'v'));
  EXPECT_EQ(result.get(0s), std::string(100, 'v')) << "get may be called again";
}

TEST(AsyncResult, AnErrorIsRethrownToEveryGet) {
  auto state = std::make_shared<detail::ResultState<void>>();
  const AsyncResult<void> result(state);
  state->set_error(std::make_exception_ptr(RemoteError("boom")));
  EXPECT_FALSE(result.successful());
  for (int i = 0; i < 2; ++i) EXPECT_THROW(result.get(), RemoteError);
}

// Waiters asleep (and some still arriving) when the result completes: each wakes once with
// the value, and none sleeps through the completion. Many rounds, to meet every interleaving
// of the waiters' announcement with the completing exchange.
TEST(AsyncResultThreads, EveryWaiterWakesWithTheValue) {
  constexpr int kWaiters = 3;
  constexpr int kRounds = 2000;
  for (int round = 0; round < kRounds; ++round) {
    auto state = std::make_shared<detail::ResultState<std::vector<int>>>();
    const AsyncResult<std::vector<int>> result(state);
    std::atomic<int> correct{0};
    std::vector<std::thread> waiters;
    for (int i = 0; i < kWaiters; ++i) {
      waiters.emplace_back([&, i] {
        const bool with_timeout = (round + i) % 2 == 0;
        const std::vector<int> value = with_timeout ? result.get(60s) : result.get();
        if (value == std::vector<int>{round, round + 1}) correct.fetch_add(1);
      });
    }
    if (round % 3 == 0) std::this_thread::sleep_for(50us);  // let some of them fall asleep
    state->set_value(std::vector<int>{round, round + 1});
    for (std::thread& waiter : waiters) waiter.join();
    ASSERT_EQ(correct.load(), kWaiters) << "round " << round;
  }
}

}  // namespace
}  // namespace ringfork
