// JoinableState: JoinableQueue's count of unfinished tasks, in shared memory so that
// task_done() in any process wakes join() in any other.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "ringfork/cache_line.h"
#include "ringfork/eventcount.h"

namespace ringfork::python {

// Lives in the arena (never freed, like the queue it belongs to). put() raises `unfinished`
// before the message is published, task_done() lowers it and, on reaching zero, wakes the
// join()ers sleeping on `all_done`. A producer killed between the raise and the publish
// leaves the count one too high (join() then waits for a task that will never come: the
// same as multiprocessing.JoinableQueue, whose lost items are never task_done()).
struct JoinableState {
  static constexpr std::uint64_t kMagic = 0x4e494f4a51594652;  // "RFYQJOIN"
  static constexpr std::uint32_t kVersion = 1;

  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t reserved;
  // Own line: written by every put and task_done, read by join.
  alignas(kCacheLineSize) std::atomic<std::uint64_t> unfinished;
  alignas(kCacheLineSize) EventCount all_done;
};
static_assert(std::is_standard_layout_v<JoinableState>, "read by other processes");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared atomics must be lock-free");

}  // namespace ringfork::python
