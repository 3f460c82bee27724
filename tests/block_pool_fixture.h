// Shared by the BlockPool tests: a pool in a fresh segment, cheap randomness, and stamps that
// catch any other writer of a block.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ringfork/block_pool.h"

namespace ringfork::testing {

// A pool in a fresh segment; members in construction order (the arena points at the segment,
// the pool at the arena), so the whole thing is built in place and never moved.
struct PoolFixture {
  explicit PoolFixture(const BlockPoolOptions& options, std::size_t capacity = 256 << 20)
      : segment(Segment::create({.capacity = capacity})),
        arena(SharedArena::create(segment)),
        pool(BlockPool::create(arena, options)) {}
  Segment segment;
  SharedArena arena;
  BlockPool pool;

  std::uint64_t* words(std::uint64_t block) const {
    return reinterpret_cast<std::uint64_t*>(segment.base() + block);
  }
  std::uint64_t total_in_use() const {
    std::uint64_t total = 0;
    for (const auto& s : pool.stats()) total += s.in_use;
    return total;
  }
};

// Cheap per-process randomness for the stress loops.
struct XorShift {
  std::uint64_t state;
  std::uint64_t next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
};

// Stamps a block with its holder and offset (first and last words), to catch any other writer.
inline void stamp(const PoolFixture& f, std::uint64_t block, std::size_t bytes,
                  std::uint64_t holder) {
  std::uint64_t* words = f.words(block);
  words[0] = holder;
  words[1] = block;
  words[bytes / 8 - 1] = ~block;
}
inline bool stamp_intact(const PoolFixture& f, std::uint64_t block, std::size_t bytes,
                         std::uint64_t holder) {
  const std::uint64_t* words = f.words(block);
  return words[0] == holder && words[1] == block && words[bytes / 8 - 1] == ~block;
}

}  // namespace ringfork::testing
