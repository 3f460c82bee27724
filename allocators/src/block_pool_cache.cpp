// BlockPool's per-thread caches: lookup, refill and trim against the shared lists, flush at
// thread exit, and forgetting inherited caches after fork. See block_pool_cache.h.
#include "block_pool_cache.h"

#include <mimalloc.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <vector>

#include "ringfork/local_alloc.h"

namespace ringfork::detail {

constinit thread_local ThreadCacheHint t_cache_hint __attribute__((tls_model("initial-exec"))){};

namespace {

// Set once this thread's directory is destroyed: a pool used by a later thread_local
// destructor of the same thread works on the shared lists directly.
constinit thread_local bool t_directory_gone = false;

// Every ThreadCache this thread made, so they are flushed and freed when it exits.
struct ThreadCacheDirectory {
  std::vector<ThreadCache*, LocalAllocator<ThreadCache*>> caches;

  ~ThreadCacheDirectory() {
    t_directory_gone = true;
    t_cache_hint = {};
    for (ThreadCache* cache : caches) {
      // A pool no handle in this process refers to any more: its cached blocks stay owned by
      // this process (reclaim returns them after it dies), as with any handle dropped
      // without flush_local_cache().
      if (std::shared_ptr<BlockPoolLocal> local = cache->pool.lock()) {
        for (std::uint32_t cls = 0; cls < local->class_count; ++cls) {
          trim(*local, cls, cache->classes[cls], 0);
        }
      }
      destroy(cache);
    }
  }

  static void destroy(ThreadCache* cache) noexcept {
    cache->~ThreadCache();
    mi_free(cache);
  }

  // Frees the caches of pools that are gone (their hint can never match again).
  void drop_expired() noexcept {
    std::erase_if(caches, [](ThreadCache* cache) {
      if (!cache->pool.expired()) return false;
      destroy(cache);
      return true;
    });
  }
};

thread_local ThreadCacheDirectory t_directory;

}  // namespace

std::uint64_t next_pool_id() noexcept {
  static std::atomic<std::uint64_t> last{0};
  // relaxed: only hands out distinct numbers.
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

ThreadCache* find_thread_cache(const std::shared_ptr<BlockPoolLocal>& local, bool create) {
  if (t_directory_gone) return nullptr;
  ThreadCacheDirectory& directory = t_directory;
  for (ThreadCache* cache : directory.caches) {
    if (cache->pool_id == local->id) {
      t_cache_hint = {local->id, cache};
      return cache;
    }
  }
  if (!create) return nullptr;
  directory.drop_expired();
  void* memory = mi_malloc_aligned(sizeof(ThreadCache), alignof(ThreadCache));
  if (memory == nullptr) throw std::bad_alloc();
  auto* cache = new (memory) ThreadCache{};
  cache->pool_id = local->id;
  cache->pool = local;
  for (std::uint32_t cls = 0; cls < local->class_count; ++cls) {
    cache->classes[cls].capacity = local->classes[cls].cache_capacity;
  }
  try {
    directory.caches.push_back(cache);
  } catch (...) {
    ThreadCacheDirectory::destroy(cache);
    throw;
  }
  t_cache_hint = {local->id, cache};
  return cache;
}

void forget_thread_caches_after_fork() noexcept {
  if (t_directory_gone) return;
  // This is the child's only thread. Its caches hold the parent's blocks (owned by the
  // parent's pid): using them would hand out blocks the parent also hands out.
  for (ThreadCache* cache : t_directory.caches) {
    for (ClassCache& cls : cache->classes) cls = ClassCache{.capacity = cls.capacity};
  }
}

void publish_cache_stats(BlockPoolLocal& local, std::uint32_t cls, ClassCache& cache) noexcept {
  const std::int64_t share = cache.acquired - cache.count;
  const std::int64_t peak = cache.acquired - cache.min_count;
  if (share != cache.published || peak != cache.published) {
    local.publish_in_use(cls, share - cache.published, peak - cache.published);
  }
  cache.published = share;
  cache.min_count = cache.count;
}

std::error_code refill(BlockPoolLocal& local, std::uint32_t cls, ClassCache& cache) noexcept {
  publish_cache_stats(local, cls, cache);  // we touch shared lines anyway
  const std::uint32_t want = std::max<std::uint32_t>(1, cache.capacity / 2);
  const pid_t me = current_pid();
  const std::uint32_t before = cache.count;
  std::error_code error;
  while (cache.count < want) {
    const std::uint64_t block = local.pop(cls, me, kCached);
    if (block == 0) break;
    cache.blocks[cache.count++] = block;
  }
  if (cache.count == 0) {
    std::uint32_t kept = 0;
    error = local.carve(cls, want, cache.blocks, kept);
    cache.count = kept;
  }
  // Blocks moved from the shared lists into the cache: this thread's share is unchanged.
  cache.acquired += cache.count - before;
  cache.min_count = cache.count;
  return error;
}

void trim(BlockPoolLocal& local, std::uint32_t cls, ClassCache& cache,
          std::uint32_t keep) noexcept {
  publish_cache_stats(local, cls, cache);
  if (cache.count <= keep) return;
  const std::uint32_t drop = cache.count - keep;
  for (std::uint32_t i = 0; i < drop; ++i) local.push(cls, local.cached_header(cache.blocks[i]));
  std::memmove(cache.blocks, cache.blocks + drop, keep * sizeof(cache.blocks[0]));
  cache.count = keep;
  cache.acquired -= drop;  // share unchanged, as in refill()
  cache.min_count = keep;
}

}  // namespace ringfork::detail
