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
  std::vector<std::size_t> block_sizes = {64, 256, 1024, 4096, 16384, 65536, 262144, 1 << 20,
                                          4 << 20, 16 << 20, 64 << 20};
  // Cap on the bytes of blocks carved from the arena, all classes together; allocation
  // beyond it fails with ENOMEM. Blocks are carved lazily, a batch at a time.
  std::size_t max_bytes = std::size_t{1} << 30;
};

struct BlockPoolClassStats {
  std::size_t block_bytes;
  std::uint64_t carved;          // blocks ever carved from the arena for this class
  std::uint64_t in_use;          // handed out and not yet freed
  std::uint64_t high_water;      // peak of in_use
  std::uint64_t reclaimed;       // freed by reclaim() on behalf of dead owners
};

// Lives in a segment (its control block comes from the arena); every process that maps the
// segment may allocate and free. Thread- and process-safe and lock-free: each class has a
// free list with a tagged (generation-counted) head against ABA, fronted by a small
// per-process cache so the common path touches no shared cache line. Each block records its
// owner pid (kSharedOwner once handed to a shared structure such as a queue), so that the
// blocks of a dead process are reclaimed by reclaim(pid). A forked child never uses its
// parent's cache (the cache is tagged with the pid that filled it).
// allocate/free never throw; create/attach throw std::system_error / std::invalid_argument.
//
// Layout: each block is preceded by a 64-byte header (class, index, owner pid, state, free
// link), so blocks are 64-byte aligned and max_bytes counts headers too; block_bytes() and
// free() find a block's class from its header and cross-check it against the class's chunk
// table, so any offset is safe to pass. The per-process cache is guarded by a try-lock: a
// thread that finds it busy goes straight to the shared list, so nothing ever waits. Call
// flush_local_cache() before a process stops using the pool; blocks a process leaves cached
// stay its own, and reclaim(pid) returns them once it has died. A process killed inside the
// few instructions between a free-list CAS and the owner store that follows it may leak that
// one block; a block is never handed out twice. A process that takes a block over from a
// dead one must set_owner() it before reclaim(dead) runs, or reclaim returns it under its
// feet. The cache learns of fork() by a pthread_atfork handler: children made by a raw
// clone() syscall must attach() anew.
//
// Statistics: carved and reclaimed are shared counters bumped on the rare paths. in_use is
// counted by stats() itself, scanning every block header (exact even after crashes, but
// O(blocks carved): a diagnostic, not a hot call). high_water comes from per-process counts
// that each process adds to a shared estimate in batches (every 256 operations of a class,
// and whenever it touches the shared list or calls stats/flush_local_cache), so the hot path
// writes no shared line; it is exact within one process and may miss a short cross-process
// peak.
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
  // Returns a block. In debug builds (!NDEBUG) a double free or an offset that is not a block
  // of this pool is detected and reported (stderr + abort); release builds ignore a foreign
  // offset and never corrupt the free list with it.
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
  // Returns this process's cached free blocks to the shared lists (e.g. before exit).
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
  // Shared by copies of this handle within one process; never shared across processes (a
  // forked child's copy notices the pid change and leaves the inherited caches alone).
  std::shared_ptr<detail::BlockPoolLocal> local_;
};

}  // namespace ringfork
