// BlockPool: per-class Treiber stacks of block headers in the segment (tagged heads against
// ABA), carved lazily from the arena, fronted by per-thread caches (block_pool_cache.cpp).
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

#include "block_pool_cache.h"
#include "block_pool_local.h"
#include "ringfork/cache_line.h"
#include "ringfork/local_alloc.h"

namespace ringfork {
namespace detail {

#ifndef NDEBUG
std::atomic<void (*)(void*)> g_pop_hook{nullptr};
std::atomic<void*> g_pop_hook_context{nullptr};
#endif

namespace {

void forget_caches_after_fork() noexcept { forget_thread_caches_after_fork(); }

}  // namespace

}  // namespace detail

using namespace detail;

namespace {

void start_fork_tracking() {
  static const bool started = [] {
    (void)current_pid();  // starts its own tracking across fork()
    if (int error = ::pthread_atfork(nullptr, nullptr, forget_caches_after_fork)) {
      throw std::system_error(error, std::generic_category(), "pthread_atfork for BlockPool");
    }
    return true;
  }();
  (void)started;
}

// Debug builds stop at the first misuse, where it happened; release builds ignore it.
[[gnu::cold, gnu::noinline]] void report_misuse([[maybe_unused]] const char* what,
                                                [[maybe_unused]] std::uint64_t block) {
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
  start_fork_tracking();
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
  local->id = next_pool_id();
  local->arena = &arena;
  local->segment = &segment;
  local->base = segment.base();
  local->system_category = &std::system_category();
  local->control = control;
  local->class_count = control->class_count;
  for (std::uint32_t i = 0; i < control->class_count; ++i) {
    PoolClass& shared = control->classes[i];
    auto& g = local->classes[i];
    g = {.block_bytes = shared.block_bytes,
         .stride = shared.stride,
         .blocks_per_chunk = shared.blocks_per_chunk,
         .max_chunks = shared.max_chunks,
         .shared = &shared};
    // The index bound also keeps header_offset()'s reciprocal division exact (see there).
    const bool sane = g.block_bytes >= 64 && g.block_bytes % 64 == 0 &&
                      g.block_bytes <= (std::size_t{1} << 40) &&
                      (i == 0 || g.block_bytes > local->classes[i - 1].block_bytes) &&
                      g.stride == g.block_bytes + kHeaderBytes && g.blocks_per_chunk >= 1 &&
                      g.blocks_per_chunk <= kChunkTargetBytes &&
                      g.max_chunks <= control->max_bytes / (g.stride * g.blocks_per_chunk) &&
                      g.max_chunks <= segment.capacity() / sizeof(std::uint64_t) &&
                      g.max_chunks < kIndexMask / g.blocks_per_chunk;
    if (!sane) bad_layout(offset, "class " + std::to_string(i) + " has an impossible geometry");
    g.index_limit = g.blocks_per_chunk * g.max_chunks;
    g.chunk_reciprocal = g.blocks_per_chunk == 1 ? 0 : ~std::uint64_t{0} / g.blocks_per_chunk + 1;
    g.cache_capacity = static_cast<std::uint32_t>(cache_capacity(g.block_bytes));
    g.chunk_table = segment.try_at(Offset<std::atomic<std::uint64_t>>{shared.chunk_table},
                                   std::max<std::size_t>(1, g.max_chunks));
    if (g.chunk_table == nullptr) bad_layout(offset, "chunk table outside the segment");
  }
  return BlockPool(arena, offset, std::move(local));
}

std::uint64_t BlockPool::offset() const noexcept { return control_; }

namespace {

// The cache's newest block, now in use. The caller checked that the cache is not empty.
inline std::uint64_t take_cached(BlockPoolLocal& local, ClassCache& cache) noexcept {
  const std::uint64_t block = cache.blocks[--cache.count];
  cache.min_count = std::min(cache.min_count, cache.count);
  // relaxed: the block is this process's (its owner was set when it entered the cache);
  // another process reads the state only after a hand-over or after reaping us (reclaim).
  local.cached_header(block)->state.store(kInUse, std::memory_order_relaxed);
  return block;
}

// allocate() when the hint does not match this pool or the class's cache is empty.
[[gnu::noinline]] std::error_code allocate_slow(const std::shared_ptr<BlockPoolLocal>& pool,
                                                std::uint32_t cls, std::uint64_t& block) noexcept {
  BlockPoolLocal& local = *pool;
  if (ThreadCache* thread = thread_cache(pool)) {
    ClassCache& cache = thread->classes[cls];
    if (cache.count == 0) {
      if (std::error_code error = refill(local, cls, cache); cache.count == 0) return error;
    }
    block = take_cached(local, cache);
    return {};
  }
  // No cache (out of memory for one, or this thread is exiting): the shared list directly.
  std::uint64_t taken = local.pop(cls, current_pid(), kInUse);
  if (taken == 0) {
    std::uint32_t kept = 0;
    if (std::error_code error = local.carve(cls, 1, &taken, kept)) return error;
    // relaxed: as in take_cached(), the block is ours.
    local.cached_header(taken)->state.store(kInUse, std::memory_order_relaxed);
  }
  local.publish_in_use(cls, 1, 1);
  block = taken;
  return {};
}

// free() when the hint does not match this pool or the class's cache is full.
[[gnu::noinline]] void free_slow(const std::shared_ptr<BlockPoolLocal>& pool, std::uint32_t cls,
                                 BlockHeader* header, std::uint64_t block) noexcept {
  BlockPoolLocal& local = *pool;
  if (ThreadCache* thread = thread_cache(pool)) {
    ClassCache& cache = thread->classes[cls];
    if (cache.count == cache.capacity) trim(local, cls, cache, cache.capacity / 2);
    cache.blocks[cache.count++] = block;
    return;
  }
  local.push(cls, header);
  local.publish_in_use(cls, -1, 0);
}

// free() of a block whose header is not in memory this process knows is committed, or that
// is not a block in use: the full checks, and the misuse report.
[[gnu::noinline]] void free_checked(const std::shared_ptr<BlockPoolLocal>& pool,
                                    std::uint64_t block) noexcept {
  std::uint32_t cls = 0;
  BlockHeader* header = pool->locate(block, cls, true);
  if (header == nullptr) return report_misuse("free of an offset that is not a block", block);
  // relaxed: as in free().
  if (header->state.load(std::memory_order_relaxed) != kInUse) {
    return report_misuse("double free (block is not in use)", block);
  }
  header->owner.store(current_pid(), std::memory_order_relaxed);  // relaxed: as in free()
  header->state.store(kCached, std::memory_order_relaxed);
  free_slow(pool, cls, header, block);
}

}  // namespace

// The hot paths: the thread's hint, its cache, the block's header; no atomic
// read-modify-write, no shared line written (the header is the block's own). Every call
// out of them is a tail call, so they need no stack frame.
std::error_code BlockPool::allocate(std::size_t bytes, std::uint64_t& block) noexcept {
  BlockPoolLocal& local = *local_;
  const int found = local.class_for(bytes);
  if (found < 0) [[unlikely]]
    return std::make_error_code(std::errc::invalid_argument);
  const auto cls = static_cast<std::uint32_t>(found);
  const ThreadCacheHint hint = t_cache_hint;
  if (hint.pool_id == local.id) [[likely]] {
    ClassCache& cache = hint.cache->classes[cls];
    if (cache.count != 0) [[likely]] {
      block = take_cached(local, cache);
      // std::error_code{} would call std::system_category() out of line every time.
      return std::error_code(0, *local.system_category);
    }
  }
  return allocate_slow(local_, cls, block);
}

void BlockPool::free(std::uint64_t block) noexcept {
  BlockPoolLocal& local = *local_;
  std::uint32_t cls = 0;
  BlockHeader* header = local.locate(block, cls, false);
  // A plain check, no read-modify-write: it catches every double free except two threads
  // freeing the same block at the same instant, a race the callers' own synchronisation
  // must rule out. relaxed: only this block's holder changes its state; the block's bytes
  // are published by the release of whatever later hands it on (a push, a queue).
  if (header == nullptr || header->state.load(std::memory_order_relaxed) != kInUse) [[unlikely]] {
    return free_checked(local_, block);
  }
  // Owner before state: killed in between, the block is ours and in use, so reclaim(us)
  // returns it. relaxed: read by reclaim() only after this process has been reaped.
  header->owner.store(current_pid(), std::memory_order_relaxed);
  header->state.store(kCached, std::memory_order_relaxed);
  const ThreadCacheHint hint = t_cache_hint;
  if (hint.pool_id == local.id) [[likely]] {
    ClassCache& cache = hint.cache->classes[cls];
    if (cache.count != cache.capacity) [[likely]] {
      cache.blocks[cache.count++] = block;
      return;
    }
  }
  return free_slow(local_, cls, header, block);
}

void BlockPool::set_owner(std::uint64_t block, pid_t owner) noexcept {
  std::uint32_t cls = 0;
  BlockHeader* header = local_->locate(block, cls, true);
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
  return local_->locate(block, cls, true) != nullptr ? local_->classes[cls].block_bytes : 0;
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
  ThreadCache* thread = nullptr;
  try {
    thread = find_thread_cache(local_, false);
  } catch (...) {
  }
  if (thread == nullptr) return;
  for (std::uint32_t cls = 0; cls < local_->class_count; ++cls) {
    trim(*local_, cls, thread->classes[cls], 0);
  }
}

std::vector<BlockPoolClassStats> BlockPool::stats() const {
  BlockPoolLocal& local = *local_;
  std::vector<BlockPoolClassStats> result(local.class_count);
  if (ThreadCache* thread = find_thread_cache(local_, false)) {
    for (std::uint32_t cls = 0; cls < local.class_count; ++cls) {
      publish_cache_stats(local, cls, thread->classes[cls]);
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
