// BlockPool internals shared by block_pool.cpp only: the shared layout (control block, class
// records, block headers) and the process-local state. Not installed.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <system_error>
#include <type_traits>

#include "ringfork/arena.h"
#include "ringfork/cache_line.h"
#include "ringfork/current_pid.h"
#include "ringfork/segment.h"

namespace ringfork::detail {

constexpr std::size_t kMaxClasses = 16;
constexpr std::size_t kHeaderBytes = 64;
// A class carves about this many bytes at a time (at least one block).
constexpr std::size_t kChunkTargetBytes = 256 << 10;
// A class's cache holds up to kCacheTargetBytes of blocks, between 1 and kMaxCacheBlocks.
constexpr std::uint32_t kMaxCacheBlocks = 32;
constexpr std::size_t kCacheTargetBytes = 1 << 20;

// Tagged free-list head: low 40 bits hold index + 1 of the first free block (0 = empty), the
// high 24 bits a generation bumped by every push and pop. A CAS that loaded the head before
// another process popped and re-pushed the same block sees a different tag and fails; a
// false success needs a pause of exactly a multiple of 2^24 list operations.
constexpr int kIndexBits = 40;
__extension__ using Uint128 = unsigned __int128;  // GCC/Clang builtin; for a 64x64 high product
constexpr std::uint64_t kIndexMask = (std::uint64_t{1} << kIndexBits) - 1;

enum BlockState : std::uint32_t { kFree = 1, kCached = 2, kInUse = 3 };
constexpr pid_t kNoOwner = -1;     // on a shared free list
constexpr pid_t kReclaiming = -2;  // claimed by a reclaimer

// Sits in the 64 bytes before every block. class_id and index never change once the chunk is
// published; they are only hints until cross-checked against the class's chunk table.
struct alignas(kCacheLineSize) BlockHeader {
  std::atomic<std::uint64_t> next;      // free link: index + 1 of the next free block, 0 = end
  std::atomic<std::int32_t> owner;      // pid, BlockPool::kSharedOwner, kNoOwner, kReclaiming
  std::atomic<std::uint32_t> state;     // BlockState
  std::atomic<std::uint32_t> class_id;  // immutable once carved
  std::uint32_t reserved;
  std::atomic<std::uint64_t> index;  // immutable once carved
};
static_assert(sizeof(BlockHeader) == kHeaderBytes, "blocks stay 64-byte aligned");
static_assert(std::is_standard_layout_v<BlockHeader>, "read by other processes");
static_assert(std::atomic<std::int32_t>::is_always_lock_free, "shared atomics must be lock-free");

struct PoolClass {
  // Every refill and flush CASes the head: its own line.
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> free_head;
  // Carving (rare), then geometry that never changes after create().
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> chunks;  // chunk slots taken
  std::atomic<std::uint64_t> carved;                              // blocks carved
  std::uint64_t block_bytes;
  std::uint64_t stride;  // kHeaderBytes + block_bytes
  std::uint64_t blocks_per_chunk;
  std::uint64_t max_chunks;
  std::uint64_t chunk_table;  // offset of max_chunks atomic<uint64_t>: chunk offsets, 0 = none
  // Statistics, updated by each thread when it refills or trims its cache: off the hot lines.
  alignas(kFalseSharingRange) std::atomic<std::int64_t> in_use_estimate;
  std::atomic<std::uint64_t> high_water;
  std::atomic<std::uint64_t> reclaimed;
};

struct PoolControl {
  static constexpr std::uint64_t kMagic = 0x4c4f4f504b4c4246;  // "FBLKPOOL"
  static constexpr std::uint32_t kVersion = 1;

  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t header_bytes;
  std::uint32_t class_count;
  std::uint32_t reserved;
  std::uint64_t max_bytes;
  // Bytes of chunks carved, all classes: CASed against max_bytes.
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> carved_bytes;
  PoolClass classes[kMaxClasses];
};
static_assert(std::is_standard_layout_v<PoolControl>, "read by other processes");

#ifndef NDEBUG
// Test hook (BlockPool::set_pop_hook_for_testing), called between a pop's load and CAS.
extern std::atomic<void (*)(void*)> g_pop_hook;
extern std::atomic<void*> g_pop_hook_context;
#endif

// Process-local: a validated copy of the geometry. The caches are per thread (see
// block_pool_cache.h). Allocated from mimalloc; one per attach() in each process.
struct BlockPoolLocal {
  struct ClassGeometry {
    std::size_t block_bytes;
    std::size_t stride;
    std::size_t blocks_per_chunk;
    std::size_t max_chunks;
    std::uint64_t index_limit;       // blocks_per_chunk * max_chunks, < 2^kIndexBits
    std::uint64_t chunk_reciprocal;  // ceil(2^64 / blocks_per_chunk); 0 when it is 1
    std::uint32_t cache_capacity;    // blocks a thread's cache of this class holds at most
    PoolClass* shared;
    std::atomic<std::uint64_t>* chunk_table;
  };

  // Never reused within a process, so a thread's cached lookup (pool id -> its cache) can
  // never match a newer pool that happens to sit at a dead one's address.
  std::uint64_t id = 0;
  SharedArena* arena;
  Segment* segment;
  std::byte* base;                             // segment->base(), one load nearer the hot path
  const std::error_category* system_category;  // for allocate()'s success value
  PoolControl* control;
  std::uint32_t class_count = 0;
  ClassGeometry classes[kMaxClasses] = {};

  // ---- block addressing, all bounds-checked through the segment ----

  BlockHeader* header_at(std::uint32_t cls, std::uint64_t index) const noexcept {
    const std::uint64_t offset = header_offset(cls, index);
    if (offset == 0) return nullptr;
    return static_cast<BlockHeader*>(
        segment->try_bytes(offset, classes[cls].stride, kCacheLineSize));
  }

  // Segment offset of the header of block `index` of `cls`, from the chunk table; 0 when the
  // index is out of range or its chunk is not published. No division: free() runs this.
  std::uint64_t header_offset(std::uint32_t cls, std::uint64_t index) const noexcept {
    const ClassGeometry& g = classes[cls];
    if (index >= g.index_limit) return 0;
    // Exact for index < 2^40 and blocks_per_chunk <= 2^18 (checked by attach): the
    // reciprocal's rounding error stays below 1 / blocks_per_chunk.
    const std::uint64_t chunk =
        g.chunk_reciprocal == 0
            ? index
            : static_cast<std::uint64_t>((static_cast<Uint128>(index) * g.chunk_reciprocal) >> 64);
    // acquire: pairs with the carver's release of the chunk offset: its headers are written.
    const std::uint64_t base_offset = g.chunk_table[chunk].load(std::memory_order_acquire);
    if (base_offset == 0) return 0;
    return base_offset + (index - chunk * g.blocks_per_chunk) * g.stride;
  }

  // The header of `block` if it is a block of this pool (whatever its state), else nullptr.
  // A few loads and a multiply: free() runs it on every call. Without `ask_kernel`, a header
  // beyond what this process already knows is committed counts as not found; with it,
  // try_bytes() re-checks with fstat. Either way, never a SIGBUS on a bad offset.
  BlockHeader* locate(std::uint64_t block, std::uint32_t& cls, bool ask_kernel) const noexcept {
    if (block < kHeaderBytes || block % kCacheLineSize != 0) return nullptr;
    if (block > segment->committed() && (!ask_kernel || !readable_header(block))) return nullptr;
    auto* header = reinterpret_cast<BlockHeader*>(base + block - kHeaderBytes);
    // relaxed: hints only, trusted once the chunk table puts this very header at that index.
    cls = header->class_id.load(std::memory_order_relaxed);
    const std::uint64_t index = header->index.load(std::memory_order_relaxed);
    if (cls >= class_count || header_offset(cls, index) != block - kHeaderBytes) return nullptr;
    return header;
  }

  // Whether the header before `block` lies in committed memory, asking the kernel (fstat).
  [[gnu::noinline]] bool readable_header(std::uint64_t block) const noexcept {
    return segment->try_bytes(block - kHeaderBytes, kHeaderBytes, kCacheLineSize) != nullptr;
  }

  std::uint64_t block_of(const BlockHeader* header) const noexcept {
    return segment->offset_of(header).value + kHeaderBytes;
  }
  // For offsets this process put in its own cache: already validated.
  BlockHeader* cached_header(std::uint64_t block) const noexcept {
    return reinterpret_cast<BlockHeader*>(base + block - kHeaderBytes);
  }

  // ---- the shared free list (block_pool.cpp) ----

  // Pops a block and records (owner, state) in it; 0 when the list is empty or corrupt.
  std::uint64_t pop(std::uint32_t cls, pid_t owner, BlockState state) noexcept;
  // Links a block this caller holds; its owner becomes kNoOwner first.
  void push(std::uint32_t cls, BlockHeader* header) noexcept;
  // Carves one chunk for `cls`: up to `keep` blocks go to `out` (owned, kCached), the rest
  // onto the shared list; `kept` says how many went to `out`.
  std::error_code carve(std::uint32_t cls, std::uint32_t keep, std::uint64_t* out,
                        std::uint32_t& kept) noexcept;

  // ---- statistics ----

  void publish_in_use(std::uint32_t cls, std::int64_t delta, std::int64_t peak) noexcept;

  int class_for(std::size_t bytes) const noexcept {
    for (std::uint32_t cls = 0; cls < class_count; ++cls) {
      if (bytes <= classes[cls].block_bytes) return static_cast<int>(cls);
    }
    return -1;
  }

  // Calls visit(cls, header) for every carved block; chunks still being carved are skipped.
  template <class Visit>
  void for_each_block(Visit&& visit) const {
    for (std::uint32_t cls = 0; cls < class_count; ++cls) {
      const ClassGeometry& g = classes[cls];
      // relaxed: a slot counted here but not yet published reads as 0 in the table.
      const std::uint64_t chunks =
          std::min<std::uint64_t>(g.shared->chunks.load(std::memory_order_relaxed), g.max_chunks);
      for (std::uint64_t chunk = 0; chunk < chunks; ++chunk) {
        for (std::uint64_t i = 0; i < g.blocks_per_chunk; ++i) {
          BlockHeader* header = header_at(cls, chunk * g.blocks_per_chunk + i);
          if (header == nullptr) break;  // unpublished chunk
          visit(cls, header);
        }
      }
    }
  }
};

}  // namespace ringfork::detail
