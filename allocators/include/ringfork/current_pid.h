// current_pid(): the calling process's pid without a system call.
#pragma once

#include <sys/types.h>

#include <atomic>

namespace ringfork {

namespace detail {
// 0 until the first current_pid() in this process image; kept current in forked children
// by a pthread_atfork child handler that the first call registers.
extern std::atomic<pid_t> g_current_pid;
pid_t start_current_pid() noexcept;
}  // namespace detail

// getpid() is a system call, and hot paths that record a block's owner (BlockPool, the
// consumer side of ByteQueue) would pay one per message: about a microsecond on a
// virtualised machine. This reads a cached copy instead. Correct in children made by fork()
// (glibc runs the atfork handler, as Python's os.fork does); a child made by a raw clone()
// system call would read its parent's pid, so such children must not use ringfork.
inline pid_t current_pid() noexcept {
  // relaxed: the value is written once per process before its first use here (or by the
  // only thread of a freshly forked child), and a thread that still reads 0 takes the slow
  // path, which returns getpid() itself.
  const pid_t pid = detail::g_current_pid.load(std::memory_order_relaxed);
  return pid != 0 ? pid : detail::start_current_pid();
}

}  // namespace ringfork
