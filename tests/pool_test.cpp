// Pool: every method with checked results, a million callbacks each run exactly once, workers
// segfaulting at random (each such task fails with WorkerCrashed, the rest succeed, the pool
// keeps its size), maxtasksperchild, terminate with tasks in flight, destruction without
// join, and exceptions in tasks and callbacks.
#include "ringfork/pool.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <numeric>
#include <random>
#include <set>
#include <thread>

namespace ringfork {
namespace {

using namespace std::chrono_literals;

Runtime* g_runtime = nullptr;

int square(int x) { return x * x; }
std::string shout(std::string text, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += text + "!";
  return out;
}
int add(int a, int b) { return a + b; }
int fail_on_seven(int x) {
  if (x == 7) throw std::invalid_argument("seven is not allowed");
  return x;
}
std::uint64_t identity(std::uint64_t x) { return x; }
int crash_if_marked(int x) {
  if (x < 0) {
    // Sanitizers must not turn the crash into a report and an exit: die of the signal itself.
    ::signal(SIGSEGV, SIG_DFL);
    ::raise(SIGSEGV);
  }
  return x + 1;
}
int nap(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
Bytes big_result(std::uint64_t bytes) {
  Bytes out(bytes);
  for (std::uint64_t i = 0; i < bytes; i += 4096) out[i] = static_cast<std::byte>(i / 4096);
  return out;
}
int g_initialized = 0;
void set_initialized(int value) { g_initialized = value; }
int read_initialized(int) { return g_initialized; }
int own_pid(int) { return static_cast<int>(::getpid()); }

TEST(Pool, ApplyAndApplyAsyncReturnResults) {
  Pool pool(*g_runtime, 2);
  EXPECT_EQ(pool.apply(&square, 12), 144);
  EXPECT_EQ(pool.apply(&shout, std::string("hey"), 2), "hey!hey!");
  auto result = pool.apply_async(&add, 2, 3);
  EXPECT_EQ(result.get(30s), 5);
  EXPECT_TRUE(result.ready());
  EXPECT_TRUE(result.successful());
  pool.close();
  pool.join();
}

TEST(Pool, MapImapAndStarmapKeepOrderAndImapUnorderedIsComplete) {
  Pool pool(*g_runtime, 2);
  std::vector<int> items(1000);
  std::iota(items.begin(), items.end(), 0);
  const std::vector<int> squares = pool.map(&square, items, 37);
  ASSERT_EQ(squares.size(), items.size());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(squares[i], i * i);
  EXPECT_EQ(pool.map_async(&square, items, 100).get(30s), squares);
  EXPECT_TRUE(pool.map(&square, std::vector<int>{}, 10).empty());

  auto ordered = pool.imap(&square, items, 7);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(ordered.next(30s), i * i);
  EXPECT_EQ(ordered.next(30s), std::nullopt);

  auto unordered = pool.imap_unordered(&square, items, 13);
  std::multiset<int> seen;
  while (auto value = unordered.next(30s)) seen.insert(*value);
  EXPECT_EQ(seen, std::multiset<int>(squares.begin(), squares.end()));

  std::vector<std::tuple<int, int>> pairs;
  for (int i = 0; i < 100; ++i) pairs.emplace_back(i, 2 * i);
  const std::vector<int> sums = pool.starmap(&add, pairs, 9);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sums[i], 3 * i);
  pool.close();
  pool.join();
}

TEST(Pool, RemoteExceptionReachesTheCaller) {
  Pool pool(*g_runtime, 1);
  try {
    pool.apply(&fail_on_seven, 7);
    ADD_FAILURE() << "expected RemoteError";
  } catch (const RemoteError& error) {
    EXPECT_NE(std::string(error.what()).find("seven is not allowed"), std::string::npos);
  }
  auto failed = pool.apply_async(&fail_on_seven, 7);
  EXPECT_TRUE(failed.wait(30s));
  EXPECT_FALSE(failed.successful());
  EXPECT_THROW(pool.map(&fail_on_seven, std::vector<int>{1, 7, 9}, 1), RemoteError);
  EXPECT_EQ(pool.apply(&fail_on_seven, 8), 8) << "the worker survives its task's exception";
  pool.close();
  pool.join();
}

TEST(Pool, HundredMegabyteResult) {
  Pool pool(*g_runtime, 1);
  const Bytes result = pool.apply(&big_result, std::uint64_t{100} << 20);
  ASSERT_EQ(result.size(), std::size_t{100} << 20);
  EXPECT_EQ(result[4096 * 77], static_cast<std::byte>(77));
  pool.close();
  pool.join();
}

TEST(Pool, MillionApplyAsyncCallbacksEachRunExactlyOnce) {
  constexpr int kTasks = 1'000'000;
  Pool pool(*g_runtime, 2);
  std::vector<std::atomic<std::uint8_t>> calls(kTasks);
  std::atomic<std::uint64_t> errors{0};
  for (int i = 0; i < kTasks; ++i) {
    pool.apply_async(Callbacks<std::uint64_t>{[&](const std::uint64_t& value) {
                                                calls[value].fetch_add(1);
                                              },
                                              [&](std::exception_ptr) { ++errors; }},
                     &identity, std::uint64_t(i));
  }
  pool.close();
  pool.join();
  EXPECT_EQ(errors.load(), 0u);
  int wrong = 0;
  for (int i = 0; i < kTasks; ++i) wrong += calls[i].load() != 1;
  EXPECT_EQ(wrong, 0) << "callbacks that did not run exactly once";
}

// Fault injection: 5 % of 10^4 tasks segfault their worker.
TEST(Pool, CrashingTasksFailAloneAndWorkersAreReplaced) {
  constexpr int kTasks = 10'000;
  Pool pool(*g_runtime, 2);
  std::vector<AsyncResult<int>> results;
  std::vector<bool> marked(kTasks);
  std::mt19937 random(5);
  for (int i = 0; i < kTasks; ++i) {
    marked[i] = random() % 20 == 0;
    results.push_back(pool.apply_async(&crash_if_marked, marked[i] ? -1 - i : i));
  }
  int crashed = 0, succeeded = 0;
  for (int i = 0; i < kTasks; ++i) {
    try {
      const int value = results[i].get(120s);
      EXPECT_FALSE(marked[i]) << "task " << i << " should have crashed";
      EXPECT_EQ(value, i + 1);
      ++succeeded;
    } catch (const WorkerCrashed& error) {
      EXPECT_TRUE(marked[i]) << "task " << i << " failed but was not marked: " << error.what();
      EXPECT_EQ(error.exit_code(), -SIGSEGV);
      ++crashed;
    }
  }
  EXPECT_EQ(crashed + succeeded, kTasks);
  EXPECT_EQ(crashed, static_cast<int>(std::count(marked.begin(), marked.end(), true)));
  EXPECT_EQ(pool.apply(&square, 3), 9);
  EXPECT_EQ(pool.core().live_workers(), 2) << "the pool keeps its full worker count";
  pool.close();
  pool.join();
}

TEST(Pool, InitializerAndMaxTasksPerChild) {
  PoolOptions options;
  options.initializer = pack_call(&set_initialized, 41);
  options.maxtasksperchild = 3;
  Pool pool(*g_runtime, 1, options);
  std::set<int> pids;
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(pool.apply(&read_initialized, 0), 41);
    pids.insert(pool.apply(&own_pid, 0));
  }
  EXPECT_GE(pids.size(), 6u) << "a worker serves at most 3 tasks";
  EXPECT_GE(pool.core().workers_started(), 6u);
  pool.close();
  pool.join();
}

TEST(Pool, TerminateFailsPendingTasksAndDestructionWithoutJoinIsSafe) {
  std::vector<AsyncResult<int>> pending;
  {
    Pool pool(*g_runtime, 2);
    for (int i = 0; i < 20; ++i) pending.push_back(pool.apply_async(&nap, 200));
    std::this_thread::sleep_for(50ms);
    pool.terminate();
    pool.join();
    EXPECT_THROW(pool.apply_async(&square, 1), std::logic_error);
  }
  for (auto& result : pending) EXPECT_THROW(result.get(10s), PoolTerminated);
  {
    Pool dropped(*g_runtime, 2);
    auto slow = dropped.apply_async(&nap, 5000);
    (void)slow;
  }  // destroyed without close/join: terminates, does not hang
}

TEST(Pool, ExceptionInACallbackIsReportedNotLost) {
  Pool pool(*g_runtime, 1);
  auto result = pool.apply_async(
      Callbacks<int>{[](const int&) { throw std::runtime_error("callback bug"); }, nullptr},
      &square, 4);
  EXPECT_EQ(result.get(30s), 16) << "the result still arrives";
  pool.close();
  pool.join();
  EXPECT_EQ(pool.core().callback_errors(), 1u);
}

TEST(Pool, JoinBeforeCloseIsAnError) {
  Pool pool(*g_runtime, 1);
  EXPECT_THROW(pool.join(), std::logic_error);
  EXPECT_THROW(Pool(*g_runtime, 0), std::invalid_argument);
}

}  // namespace
}  // namespace ringfork

int main(int argc, char** argv) {
  ringfork::Runtime runtime;  // before gtest or any thread
  ringfork::g_runtime = &runtime;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
