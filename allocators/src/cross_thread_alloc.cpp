#include "ringfork/cross_thread_alloc.h"

#include <mimalloc.h>

namespace ringfork {

void* cross_thread_allocate(std::size_t bytes, std::size_t alignment) {
  void* memory = alignment <= alignof(std::max_align_t) ? mi_malloc(bytes)
                                                         : mi_malloc_aligned(bytes, alignment);
  if (memory == nullptr) throw std::bad_alloc();
  return memory;
}

void cross_thread_free(void* memory) noexcept { mi_free(memory); }

}  // namespace ringfork
