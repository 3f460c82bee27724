#include "ringfork/asymmetric_fence.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace ringfork {
namespace detail {
std::atomic<bool> g_light_fence_is_compiler_only{false};
}  // namespace detail

namespace {

// Unused under ThreadSanitizer, where both sides keep real fences.
[[maybe_unused]] long membarrier(int command) noexcept {
  return syscall(SYS_membarrier, command, 0, 0);
}

// A process must register before its light fences may be compiler-only: the heavy side
// only interrupts CPUs running registered processes. Called before main and again in every
// forked child, because a child that would not be registered yet (kernels differ on
// whether fork inherits it) must fall back to real fences rather than be skipped.
void register_this_process() noexcept {
  bool registered = false;
#if !defined(__SANITIZE_THREAD__)
  // ThreadSanitizer does not see membarrier's ordering, so under it both sides keep the
  // real fences (EventCount also uses read-modify-writes there).
  const long supported = membarrier(MEMBARRIER_CMD_QUERY);
  registered = supported > 0 && (supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0 &&
               membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
#endif
  detail::g_light_fence_is_compiler_only.store(registered, std::memory_order_relaxed);
}

[[maybe_unused]] const bool g_registered_at_load = [] {
  register_this_process();
  pthread_atfork(nullptr, nullptr, &register_this_process);
  return true;
}();

}  // namespace

bool heavy_fence() noexcept {
#if defined(__SANITIZE_THREAD__)
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return true;
#else
  // Issued even when this process could not register: other processes may have, and their
  // light fences are compiler-only. If the call itself fails, nobody can be trusted.
  if (membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0) return true;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return false;
#endif
}

}  // namespace ringfork
