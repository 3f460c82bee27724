// A Pool whose constructor fails part-way (a later worker cannot be started) stops the
// workers it had started: none is left waiting on a task queue nobody will close, holding its
// process entry, until the Runtime ends. A program of its own: it defines fork(), so that the
// template's fork of a chosen worker fails.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <system_error>
#include <thread>

#include "ringfork/pool.h"
#include "runtime_main.h"

namespace {

// The template is a fork of the test process, made before any test runs, so it learns the
// test's wishes from a file named after its parent: how many more forks succeed before one
// fails with EAGAIN. No file (every other process's fork): fork as usual.
std::string fork_budget_path(pid_t test_process) {
  return "/tmp/ringfork-fork-budget-" + std::to_string(test_process);
}

bool take_from_fork_budget() {
  const std::string path = fork_budget_path(::getppid());
  FILE* file = std::fopen(path.c_str(), "r+");
  if (file == nullptr) return true;
  int left = 0;
  const bool read = std::fscanf(file, "%d", &left) == 1;
  std::rewind(file);
  std::fprintf(file, "%d\n", left - 1);
  std::fclose(file);
  if (read && left > 0) return true;
  ::unlink(path.c_str());
  return false;
}

}  // namespace

extern "C" pid_t fork() {
  static const auto real_fork = reinterpret_cast<pid_t (*)()>(::dlsym(RTLD_NEXT, "fork"));
  if (!take_from_fork_budget()) {
    errno = EAGAIN;
    return -1;
  }
  return real_fork();
}

namespace ringfork {
namespace {

using namespace std::chrono_literals;
using testing::entries_in_use;
using testing::g_runtime;

int square(int x) { return x * x; }

void allow_forks(int count) {
  FILE* file = std::fopen(fork_budget_path(::getpid()).c_str(), "w");
  ASSERT_NE(file, nullptr);
  std::fprintf(file, "%d\n", count);
  std::fclose(file);
}

TEST(PoolStartFailure, WorkersStartedBeforeTheFailureAreStoppedAndTheirEntriesFreed) {
  const std::size_t before = entries_in_use();
  allow_forks(2);  // workers 0 and 1 start; worker 2's fork fails
  try {
    Pool pool(*g_runtime, 4);
    ADD_FAILURE() << "a Pool was made though a worker's fork failed";
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code().value(), EAGAIN) << error.what();
  }
  // The template records the stopped workers' exits, which frees their entries.
  for (int i = 0; i < 200 && entries_in_use() != before; ++i) std::this_thread::sleep_for(50ms);
  EXPECT_EQ(entries_in_use(), before) << "workers of the failed Pool still hold their entries";
  // The Runtime is unharmed: a Pool made afterwards works.
  Pool pool(*g_runtime, 2);
  EXPECT_EQ(pool.apply(&square, 7), 49);
  pool.close();
  pool.join();
}

TEST(PoolStartFailure, MoreProcessesThanARuntimeRunsAreRefusedBeforeAnyStarts) {
  const std::size_t before = entries_in_use();
  EXPECT_THROW(Pool(*g_runtime, RuntimeControl::kMaxWorkers + 1), std::invalid_argument);
  EXPECT_EQ(entries_in_use(), before);
}

}  // namespace
}  // namespace ringfork

int main(int argc, char** argv) {
  return ringfork::testing::run_all_tests_with_runtime(argc, argv);
}
