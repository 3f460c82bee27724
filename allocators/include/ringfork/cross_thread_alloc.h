// Process-local memory for objects made on one thread and freed on another, such as a Pool
// task's shared state: made by the thread that submits, freed by a callback thread.
#pragma once

#include <cstddef>
#include <new>

namespace ringfork {

// mimalloc underneath (as local_alloc.h), called out of line so that a program including
// this header needs neither mimalloc's headers nor its library: a free from another thread
// is a lock-free push onto the owning page, where glibc's free takes the arena's lock
// (callgrind, a Pool task's state: glibc about 190 instructions to allocate and 170 to free
// it, mimalloc about 75 to free it).
// Throws std::bad_alloc when memory is exhausted.
void* cross_thread_allocate(std::size_t bytes, std::size_t alignment);
void cross_thread_free(void* memory) noexcept;

// For std::allocate_shared and the containers. Stateless: any two compare equal.
template <class T>
struct CrossThreadAllocator {
  using value_type = T;
  CrossThreadAllocator() noexcept = default;
  template <class U>
  CrossThreadAllocator(const CrossThreadAllocator<U>&) noexcept {}  // NOLINT: rebinding
  T* allocate(std::size_t count) {
    if (count > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(cross_thread_allocate(count * sizeof(T), alignof(T)));
  }
  void deallocate(T* memory, std::size_t) noexcept { cross_thread_free(memory); }
  template <class U>
  bool operator==(const CrossThreadAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace ringfork
