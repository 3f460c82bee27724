// BlockPool: per-class Treiber stacks of block headers in the segment (tagged heads against
// ABA), carved lazily from the arena, fronted by a process-local cache per class.
#include "ringfork/block_pool.h"

#include <mimalloc.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "block_pool_local.h"
#include "ringfork/cache_line.h"
#include "ringfork/local_alloc.h"

namespace ringfork {
namespace detail {

#ifndef NDEBUG
std::atomic<void (*)(void*)> g_pop_hook{nullptr};
std::atomic<void*> g_pop_hook_context{nullptr};
#endif

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

void BlockPoolLocal::publish_cache_stats(std::uint32_t cls, ClassCache& cache) noexcept {
  if (cache.unpublished == 0 && cache.unpublished_peak == 0) return;
  publish_in_use(cls, cache.unpublished, cache.unpublished_peak);
  cache.unpublished = 0;
  cache.unpublished_peak = 0;
}

std::error_code BlockPoolLocal::refill(std::uint32_t cls, ClassCache& cache) noexcept {
  const std::uint32_t want = std::max<std::uint32_t>(1, cache.capacity / 2);
  const pid_t me = current_pid();
  while (cache.count < want) {
    const std::uint64_t block = pop(cls, me, kCached);
    if (block == 0) break;
    cache.blocks[cache.count++] = block;
  }
  publish_cache_stats(cls, cache);  // we touched shared lines anyway
  if (cache.count > 0) return {};
  std::uint32_t kept = 0;
  std::error_code error = carve(cls, want, cache.blocks, kept);
  cache.count = kept;
  return error;
}

// Pushes the oldest blocks until `keep` remain.
void BlockPoolLocal::trim(std::uint32_t cls, ClassCache& cache, std::uint32_t keep) noexcept {
  if (cache.count <= keep) return;
  const std::uint32_t drop = cache.count - keep;
  for (std::uint32_t i = 0; i < drop; ++i) push(cls, cached_header(cache.blocks[i]));
  std::memmove(cache.blocks, cache.blocks + drop, keep * sizeof(cache.blocks[0]));
  cache.count = keep;
  publish_cache_stats(cls, cache);
}

}  // namespace detail

using namespace detail;

namespace {

void start_pid_tracking() {
  // Registers the atfork handler now, in the process that makes or attaches the pool, so
  // every child it forks later knows its own pid.
  (void)current_pid();
}

// Debug builds stop at the first misuse, where it happened; release builds ignore it.
void report_misuse([[maybe_unused]] const char* what, [[maybe_unused]] std::uint64_t block) {
#ifndef NDEBUG
  std::fprintf(stderr, "ringfork::BlockPool: %s (offset %llu, pid %d)\n", what,
               static_cast<unsigned long long>(block), static_cast<int>(::getpid()));
  std::abort();
#endif
}

std::size_t cache_capacity(std::size_t block_bytes) {
  return std::clamp<std::size_t>(kCacheTargetBytes / block_bytes, 1, kMaxCacheBlocks);
}

std::shared_ptr<BlockPoolLocal> make_local() {
  void* memory = mi_malloc_aligned(sizeof(BlockPoolLocal), alignof(BlockPoolLocal));
  if (memory == nullptr) throw std::bad_alloc();
  auto* local = new (memory) BlockPoolLocal{};
  return std::shared_ptr<BlockPoolLocal>(
      local,
      [](BlockPoolLocal* doomed) {
        doomed->~BlockPoolLocal();
        mi_free(doomed);
      },
      LocalAllocator<BlockPoolLocal>{});
}

[[noreturn]] void bad_layout(std::uint64_t offset, const std::string& why) {
  throw std::invalid_argument("no valid BlockPool at segment offset " + std::to_string(offset) +
                              ": " + why + " (pass the value of BlockPool::offset())");
}

}  // namespace

BlockPool BlockPool::create(SharedArena& arena, const BlockPoolOptions& options) {
  const auto& sizes = options.block_sizes;
  if (sizes.empty() || sizes.size() > kMaxClasses) {
    throw std::invalid_argument("BlockPoolOptions.block_sizes has " + std::to_string(sizes.size()) +
                                " classes; give 1.." + std::to_string(kMaxClasses));
  }
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] < 64 || sizes[i] % 64 != 0 || sizes[i] > (std::size_t{1} << 40) ||
        (i > 0 && sizes[i] <= sizes[i - 1])) {
      throw std::invalid_argument("BlockPoolOptions.block_sizes[" + std::to_string(i) +
                                  "] = " + std::to_string(sizes[i]) +
                                  ": sizes must ascend, be multiples of 64 and at most 2^40");
    }
  }
  if (options.max_bytes == 0) {
    throw std::invalid_argument("BlockPoolOptions.max_bytes is 0; give the byte cap for blocks");
  }
  const std::uint64_t offset =
      arena.allocate_or_throw(sizeof(PoolControl), kFalseSharingRange, "a block pool");
  auto* control = new (arena.segment().at(Offset<PoolControl>{offset})) PoolControl{};
  control->version = PoolControl::kVersion;
  control->header_bytes = sizeof(PoolControl);
  control->class_count = static_cast<std::uint32_t>(sizes.size());
  control->max_bytes = options.max_bytes;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    PoolClass& cls = control->classes[i];
    cls.block_bytes = sizes[i];
    cls.stride = sizes[i] + kHeaderBytes;
    cls.blocks_per_chunk = std::max<std::uint64_t>(1, kChunkTargetBytes / cls.stride);
    cls.max_chunks = options.max_bytes / (cls.stride * cls.blocks_per_chunk);
    cls.chunk_table =
        arena.allocate_or_throw(std::max<std::uint64_t>(1, cls.max_chunks) * sizeof(std::uint64_t),
                                kCacheLineSize, "a block pool chunk table");
  }
  // Written last: attach() refuses a control block whose magic is not there yet. Other
  // processes learn `offset` through a release (a published root, a queue), after this.
  control->magic = PoolControl::kMagic;
  return attach(arena, offset);
}

BlockPool BlockPool::attach(SharedArena& arena, std::uint64_t offset) {
  start_pid_tracking();
  Segment& segment = arena.segment();
  auto* control = segment.try_at(Offset<PoolControl>{offset});
  if (control == nullptr) bad_layout(offset, "outside the segment or misaligned");
  if (control->magic != PoolControl::kMagic) bad_layout(offset, "bad magic");
  if (control->version != PoolControl::kVersion || control->header_bytes != sizeof(PoolControl)) {
    bad_layout(offset, "version " + std::to_string(control->version) + " is not supported");
  }
  if (control->class_count == 0 || control->class_count > kMaxClasses) {
    bad_layout(offset, "class count " + std::to_string(control->class_count));
  }
  std::shared_ptr<BlockPoolLocal> local = make_local();
  local->arena = &arena;
  local->segment = &segment;
  local->control = control;
  local->class_count = control->class_count;
  for (std::uint32_t i = 0; i < control->class_count; ++i) {
    PoolClass& shared = control->classes[i];
    auto& g = local->classes[i];
    g = {shared.block_bytes, shared.stride, shared.blocks_per_chunk,
         shared.max_chunks,  &shared,       nullptr};
    const bool sane = g.block_bytes >= 64 && g.block_bytes % 64 == 0 &&
                      g.block_bytes <= (std::size_t{1} << 40) &&
                      (i == 0 || g.block_bytes > local->classes[i - 1].block_bytes) &&
                      g.stride == g.block_bytes + kHeaderBytes && g.blocks_per_chunk >= 1 &&
                      g.blocks_per_chunk <= kChunkTargetBytes &&
                      g.max_chunks <= control->max_bytes / (g.stride * g.blocks_per_chunk) &&
                      g.max_chunks <= segment.capacity() / sizeof(std::uint64_t);
    if (!sane) bad_layout(offset, "class " + std::to_string(i) + " has an impossible geometry");
    g.chunk_table = segment.try_at(Offset<std::atomic<std::uint64_t>>{shared.chunk_table},
                                   std::max<std::size_t>(1, g.max_chunks));
    if (g.chunk_table == nullptr) bad_layout(offset, "chunk table outside the segment");
    local->caches[i].capacity = static_cast<std::uint32_t>(cache_capacity(g.block_bytes));
    local->caches[i].pid = current_pid();
  }
  return BlockPool(arena, offset, std::move(local));
}

std::uint64_t BlockPool::offset() const noexcept { return control_; }

std::error_code BlockPool::allocate(std::size_t bytes, std::uint64_t& block) noexcept {
  BlockPoolLocal& local = *local_;
  const int found = local.class_for(bytes);
  if (found < 0) return std::make_error_code(std::errc::invalid_argument);
  const auto cls = static_cast<std::uint32_t>(found);
  auto& cache = local.caches[cls];
  if (local.try_lock(cache)) {
    std::error_code error;
    if (cache.count == 0) error = local.refill(cls, cache);
    if (cache.count > 0) {
      block = cache.blocks[--cache.count];
      // relaxed: the block is this process's; others learn of it through a later hand-over.
      local.cached_header(block)->state.store(kInUse, std::memory_order_relaxed);
      ++cache.unpublished;
      cache.unpublished_peak = std::max(cache.unpublished_peak, cache.unpublished);
      if (cache.unpublished >= kStatsBatch) local.publish_cache_stats(cls, cache);
      local.unlock(cache);
      return {};
    }
    local.unlock(cache);
    return error;
  }
  // Another thread of this process holds the cache: go to the shared list, never wait.
  std::uint64_t taken = local.pop(cls, current_pid(), kInUse);
  if (taken == 0) {
    std::uint32_t kept = 0;
    if (std::error_code error = local.carve(cls, 1, &taken, kept)) return error;
    // relaxed: as above, the block is ours.
    local.cached_header(taken)->state.store(kInUse, std::memory_order_relaxed);
  }
  local.publish_in_use(cls, 1, 1);
  block = taken;
  return {};
}

void BlockPool::free(std::uint64_t block) noexcept {
  BlockPoolLocal& local = *local_;
  std::uint32_t cls = 0;
  BlockHeader* header = local.locate(block, cls);
  if (header == nullptr) return report_misuse("free of an offset that is not a block", block);
  std::uint32_t expected = kInUse;
  // relaxed: only decides which of two racing frees wins; the block's bytes are published
  // by the cache lock's or the push's release.
  if (!header->state.compare_exchange_strong(expected, kCached, std::memory_order_relaxed)) {
    return report_misuse("double free (block is not in use)", block);
  }
  // relaxed: read by reclaim() only after this process has been reaped.
  header->owner.store(current_pid(), std::memory_order_relaxed);
  auto& cache = local.caches[cls];
  if (local.try_lock(cache)) {
    if (cache.count == cache.capacity) local.trim(cls, cache, cache.capacity / 2);
    cache.blocks[cache.count++] = block;
    --cache.unpublished;
    if (cache.unpublished <= -kStatsBatch) local.publish_cache_stats(cls, cache);
    local.unlock(cache);
    return;
  }
  local.push(cls, header);
  local.publish_in_use(cls, -1, 0);
}

void BlockPool::set_owner(std::uint64_t block, pid_t owner) noexcept {
  std::uint32_t cls = 0;
  BlockHeader* header = local_->locate(block, cls);
  if (header == nullptr) return report_misuse("set_owner of an offset that is not a block", block);
  // relaxed: the new owner is read by a reclaimer only after the owner's death is observed
  // (waitpid), which orders it after this store.
  if (header->state.load(std::memory_order_relaxed) != kInUse) {
    return report_misuse("set_owner of a block that is not in use", block);
  }
  header->owner.store(owner, std::memory_order_relaxed);
}

std::size_t BlockPool::block_bytes(std::uint64_t block) const noexcept {
  std::uint32_t cls = 0;
  return local_->locate(block, cls) != nullptr ? local_->classes[cls].block_bytes : 0;
}

std::size_t BlockPool::max_block_bytes() const noexcept {
  return local_->classes[local_->class_count - 1].block_bytes;
}

std::size_t BlockPool::reclaim(pid_t dead) noexcept {
  if (dead <= 0) return 0;  // kSharedOwner blocks belong to shared structures, not a process
  BlockPoolLocal& local = *local_;
  std::uint64_t returned[kMaxClasses] = {};
  std::int64_t were_in_use[kMaxClasses] = {};
  local.for_each_block([&](std::uint32_t cls, BlockHeader* header) {
    pid_t expected = dead;
    // acquire: on success we see the dead process's last state store. The CAS makes this
    // reclaimer the block's only releaser, even against a second concurrent reclaim(dead).
    if (!header->owner.compare_exchange_strong(expected, kReclaiming, std::memory_order_acquire,
                                               std::memory_order_relaxed)) {
      return;
    }
    // relaxed: ordered by the acquire above.
    if (header->state.load(std::memory_order_relaxed) == kInUse) ++were_in_use[cls];
    local.push(cls, header);  // owner == dead means it was on no list (see push)
    ++returned[cls];
  });
  std::size_t total = 0;
  for (std::uint32_t cls = 0; cls < local.class_count; ++cls) {
    if (returned[cls] == 0) continue;
    // relaxed: statistics.
    local.classes[cls].shared->reclaimed.fetch_add(returned[cls], std::memory_order_relaxed);
    local.publish_in_use(cls, -were_in_use[cls], 0);
    total += returned[cls];
  }
  return total;
}

void BlockPool::flush_local_cache() noexcept {
  BlockPoolLocal& local = *local_;
  for (std::uint32_t cls = 0; cls < local.class_count; ++cls) {
    auto& cache = local.caches[cls];
    // Holders never block while holding it (at worst an arena commit), so this ends.
    while (!local.try_lock(cache)) cpu_relax();
    local.trim(cls, cache, 0);
    local.publish_cache_stats(cls, cache);
    local.unlock(cache);
  }
}

std::vector<BlockPoolClassStats> BlockPool::stats() const {
  BlockPoolLocal& local = *local_;
  std::vector<BlockPoolClassStats> result(local.class_count);
  for (std::uint32_t cls = 0; cls < local.class_count; ++cls) {
    auto& cache = local.caches[cls];
    if (local.try_lock(cache)) {
      local.publish_cache_stats(cls, cache);
      local.unlock(cache);
    }
  }
  // in_use is counted, not estimated: exact whatever processes died, at the cost of a scan.
  local.for_each_block([&](std::uint32_t cls, BlockHeader* header) {
    // relaxed: a snapshot; blocks change state while we count.
    if (header->state.load(std::memory_order_relaxed) == kInUse) ++result[cls].in_use;
  });
  for (std::uint32_t cls = 0; cls < local.class_count; ++cls) {
    const PoolClass& shared = *local.classes[cls].shared;
    auto& s = result[cls];
    s.block_bytes = local.classes[cls].block_bytes;
    // relaxed: statistics.
    s.carved = shared.carved.load(std::memory_order_relaxed);
    s.reclaimed = shared.reclaimed.load(std::memory_order_relaxed);
    s.high_water =
        std::max<std::uint64_t>(shared.high_water.load(std::memory_order_relaxed), s.in_use);
  }
  return result;
}

bool BlockPool::set_pop_hook_for_testing(void (*hook)(void* context), void* context) noexcept {
#ifndef NDEBUG
  // relaxed: tests install the hook before starting the threads it affects.
  g_pop_hook_context.store(context, std::memory_order_relaxed);
  g_pop_hook.store(hook, std::memory_order_relaxed);
  return true;
#else
  (void)hook;
  (void)context;
  return false;
#endif
}

}  // namespace ringfork
