// The template process stopped (SIGSTOP) while a start waits for it: the start gives up after
// RuntimeOptions.spawn_timeout with a clear error, and is cancelled - when the template runs
// again it neither forks that worker nor keeps its entry. A program of its own: it needs a
// Runtime made with a short spawn_timeout.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "ringfork/process.h"
#include "runtime_main.h"

namespace ringfork {
namespace {

using namespace std::chrono_literals;

// Long enough for a loaded CI machine's template to answer the starts that should succeed.
constexpr auto kSpawnTimeout = 2s;
using testing::g_runtime;

std::string marker_path(int token) {
  return "/tmp/ringfork-template-stall-" + std::to_string(Runtime::current()->parent_pid()) +
         "-" + std::to_string(token);
}

// The worker leaves a file behind, so the parent can tell whether it ever ran.
int leave_marker(int token) {
  const std::string path = marker_path(token);
  FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) return 2;
  std::fclose(file);
  return 0;
}

bool marker_exists(int token) {
  struct stat st {};
  return ::stat(marker_path(token).c_str(), &st) == 0;
}

using testing::entries_in_use;

TEST(TemplateStall, AStartTheStoppedTemplateNeverTookIsCancelledNotRunLater) {
  ::unlink(marker_path(1).c_str());
  ::unlink(marker_path(2).c_str());
  ASSERT_EQ(::kill(g_runtime->template_pid(), SIGSTOP), 0);
  {
    Process stalled(*g_runtime, &leave_marker, 1);
    try {
      stalled.start();
      ADD_FAILURE() << "start() returned while the template was stopped";
    } catch (const std::system_error& error) {
      EXPECT_EQ(error.code().value(), ETIMEDOUT);
      EXPECT_NE(std::string(error.what()).find("spawn_timeout"), std::string::npos)
          << error.what();
    }
    EXPECT_THROW(stalled.join(0s), std::logic_error) << "a start that failed left it started";
  }
  ASSERT_EQ(::kill(g_runtime->template_pid(), SIGCONT), 0);

  // The template takes requests in order: once it has forked this one, it has seen the
  // cancelled one before it.
  Process next(*g_runtime, &leave_marker, 2);
  next.start();
  ASSERT_TRUE(next.join(30s));
  EXPECT_EQ(next.exitcode(), 0);
  EXPECT_TRUE(marker_exists(2));
  EXPECT_FALSE(marker_exists(1)) << "the cancelled start ran after all";
  EXPECT_EQ(entries_in_use(), 1u) << "only `next` (joined, not yet dropped) holds an entry";
  ::unlink(marker_path(2).c_str());
}

TEST(TemplateStall, AnEntryOfEveryCancelledStartIsFreedOnceTheTemplateRunsAgain) {
  ASSERT_EQ(::kill(g_runtime->template_pid(), SIGSTOP), 0);
  for (int token = 10; token < 13; ++token) {
    Process stalled(*g_runtime, &leave_marker, token);
    EXPECT_THROW(stalled.start(), std::system_error);
  }
  EXPECT_EQ(entries_in_use(), 3u) << "cancelled entries wait for the template to free them";
  ASSERT_EQ(::kill(g_runtime->template_pid(), SIGCONT), 0);
  {
    Process next(*g_runtime, &leave_marker, 13);
    next.start();
    ASSERT_TRUE(next.join(30s));
    EXPECT_EQ(next.exitcode(), 0);
  }
  EXPECT_EQ(entries_in_use(), 0u);
  for (int token = 10; token < 13; ++token) EXPECT_FALSE(marker_exists(token)) << token;
  ::unlink(marker_path(13).c_str());
}

TEST(TemplateStall, ANonPositiveSpawnTimeoutIsRefused) {
  RuntimeOptions options;
  options.spawn_timeout = 0ms;
  EXPECT_THROW(Runtime{options}, std::invalid_argument);
}

}  // namespace
}  // namespace ringfork

int main(int argc, char** argv) {
  ringfork::RuntimeOptions options;
  options.spawn_timeout = ringfork::kSpawnTimeout;
  return ringfork::testing::run_all_tests_with_runtime(argc, argv, options);
}
