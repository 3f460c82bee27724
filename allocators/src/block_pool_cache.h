// BlockPool's per-thread caches: the free blocks a thread took from a pool's shared lists
// (or freed), which its allocate/free trade without any atomic read-modify-write. Internal to
// block_pool.cpp and block_pool_cache.cpp. Not installed.
//
// Threading contract: a ThreadCache is read and written by its own thread only: no lock, no
// RMW. Its blocks stay recorded in their headers as owned by this process (state kCached), so
// reclaim(pid) after the process dies returns them like any block it held; no other process
// or thread ever looks inside the cache itself. A cache is flushed to the shared lists by
// flush_local_cache() on its thread, or when its thread exits while the pool is still
// attached in the process. A forked child forgets the caches it inherited (fork handler):
// their blocks are the parent's.
#pragma once

#include <cstdint>
#include <memory>

#include "block_pool_local.h"
#include "ringfork/cache_line.h"

namespace ringfork::detail {

// One class's free blocks in one thread. Statistics cost the hot path only `min_count`:
// this thread's share of the blocks in use is acquired - count (blocks it took from the shared
// lists, less those in its cache), which changes by refill and trim only when they publish.
struct ClassCache {
  std::uint32_t count = 0;
  std::uint32_t capacity = 0;
  std::uint32_t min_count = 0;  // lowest count since the last publish: this thread's peak
  std::int64_t acquired = 0;    // blocks taken from the shared lists, less those pushed back
  std::int64_t published = 0;   // acquired - count as last added to the shared estimate
  std::uint64_t blocks[kMaxCacheBlocks] = {};
};
// One thread's caches for one attached pool (one BlockPoolLocal). Thread-private memory from
// mimalloc's per-thread heap; aligned so that it shares no line with another thread's cache.
struct alignas(kCacheLineSize) ThreadCache {
  std::uint64_t pool_id = 0;
  // Whether the pool is still attached when the thread exits (then the cache is flushed).
  std::weak_ptr<BlockPoolLocal> pool;
  ClassCache classes[kMaxClasses];
};

// The last pool this thread used and its cache: the hot path's whole lookup. constinit, so
// the compiler reads it directly, with no thread_local initialisation guard; initial-exec,
// so it is one %fs-relative load even from the shared library (16 bytes of the static TLS
// surplus that glibc keeps for libraries loaded later, e.g. by Python).
struct ThreadCacheHint {
  std::uint64_t pool_id = 0;  // BlockPoolLocal::id; 0 matches none
  ThreadCache* cache = nullptr;
};
extern constinit thread_local ThreadCacheHint t_cache_hint
    __attribute__((tls_model("initial-exec")));

// Finds or makes this thread's cache for `local` and makes it the hint. Throws std::bad_alloc
// only when mimalloc has no memory for a new cache.
ThreadCache* find_thread_cache(const std::shared_ptr<BlockPoolLocal>& local, bool create);

inline ThreadCache* thread_cache(const std::shared_ptr<BlockPoolLocal>& local) noexcept {
  if (t_cache_hint.pool_id == local->id) [[likely]]
    return t_cache_hint.cache;
  try {
    return find_thread_cache(local, true);
  } catch (...) {
    return nullptr;  // no memory for a cache: the caller works on the shared list directly
  }
}

// Takes blocks from the shared list (or carves) until the cache holds half its capacity.
std::error_code refill(BlockPoolLocal& local, std::uint32_t cls, ClassCache& cache) noexcept;
// Pushes the oldest blocks until `keep` remain, and publishes the statistics.
void trim(BlockPoolLocal& local, std::uint32_t cls, ClassCache& cache, std::uint32_t keep) noexcept;
// Adds this cache's in-use change and peak since the last publish to the shared statistics.
void publish_cache_stats(BlockPoolLocal& local, std::uint32_t cls, ClassCache& cache) noexcept;

// Called by the fork handler in the child's only thread: forget every inherited cache.
void forget_thread_caches_after_fork() noexcept;

// New process-local pool id (never 0).
std::uint64_t next_pool_id() noexcept;

}  // namespace ringfork::detail
