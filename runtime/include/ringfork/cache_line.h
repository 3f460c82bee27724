// Cache-line geometry and the CPU's spin hint, shared by every lock-free structure.
#pragma once

#include <cstddef>

namespace ringfork {

// Align hot shared fields to this to avoid false sharing between processes' cores. 64 bytes
// is the line on every x86-64 and most AArch64 parts; adjacent-line prefetch makes 128 safer.
inline constexpr std::size_t kCacheLineSize = 64;
inline constexpr std::size_t kFalseSharingRange = 128;

// Tells the core we are spinning, so a sibling hyperthread gets the pipeline and the exit
// from the loop is not penalised by a memory-order mis-speculation.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

// Starts fetching the line at `address` in a state this core may write (PREFETCHW; x86-64
// CPUs without it execute it as a no-op), so that a store to it soon after does not wait for
// another core to give the line up.
inline void prefetch_for_write(const void* address) noexcept {
#if defined(__x86_64__)
  asm volatile("prefetchw %0" ::"m"(*static_cast<const char*>(address)));
#else
  __builtin_prefetch(address, 1, 3);
#endif
}

}  // namespace ringfork
