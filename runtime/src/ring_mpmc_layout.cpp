#include "ringfork/ring_mpmc_layout.h"

#include <algorithm>
#include <bit>
#include <new>
#include <stdexcept>
#include <string>

#include "ringfork/ring_common.h"

namespace ringfork {

std::uint64_t create_mpmc_control(SharedArena& arena, const MpmcRingOptions& options,
                                  std::size_t slot_bytes) {
  if (options.capacity == 0 || options.capacity > (std::size_t{1} << 40)) {
    throw std::invalid_argument("MpmcRing capacity must be 1..2^40 slots, got " +
                                std::to_string(options.capacity));
  }
  const std::uint64_t capacity =
      std::max<std::uint64_t>(2, std::bit_ceil(static_cast<std::uint64_t>(options.capacity)));
  if (options.limit > capacity) {
    throw std::invalid_argument("MpmcRing limit " + std::to_string(options.limit) +
                                " exceeds its capacity " + std::to_string(capacity));
  }
  const std::uint64_t chunk_slots = std::min<std::uint64_t>(
      capacity, std::bit_ceil(std::max<std::uint64_t>(1, options.chunk_slots)));
  const std::uint64_t chunk_count = capacity / chunk_slots;
  if (chunk_count > (std::uint64_t{1} << 24)) {
    throw std::invalid_argument("MpmcRing needs " + std::to_string(chunk_count) +
                                " chunks; raise MpmcRingOptions.chunk_slots");
  }
  const std::uint64_t control =
      arena.allocate_or_throw(sizeof(MpmcRingControl), kFalseSharingRange, "an MPMC ring");
  const std::uint64_t directory = arena.allocate_or_throw(
      chunk_count * sizeof(std::atomic<std::uint64_t>), kCacheLineSize, "MPMC chunk directory");
  auto* header = new (arena.segment().at(Offset<MpmcRingControl>{control})) MpmcRingControl{};
  header->producers.stamp();
  header->consumers.stamp();
  header->magic = MpmcRingControl::kMagic;
  header->version = MpmcRingControl::kVersion;
  header->slot_bytes = static_cast<std::uint32_t>(slot_bytes);
  header->capacity = capacity;
  header->limit = options.limit == 0 ? capacity : options.limit;
  header->chunk_shift = static_cast<std::uint32_t>(std::countr_zero(chunk_slots));
  header->chunk_count = static_cast<std::uint32_t>(chunk_count);
  header->directory_offset = directory;
  return control;
}

MpmcRingControl* attach_mpmc_control(SharedArena& arena, std::uint64_t offset,
                                     std::size_t slot_bytes,
                                     std::atomic<std::uint64_t>*& directory) {
  const Segment& segment = arena.segment();
  auto* header = segment.try_at(Offset<MpmcRingControl>{offset});
  if (header == nullptr) {
    throw std::invalid_argument(ring_mismatch_message("MPMC ring", offset, "out of bounds"));
  }
  if (header->magic != MpmcRingControl::kMagic || header->version != MpmcRingControl::kVersion ||
      header->slot_bytes != slot_bytes) {
    throw std::invalid_argument(
        ring_mismatch_message("MPMC ring", offset, "bad magic, version or slot size"));
  }
  const bool geometry_ok = std::has_single_bit(header->capacity) && header->limit >= 1 &&
                           header->limit <= header->capacity && header->chunk_shift < 40 &&
                           (header->capacity >> header->chunk_shift) == header->chunk_count &&
                           header->chunk_count >= 1;
  if (!geometry_ok) {
    throw std::invalid_argument(ring_mismatch_message("MPMC ring", offset, "corrupt geometry"));
  }
  directory = segment.try_at(Offset<std::atomic<std::uint64_t>>{header->directory_offset},
                             header->chunk_count);
  if (directory == nullptr) {
    throw std::invalid_argument(
        ring_mismatch_message("MPMC ring", offset, "chunk directory outside segment"));
  }
  return header;
}

}  // namespace ringfork
