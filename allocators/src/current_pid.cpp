#include "ringfork/current_pid.h"

#include <pthread.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace ringfork::detail {

std::atomic<pid_t> g_current_pid{0};

namespace {

void note_pid_after_fork() noexcept {
  // relaxed: see current_pid(); this child has one thread.
  g_current_pid.store(::getpid(), std::memory_order_relaxed);
}

}  // namespace

pid_t start_current_pid() noexcept {
  static const bool registered = [] {
    if (const int error = ::pthread_atfork(nullptr, nullptr, note_pid_after_fork)) {
      // Without the handler a forked child would read its parent's pid: nothing safe is left.
      std::fprintf(stderr, "ringfork: pthread_atfork failed (error %d)\n", error);
      std::abort();
    }
    return true;
  }();
  (void)registered;
  const pid_t pid = ::getpid();
  // relaxed: see current_pid(); every thread that stores here stores the same value.
  g_current_pid.store(pid, std::memory_order_relaxed);
  return pid;
}

}  // namespace ringfork::detail
