// Messages a thread took off a ByteQueue but could not hand to its caller: get(std::vector)
// had the message's blocks and then failed to allocate the vector (std::bad_alloc), or a
// get(ReceivedMessage&) caller ran out of memory decoding it (hold_back()). Freeing
// the blocks would lose a message put in good faith, so the thread keeps it instead, and its
// next get on that queue returns it before anything newer.
#include <atomic>
#include <cstdint>

#include "ringfork/byte_queue.h"
#include "ringfork/claim_registry.h"

namespace ringfork {
namespace {

struct HeldMessage {
  // Which queue: any handle of it in this process (arena and control offset) may return it.
  const SharedArena* arena = nullptr;
  std::uint64_t queue_offset = 0;
  // A forked child's copy of the slot is not its own: the blocks stay the parent's.
  std::uint64_t fork_generation = 0;
  QueueDescriptor descriptor{};
  std::byte first{};
  bool chained = false;
  bool used = false;
};

// One per queue a thread failed on; a thread returns a queue's held message before taking
// another from it, so it never holds two of one queue. Past four queues at once, the fifth
// failure frees its message (lost, as before).
constexpr int kHeldPerThread = 4;
thread_local HeldMessage held_messages[kHeldPerThread];
// Slots in use across the process: get() looks at its thread's slots only when this is not 0,
// so the usual get pays one relaxed load and no thread-local lookup.
std::atomic<int> held_count{0};

std::uint64_t this_fork_generation() noexcept {
  return detail::fork_generation.load(std::memory_order_relaxed);
}

}  // namespace

void ByteQueue::hold_back(ReceivedMessage& message) noexcept {
  for (HeldMessage& held : held_messages) {
    if (held.used) continue;
    held = {.arena = arena_,
            .queue_offset = offset_,
            .fork_generation = this_fork_generation(),
            .descriptor = message.descriptor_,
            .first = message.first_,
            .chained = message.chained_,
            .used = true};
    // relaxed: only this thread reads its slots; the count is a hint for the fast path.
    held_count.fetch_add(1, std::memory_order_relaxed);
    message.queue_ = nullptr;  // the blocks stay this process's, now the slot's
    return;
  }
  message.release();
}

bool ByteQueue::take_held(ReceivedMessage& message) noexcept {
  if (held_count.load(std::memory_order_relaxed) == 0) return false;
  for (HeldMessage& held : held_messages) {
    if (!held.used || held.arena != arena_ || held.queue_offset != offset_) continue;
    held.used = false;
    held_count.fetch_sub(1, std::memory_order_relaxed);
    if (held.fork_generation != this_fork_generation()) continue;  // the parent's
    message.release();
    message.descriptor_ = held.descriptor;
    message.first_ = held.first;
    message.chained_ = held.chained;
    message.queue_ = this;
    return true;
  }
  return false;
}

}  // namespace ringfork
