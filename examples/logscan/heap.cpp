#include "heap.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace logscan {
namespace {

constexpr std::size_t kHugePage = std::size_t{2} << 20;
// The part of the heap advised for huge pages: more than a worker's heap grows to. Virtual
// only: a page is backed when first touched.
constexpr std::size_t kAdvisedHeap = std::size_t{128} << 20;
constexpr int kDefaultTopPad = 128 << 10;  // glibc's (mallopt(3))

}  // namespace

void configure_heap() noexcept {
  // Every chunk's partial report is a fresh buffer of up to a few MB, in the workers and
  // here: allocations up to 256 MiB come from the heap and freed memory stays there, so
  // glibc does not map and unmap (and the next use fault in again) each one.
  ::mallopt(M_MMAP_THRESHOLD, 256 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 512 << 20);
  // glibc advises its heap for huge pages only when told before the process starts
  // (GLIBC_TUNABLES=glibc.malloc.hugetlb=1). Instead: make the heap's next growth
  // kAdvisedHeap larger than it needs (M_TOP_PAD), force that growth with a block just larger
  // than the free top, and advise the range. Nothing in it is touched (MALLOC_PERTURB_ fills
  // only the small block). Skipped where the block did not come from the brk heap (a
  // sanitizer's malloc, or brk refused).
  ::mallopt(M_TOP_PAD, static_cast<int>(kAdvisedHeap));
  void* block = std::malloc(::mallinfo2().keepcost + 4096);
  ::mallopt(M_TOP_PAD, kDefaultTopPad);
  if (block == nullptr) return;
  const auto begin = reinterpret_cast<std::uintptr_t>(block);
  std::free(block);
  const auto end = reinterpret_cast<std::uintptr_t>(::sbrk(0));
  if (end < begin + kAdvisedHeap || end - begin > 2 * kAdvisedHeap) return;
  const std::uintptr_t first = (begin + kHugePage - 1) & ~(kHugePage - 1);
  // Advice only: where it fails, the heap keeps 4 KiB pages and nothing else changes.
  ::madvise(reinterpret_cast<void*>(first), end - first, MADV_HUGEPAGE);
}

}  // namespace logscan
