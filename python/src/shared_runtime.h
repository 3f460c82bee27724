// SharedRuntime: the one shared segment of a Python process tree, with its arena and block
// pool. Every ringfork.Queue lives in it; children forked after it exists inherit it.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "ringfork/arena.h"
#include "ringfork/block_pool.h"
#include "ringfork/segment.h"

namespace ringfork::python {

struct RuntimeOptions {
  // Address space reserved for the segment: only address space, committed as it is used.
  std::size_t capacity = std::size_t{64} << 30;
  // Cap on message payload memory (the block pool's max_bytes), all queues together.
  std::size_t max_bytes = std::size_t{4} << 30;
  // Messages an unbounded queue may hold before put raises MemoryError. Every queue's ring
  // has this many 128-byte descriptor slots, made as positions are first used.
  std::size_t max_backlog = std::size_t{1} << 21;
};

// Contract: every function is called with the GIL held, which serialises the lazy creation.
// The runtime is created in the first process that makes a Queue and is never destroyed
// (its memfd and mapping go with the process); a forked child uses the inherited object as
// is (the block pool notices the fork by itself). A process that did not inherit it (spawn,
// forkserver) has none: `existing()` returns nullptr there, and queues cannot be attached.
// Throws std::system_error / std::invalid_argument from segment set-up, std::logic_error
// from configure() after creation.
class SharedRuntime {
 public:
  static SharedRuntime& instance();
  static SharedRuntime* existing() noexcept;
  static void configure(const RuntimeOptions& options);
  static const RuntimeOptions& options() noexcept;

  Segment& segment() noexcept { return segment_; }
  SharedArena& arena() noexcept { return arena_; }
  BlockPool& pool() noexcept { return pool_; }
  // Random per segment: a pickled queue carries it, so unpickling in a process with a
  // different segment fails clearly instead of reading someone else's memory.
  std::uint64_t token() const noexcept { return token_; }
  pid_t creator() const noexcept { return creator_; }

 private:
  SharedRuntime(Segment segment, const RuntimeOptions& options);
  Segment segment_;
  SharedArena arena_;
  BlockPool pool_;
  std::uint64_t token_;
  pid_t creator_;
};

}  // namespace ringfork::python
