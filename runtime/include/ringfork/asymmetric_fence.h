// Asymmetric fences: a Dekker handshake whose one side runs millions of times a second (a
// ring publishing a message, then checking for sleepers) and whose other side runs rarely
// (a consumer about to sleep). The frequent side pays a compiler barrier; the rare side pays
// a membarrier(2) system call that makes every running thread of every ringfork process
// execute a full fence. Without the system call, both sides fall back to real fences.
#pragma once

#include <atomic>

namespace ringfork {
namespace detail {
// Set once per process, before main, by the registration in asymmetric_fence.cpp.
// relaxed: written before any thread that reads it exists.
extern std::atomic<bool> g_light_fence_is_compiler_only;
}  // namespace detail

// The frequent side: orders this thread's earlier stores before its later loads, against a
// heavy_fence() in any ringfork process.
inline void light_fence() noexcept {
  if (detail::g_light_fence_is_compiler_only.load(std::memory_order_relaxed)) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

// The rare side: a full fence here and on every CPU currently running a ringfork process.
// Returns false if this process cannot issue one (membarrier unavailable or refused by a
// seccomp filter); a waiter must then not sleep unboundedly, since a notifier using only a
// compiler barrier may have missed it (EventCount polls in short slices instead).
bool heavy_fence() noexcept;

// True when light_fence() is only a compiler barrier in this process (for tests and docs).
inline bool asymmetric_fences_active() noexcept {
  return detail::g_light_fence_is_compiler_only.load(std::memory_order_relaxed);
}

}  // namespace ringfork
