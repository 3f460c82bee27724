// SpscByteRing: a bounded single-producer single-consumer ring of variable-length byte
// records in a shared segment, written and read in place.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <stdexcept>
#include <vector>

#include "ringfork/arena.h"
#include "ringfork/cache_line.h"
#include "ringfork/eventcount.h"
#include "ringfork/ring_common.h"
#include "ringfork/spin_wait.h"

namespace ringfork {

struct SpscByteRingControl {
  static constexpr std::uint64_t kMagic = 0x5242535047464952;  // "RIFGPSBR"
  static constexpr std::uint32_t kVersion = 1;
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t reserved;
  std::uint64_t capacity;  // bytes, a power of two
  std::uint64_t data_offset;
  std::atomic<std::uint32_t> closed;  // read-mostly
  // Align to avoid false sharing between the producer's and the consumer's lines.
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> tail;  // byte position, producer's
  std::atomic<std::uint64_t> high_water;
  std::atomic<std::uint64_t> full_waits;
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> head;  // byte position, consumer's
  std::atomic<std::uint64_t> empty_waits;
  alignas(kFalseSharingRange) EventCount not_empty;
  alignas(kFalseSharingRange) EventCount not_full;
};
static_assert(std::is_standard_layout_v<SpscByteRingControl>, "read by other processes");

// Contract: one producer thread and one consumer thread (in any processes). Each record is
// an 8-byte header (its length) and its bytes, padded to 8, contiguous in the ring (a record
// that would straddle the end is preceded by a wrap marker and starts at the beginning), so
// reserve() and peek() hand out one span to write or read in place. A record becomes
// visible whole at the release of `tail`; a producer killed mid-write publishes nothing.
// Records hold 0 .. max_record() bytes (capacity / 2 - 8, and below 4 GiB - 1: the header
// stores a length in 32 bits, 0xffffffff being the wrap marker). Headers read from shared memory
// are validated: an impossible length is never followed; peek() returns nothing and
// corrupt() says why. try_*/reserve/peek never block, throw or allocate (try_pop resizes
// the caller's buffer); push/pop block to a deadline.
class SpscByteRing {
 public:
  static constexpr std::uint64_t kHeaderBytes = 8;
  static constexpr std::uint32_t kWrapMarker = 0xffffffffu;

  static SpscByteRing create(SharedArena& arena, std::size_t min_capacity_bytes);
  static SpscByteRing attach(const Segment& segment, std::uint64_t offset);
  std::uint64_t offset() const noexcept { return offset_; }
  std::size_t capacity() const noexcept { return mask_ + 1; }
  std::size_t max_record() const noexcept {
    return std::min<std::size_t>(capacity() / 2 - kHeaderBytes, kWrapMarker - 1);
  }

  // ---- producer ----
  // Room for a record of `length` bytes, to write in place, or an empty span when full,
  // closed, or longer than max_record() (check with max_record()).
  std::span<std::byte> reserve(std::size_t length) noexcept;
  // Publishes the reserved record with its final `length` (<= the reserved length).
  void commit(std::size_t length) noexcept;
  RingStatus try_push(std::span<const std::byte> record) noexcept;
  RingStatus push(std::span<const std::byte> record, Deadline deadline = Deadline::never());

  // ---- consumer ----
  // The next record's bytes, valid until release(); empty when there is none. Sets
  // `corrupt` when the header found is impossible (a buggy peer): the ring is then unusable.
  std::span<const std::byte> peek() noexcept;
  void release() noexcept;
  RingStatus try_pop(std::vector<std::byte>& record);
  RingStatus pop(std::vector<std::byte>& record, Deadline deadline = Deadline::never());
  bool corrupt() const noexcept { return corrupt_; }

  // ---- either side ----
  // As SpscRing::close(): the producer's call; from elsewhere it can race one push, whose
  // record a consumer that already returned kClosed does not receive.
  void close() noexcept;
  bool closed() const noexcept { return control_->closed.load(std::memory_order_acquire) != 0; }
  std::size_t bytes_held() const noexcept;
  RingCounters counters() const noexcept;

 private:
  SpscByteRing(std::uint64_t offset, SpscByteRingControl* control, std::byte* data)
      : offset_(offset), control_(control), data_(data), mask_(control->capacity - 1),
        local_tail_(control->tail.load(std::memory_order_relaxed)),
        local_head_(control->head.load(std::memory_order_relaxed)),
        cached_head_(local_head_), cached_tail_(local_tail_) {}

  static std::uint64_t padded(std::uint64_t length) noexcept { return (length + 7) & ~std::uint64_t{7}; }
  bool ensure_free(std::uint64_t bytes) noexcept;

  std::uint64_t offset_;
  SpscByteRingControl* control_;
  std::byte* data_;
  std::uint64_t mask_;
  // Process-local state of this handle's side(s).
  std::uint64_t local_tail_;
  std::uint64_t local_head_;
  std::uint64_t cached_head_;
  std::uint64_t cached_tail_;
  std::uint64_t reserved_at_ = 0;     // producer: position of the reserved record's header
  std::uint64_t reserved_bytes_ = 0;  // producer: its reserved length
  std::uint64_t peeked_bytes_ = 0;    // consumer: the peeked record's padded size
  std::uint64_t high_water_seen_ = 0;
  bool corrupt_ = false;
};

}  // namespace ringfork
