// Helpers shared by the cross-process tests: fork a child with a watchdog, read exit codes.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <thread>
#include <utility>

namespace ringfork::testing {

// Sanitized builds (ASan, TSan) run the longest loops smaller: the same code paths, at a
// fraction of the count, since the sanitizers multiply their cost ten times or more and CI
// has a time budget. Plain builds (make test) run the full counts the issues ask for.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
// `full` in plain builds, `full / divisor` (at least 1) in sanitized ones.
constexpr long scaled(long full, long divisor) {
  return kSanitized ? (full / divisor > 0 ? full / divisor : 1) : full;
}

// Runs `body` in a forked child; the child exits with body's return value (or 99 if it
// threw, after printing the exception). Never returns in the child.
template <class Body>
pid_t fork_child(Body&& body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork failed";
    return -1;
  }
  if (pid == 0) {
    int code = 99;
    try {
      code = body();
    } catch (const std::exception& error) {
      std::fprintf(stderr, "child %d threw: %s\n", ::getpid(), error.what());
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  return pid;
}

// Waits for `pid` up to `watchdog`; on expiry SIGKILLs it and records a failure, so a
// regression that hangs fails the test instead of hanging CI. Returns the wait status.
inline int wait_child(pid_t pid, std::chrono::milliseconds watchdog = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + watchdog;
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (done < 0) {
      ADD_FAILURE() << "waitpid(" << pid << ") failed";
      return -1;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "child " << pid << " still running after the watchdog: killed";
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

inline void expect_clean_exit(pid_t pid,
                              std::chrono::milliseconds watchdog = std::chrono::seconds(60)) {
  const int status = wait_child(pid, watchdog);
  EXPECT_TRUE(WIFEXITED(status)) << "child " << pid << " status " << status;
  if (WIFEXITED(status)) {
    EXPECT_EQ(WEXITSTATUS(status), 0) << "child " << pid << " failed";
  }
}

}  // namespace ringfork::testing
