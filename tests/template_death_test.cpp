// The template process SIGKILLed while processes and a pool run from it: its workers die
// with it, and everything waiting on them ends with an error instead of hanging - join()
// reports the kill, the pool fails its tasks and then breaks, new starts are refused. A
// program of its own: the Runtime it kills cannot start processes afterwards.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "ringfork/pool.h"
#include "ringfork/process.h"
#include "runtime_main.h"

namespace ringfork {
namespace {

using namespace std::chrono_literals;

using testing::g_runtime;

int sleep_forever() {
  for (;;) ::pause();
}
int nap(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
int square(int x) { return x * x; }

TEST(TemplateDeath, ProcessesAndPoolsEndWithAnErrorInsteadOfHanging) {
  Process sleeper(*g_runtime, &sleep_forever);
  sleeper.start();
  Pool pool(*g_runtime, 2);
  ASSERT_EQ(pool.apply(&square, 7), 49);
  std::vector<AsyncResult<int>> pending;
  for (int i = 0; i < 6; ++i) pending.push_back(pool.apply_async(&nap, 60'000));

  ASSERT_EQ(::kill(g_runtime->template_pid(), SIGKILL), 0);

  // join() returns once the worker's pidfd says it ended: it did not outlive the template.
  ASSERT_TRUE(sleeper.join(30s)) << "join waited for a worker nobody will reap";
  EXPECT_EQ(sleeper.exitcode(), -SIGKILL);
  EXPECT_FALSE(sleeper.is_alive());
  for (auto& result : pending) EXPECT_THROW(result.get(30s), WorkerCrashed);
  EXPECT_THROW(pool.apply_async(&square, 1), PoolBroken);
  Process late(*g_runtime, &square, 2);
  EXPECT_THROW(late.start(), std::system_error);
  pool.close();
  pool.join();
}

}  // namespace
}  // namespace ringfork

int main(int argc, char** argv) {
  return ringfork::testing::run_all_tests_with_runtime(argc, argv);
}
