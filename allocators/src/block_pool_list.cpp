// BlockPool's shared free lists: per-class Treiber stacks of block headers in the segment with
// tagged heads against ABA, the carving of new chunks from the arena, and the shared in-use
// estimate. Reached only on refill, trim, flush and reclaim; the hot paths stay in the caches.
#include <atomic>
#include <cstdint>
#include <new>
#include <system_error>

#include "block_pool_local.h"
#include "ringfork/cache_line.h"

namespace ringfork::detail {

// Pops a block and records (owner, state) in it; 0 when the list is empty or corrupt.
std::uint64_t BlockPoolLocal::pop(std::uint32_t cls, pid_t owner, BlockState state) noexcept {
  const ClassGeometry& g = classes[cls];
  const std::uint64_t limit = g.blocks_per_chunk * g.max_chunks;
  // acquire: pairs with the pushes' release, so the head block's header is visible.
  std::uint64_t head = g.shared->free_head.load(std::memory_order_acquire);
  for (;;) {
    const std::uint64_t first = head & kIndexMask;
    if (first == 0) return 0;
    BlockHeader* header = first <= limit ? header_at(cls, first - 1) : nullptr;
    if (header == nullptr) return 0;  // corrupt head: never follow it; carving goes on
    // relaxed: if the block was popped since we loaded `head`, this may be stale, and then
    // the head's tag has moved and the CAS below fails.
    const std::uint64_t next = header->next.load(std::memory_order_relaxed);
    if (next > limit) {
      // acquire: as above. An unchanged head means the link really is corrupt.
      const std::uint64_t again = g.shared->free_head.load(std::memory_order_acquire);
      if (again == head) return 0;
      head = again;
      continue;
    }
#ifndef NDEBUG
    // relaxed: set by a test before the threads it interleaves start.
    if (auto* hook = g_pop_hook.load(std::memory_order_relaxed)) {
      hook(g_pop_hook_context.load(std::memory_order_relaxed));
    }
#endif
    const std::uint64_t desired = next | (((head >> kIndexBits) + 1) << kIndexBits);
    // acquire (both ways): on success the block and the data its freer wrote are visible;
    // on failure the new head block's header is, for the next round.
    if (g.shared->free_head.compare_exchange_weak(head, desired, std::memory_order_acquire,
                                                  std::memory_order_acquire)) {
      // relaxed: another process reads these only after receiving the block through a
      // release/acquire hand-over, or after reaping this process (reclaim).
      header->owner.store(owner, std::memory_order_relaxed);
      header->state.store(state, std::memory_order_relaxed);
      return block_of(header);
    }
  }
}

void BlockPoolLocal::push(std::uint32_t cls, BlockHeader* header) noexcept {
  PoolClass& shared = *classes[cls].shared;
  // relaxed: published by the release CAS below. Owner first: a block with a live pid as
  // owner is never on the list, which is what lets reclaim() push without looking.
  header->owner.store(kNoOwner, std::memory_order_relaxed);
  header->state.store(kFree, std::memory_order_relaxed);
  const std::uint64_t self = header->index.load(std::memory_order_relaxed) + 1;
  // relaxed: the head's value is only linked below, never dereferenced here.
  std::uint64_t head = shared.free_head.load(std::memory_order_relaxed);
  for (;;) {
    header->next.store(head & kIndexMask, std::memory_order_relaxed);
    const std::uint64_t desired = self | (((head >> kIndexBits) + 1) << kIndexBits);
    // release: the popper that sees this head sees `next`, the header and the block's bytes.
    if (shared.free_head.compare_exchange_weak(head, desired, std::memory_order_release,
                                               std::memory_order_relaxed)) {
      return;
    }
  }
}

// Carves one chunk for `cls`: up to `keep` blocks go to `out` (owned, kCached), the rest
// onto the shared list. Returns how many went to `out` through `kept`.
std::error_code BlockPoolLocal::carve(std::uint32_t cls, std::uint32_t keep, std::uint64_t* out,
                                      std::uint32_t& kept) noexcept {
  const ClassGeometry& g = classes[cls];
  const std::uint64_t chunk_bytes = g.stride * g.blocks_per_chunk;
  const std::uint64_t max_bytes = control->max_bytes;
  // relaxed: a budget counter; the chunk's contents are published through its table entry.
  std::uint64_t used = control->carved_bytes.load(std::memory_order_relaxed);
  do {
    if (used > max_bytes || chunk_bytes > max_bytes - used) {
      return std::make_error_code(std::errc::not_enough_memory);
    }
  } while (!control->carved_bytes.compare_exchange_weak(used, used + chunk_bytes,
                                                        std::memory_order_relaxed));
  std::uint64_t offset = 0;
  if (std::error_code error = arena->allocate(chunk_bytes, kCacheLineSize, offset)) {
    control->carved_bytes.fetch_sub(chunk_bytes, std::memory_order_relaxed);  // relaxed: budget
    return error;
  }
  // relaxed: only hands out distinct slot numbers.
  const std::uint64_t slot = g.shared->chunks.fetch_add(1, std::memory_order_relaxed);
  auto* bytes = static_cast<std::byte*>(segment->try_bytes(offset, chunk_bytes, kCacheLineSize));
  if (slot >= g.max_chunks || bytes == nullptr) {
    return std::make_error_code(std::errc::not_enough_memory);  // unreachable within budget
  }
  const pid_t me = current_pid();
  for (std::uint64_t i = 0; i < g.blocks_per_chunk; ++i) {
    auto* header = new (bytes + i * g.stride) BlockHeader{};
    // relaxed: published by the release store of the table entry below.
    header->class_id.store(cls, std::memory_order_relaxed);
    header->index.store(slot * g.blocks_per_chunk + i, std::memory_order_relaxed);
    header->owner.store(me, std::memory_order_relaxed);
    header->state.store(kCached, std::memory_order_relaxed);
  }
  // release: header_at()'s acquire then sees the headers written above.
  g.chunk_table[slot].store(offset, std::memory_order_release);
  g.shared->carved.fetch_add(g.blocks_per_chunk, std::memory_order_relaxed);  // relaxed: stat
  kept = 0;
  for (std::uint64_t i = 0; i < g.blocks_per_chunk; ++i) {
    auto* header = reinterpret_cast<BlockHeader*>(bytes + i * g.stride);
    if (kept < keep) {
      out[kept++] = block_of(header);
    } else {
      push(cls, header);
    }
  }
  return {};
}

void BlockPoolLocal::publish_in_use(std::uint32_t cls, std::int64_t delta,
                                    std::int64_t peak) noexcept {
  PoolClass& shared = *classes[cls].shared;
  // relaxed: statistics; no memory is published through them.
  const std::int64_t before = shared.in_use_estimate.fetch_add(delta, std::memory_order_relaxed);
  const std::int64_t candidate = before + peak;
  if (candidate <= 0) return;
  std::uint64_t high = shared.high_water.load(std::memory_order_relaxed);
  while (high < static_cast<std::uint64_t>(candidate) &&
         !shared.high_water.compare_exchange_weak(high, static_cast<std::uint64_t>(candidate),
                                                  std::memory_order_relaxed)) {
  }
}

}  // namespace ringfork::detail
