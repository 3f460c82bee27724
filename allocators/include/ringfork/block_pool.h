// BlockPool: fixed-size blocks handed out across processes, with crash reclaim.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>
#include <utility>
#include <vector>

#include "ringfork/arena.h"

namespace ringfork {

namespace detail {
struct BlockPoolLocal;  // process-local state: validated layout copy and per-class caches
}

struct BlockPoolOptions {
  // Block sizes of the classes, ascending powers of two from 64 B to 64 MiB.
  std::vector<std::size_t> block_sizes = {64,     256,     1024,    4096,     16384,   65536,
                                          262144, 1 << 20, 4 << 20, 16 << 20, 64 << 20};
  // Cap on the bytes of blocks carved from the arena, all classes together; allocation
  // beyond it fails with ENOMEM. Blocks are carved lazily, a batch at a time.
  std::size_t max_bytes = std::size_t{1} << 30;
};

struct BlockPoolClassStats {
  std::size_t block_bytes;
  std::uint64_t carved;      // blocks ever carved from the arena for this class
  std::uint64_t in_use;      // handed out and not yet freed
  std::uint64_t high_water;  // peak of in_use
  std::uint64_t reclaimed;   // freed by reclaim() on behalf of dead owners
};

// Lives in a segment (its control block comes from the arena); every process that maps the
// segment may allocate and free. Thread- and process-safe and lock-free: each class has a
// free list with a tagged (generation-counted) head against ABA, fronted by a small cache
// per thread (and per attached handle), so the common allocate/free pair touches no shared
// cache line and does no atomic read-modify-write. Each block records its owner pid
// (kSharedOwner once handed to a shared structure such as a queue), so that the blocks of a
// dead process are reclaimed by reclaim(pid). allocate/free never throw; create/attach throw
// std::system_error / std::invalid_argument.
//
// Layout: each block is preceded by a 64-byte header (class, index, owner pid, state, free
// link), so blocks are 64-byte aligned and max_bytes counts headers too; block_bytes() and
// free() find a block's class from its header and cross-check it against the class's chunk
// table, so any offset is safe to pass.
//
// Caches: a thread's cached blocks are recorded in their headers as owned by its process, so
// reclaim(pid) returns them with the rest once the process has died, whichever of its
// threads cached them. A thread's cache goes back to the shared lists when the thread exits
// (if a handle of the pool is still alive in the process: keep the segment mapped while
// handles live) or when it calls flush_local_cache(); a process that exits leaves its caches
// to reclaim(pid). A forked child forgets the caches its forking thread inherited (a
// pthread_atfork handler; children made by a raw clone() syscall must attach() anew). A block
// may be freed by any thread or process: it joins the freeing thread's cache. A process killed
// inside the few instructions between a free-list CAS and the owner store that follows it may
// leak that one block; a block is never handed out twice. A process that takes a block over
// from a dead one must set_owner() it before reclaim(dead) runs, or reclaim returns it under
// its feet.
//
// Misuse: free() checks with a plain load (no read-modify-write, so in every build) that the
// block is in use; a double free is caught unless two threads free the same block at the same
// instant, a race only the callers' own synchronisation can rule out.
//
// Statistics: carved and reclaimed are shared counters bumped on the rare paths. in_use is
// counted by stats() itself, scanning every block header (exact even after crashes, but
// O(blocks carved): a diagnostic, not a hot call). high_water comes from each thread's share
// (blocks it took from the shared lists less those in its cache) and its peak, added to a
// shared estimate whenever the thread refills, trims, flushes or calls stats(), so the hot
// path writes no shared line; it is exact within one thread and may miss a short peak of
// other threads (by at most their cache capacity, 32 blocks a class).
//
// What may live in a block (or anywhere in a segment): only trivially copyable,
// standard-layout objects with fixed-width fields (std::uint32_t, not long), and references
// to other shared objects as segment offsets, never pointers: the segment maps at a different
// address in each process, and a pointer into one process's heap means nothing in another.
// So no std::string, std::vector, std::shared_ptr, std::function, virtual functions or
// anything holding a heap pointer or a process-local handle (fds, mutexes not made
// PTHREAD_PROCESS_SHARED). std::atomic<T> is fine when it is always lock-free. Store lengths
// beside variable-length bytes, and treat every length and offset read back as untrusted.
class BlockPool {
 public:
  static constexpr pid_t kSharedOwner = 0;

  static BlockPool create(SharedArena& arena, const BlockPoolOptions& options = {});
  // Attaches the pool whose control block is at `offset` (from offset()) in arena's segment.
  static BlockPool attach(SharedArena& arena, std::uint64_t offset);

  // Offset of the control block: a handle any process mapping the segment can attach with.
  std::uint64_t offset() const noexcept;

  // Hands out a block of at least `bytes` (the smallest class that fits), owned by the
  // calling process: its segment offset in `block`. Errors: EINVAL for bytes larger than the
  // largest class, ENOMEM when max_bytes is reached, and the arena's commit errors.
  std::error_code allocate(std::size_t bytes, std::uint64_t& block) noexcept;
  // Returns a block (from any thread or process). In debug builds (!NDEBUG) a double free or
  // an offset that is not a block of this pool is detected and reported (stderr + abort);
  // release builds ignore both and never corrupt the free list with them (see "Misuse").
  void free(std::uint64_t block) noexcept;
  // Records a new owner: kSharedOwner when a block is published into a shared structure (so
  // reclaim of the producer leaves it alone), or a consumer's pid when it takes the block.
  void set_owner(std::uint64_t block, pid_t owner) noexcept;
  // Size of the class `block` belongs to; 0 if `block` is not a block of this pool.
  std::size_t block_bytes(std::uint64_t block) const noexcept;
  // Bytes of the largest class.
  std::size_t max_block_bytes() const noexcept;

  // Frees every block owned by `dead` (which must not be running). Returns how many.
  std::size_t reclaim(pid_t dead) noexcept;
  // Returns the calling thread's cached free blocks to the shared lists (e.g. before exit;
  // other threads' caches go back when those threads exit).
  void flush_local_cache() noexcept;

  std::vector<BlockPoolClassStats> stats() const;

  SharedArena& arena() const noexcept { return *arena_; }

  // Test-only: `hook(context)` runs inside every free-list pop between loading the head and
  // the CAS that swings it, so a test can interleave other pops and pushes (ABA). Compiled
  // in only when NDEBUG is undefined; returns false (and does nothing) in release builds.
  static bool set_pop_hook_for_testing(void (*hook)(void* context), void* context) noexcept;

 private:
  BlockPool(SharedArena& arena, std::uint64_t control,
            std::shared_ptr<detail::BlockPoolLocal> local)
      : arena_(&arena), control_(control), local_(std::move(local)) {}
  SharedArena* arena_;
  std::uint64_t control_;
  // Shared by copies of this handle within one process; never shared across processes. Its
  // id keys the calling thread's cache (block_pool_cache.h).
  std::shared_ptr<detail::BlockPoolLocal> local_;
};

}  // namespace ringfork
