// The shared-memory layout of MpmcRing<T> (ring_mpmc.h): its slots and control block, and
// the checks that make and attach one, which do not depend on T.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "ringfork/arena.h"
#include "ringfork/cache_line.h"
#include "ringfork/claim_registry.h"
#include "ringfork/eventcount.h"

namespace ringfork {

// A slot's `state` is position + 1 once the message for `position` is in it, and only
// producers write it: zeroed memory (state 0) holds nothing, so slot chunks can be created
// lazily from zeroed arena memory, and a state left from an earlier lap (or by a producer
// that died) never matches a later position.
template <class T>
struct alignas(kCacheLineSize) MpmcSlot {
  std::atomic<std::uint64_t> state;
  T value;
};

struct MpmcRingControl {
  static constexpr std::uint64_t kMagic = 0x434d504d474e4952;  // "RINGMPMC"
  static constexpr std::uint32_t kVersion = 3;

  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t slot_bytes;
  std::uint64_t capacity;       // slots, a power of two
  std::uint64_t limit;          // most messages held at once (maxsize), <= capacity
  std::uint32_t chunk_shift;    // slots per chunk = 1 << chunk_shift
  std::uint32_t chunk_count;    // capacity >> chunk_shift
  std::uint64_t directory_offset;  // chunk_count offsets of slot chunks, 0 = not yet made
  std::atomic<std::uint32_t> closed;  // read-mostly
  // Align to avoid false sharing between producers' and consumers' hot indices.
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> tail;  // next position to claim
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> head;  // next position to take
  alignas(kFalseSharingRange) EventCount not_empty;
  alignas(kFalseSharingRange) EventCount not_full;
  // Slow-path statistics and the spare chunk share a line that the hot paths never touch.
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> full_waits;
  std::atomic<std::uint64_t> empty_waits;
  std::atomic<std::uint64_t> high_water;
  std::atomic<std::uint64_t> dead_producer_slots;
  std::atomic<std::uint64_t> dead_consumer_slots;
  std::atomic<std::uint64_t> stalled_full_waits;
  std::atomic<std::uint64_t> spare_chunk;  // a chunk made by a producer that lost the race
  alignas(kFalseSharingRange) ClaimRegistry producers;
  ClaimRegistry consumers;
};
static_assert(std::is_standard_layout_v<MpmcRingControl>, "read by other processes");

struct MpmcRingOptions {
  std::size_t capacity = 1024;       // slots; rounded up to a power of two
  std::size_t limit = 0;             // 0: the capacity; otherwise the most messages held
  std::size_t chunk_slots = 1024;    // slot memory is made lazily, a chunk at a time
};

// Makes a ring's control block and chunk directory for slots of `slot_bytes`; returns the
// control block's offset. Throws std::invalid_argument for a bad geometry, and the arena's
// error when it is exhausted.
std::uint64_t create_mpmc_control(SharedArena& arena, const MpmcRingOptions& options,
                                  std::size_t slot_bytes);

// The control block at `offset`, checked against `slot_bytes`, and its chunk directory.
// Throws std::invalid_argument naming what does not match.
MpmcRingControl* attach_mpmc_control(SharedArena& arena, std::uint64_t offset,
                                     std::size_t slot_bytes,
                                     std::atomic<std::uint64_t>*& directory);

}  // namespace ringfork
