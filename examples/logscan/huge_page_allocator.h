// HugePageAllocator: a std::allocator that backs large arrays with transparent huge pages.
//
// The merged report's waiting records live in one hash table that grows to tens of MB in
// the process that merges the partials. From malloc, every 4 KiB page of each larger table
// is a page fault when first touched (measured: ~13,000 faults and a third of the merging
// process's CPU per GB of logs, in a VM where a fault costs ~13 us); a 2 MiB page is one.
// Arrays under kMinBytes come from operator new as usual. Stateless: any two compare equal.
// Throws std::bad_alloc like std::allocator.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <new>

namespace logscan {

template <class T>
class HugePageAllocator {
 public:
  using value_type = T;
  static constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;
  static constexpr std::size_t kMinBytes = kHugePageBytes;

  HugePageAllocator() noexcept = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kMinBytes)
      return static_cast<T*>(::operator new (bytes, std::align_val_t{alignof(T)}));
    // Huge pages need 2 MiB-aligned addresses: map a page more, unmap what the aligned
    // range does not use.
    const std::size_t length = mapped_bytes(bytes);
    void* memory = ::mmap(nullptr, length + kHugePageBytes, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::bad_alloc();
    const auto start = reinterpret_cast<std::uintptr_t>(memory);
    const std::uintptr_t aligned = (start + kHugePageBytes - 1) & ~(kHugePageBytes - 1);
    if (aligned > start) ::munmap(memory, aligned - start);
    const std::uintptr_t tail = start + length + kHugePageBytes - (aligned + length);
    if (tail > 0) ::munmap(reinterpret_cast<void*>(aligned + length), tail);
    // Advice only: without THP the pages are small, and nothing else changes.
    ::madvise(reinterpret_cast<void*>(aligned), length, MADV_HUGEPAGE);
    return reinterpret_cast<T*>(aligned);
  }

  void deallocate(T* pointer, std::size_t n) noexcept {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kMinBytes) {
      ::operator delete (pointer, std::align_val_t{alignof(T)});
      return;
    }
    ::munmap(pointer, mapped_bytes(bytes));
  }

  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }

 private:
  static std::size_t mapped_bytes(std::size_t bytes) {
    return (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  }
};

}  // namespace logscan
