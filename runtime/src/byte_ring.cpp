#include "ringfork/byte_ring.h"

#include <string>

namespace ringfork {

SpscByteRing SpscByteRing::create(SharedArena& arena, std::size_t min_capacity_bytes) {
  if (min_capacity_bytes < 64 || min_capacity_bytes > (std::size_t{1} << 40)) {
    throw std::invalid_argument("SpscByteRing capacity must be 64 B .. 1 TiB, got " +
                                std::to_string(min_capacity_bytes));
  }
  const std::uint64_t capacity = std::bit_ceil(static_cast<std::uint64_t>(min_capacity_bytes));
  const std::uint64_t control = arena.allocate_or_throw(sizeof(SpscByteRingControl),
                                                        kFalseSharingRange, "a byte ring");
  const std::uint64_t data = arena.allocate_or_throw(capacity, kCacheLineSize, "byte ring data");
  auto* header =
      new (arena.segment().at(Offset<SpscByteRingControl>{control})) SpscByteRingControl{};
  header->magic = SpscByteRingControl::kMagic;
  header->version = SpscByteRingControl::kVersion;
  header->capacity = capacity;
  header->data_offset = data;
  return attach(arena.segment(), control);
}

SpscByteRing SpscByteRing::attach(const Segment& segment, std::uint64_t offset) {
  auto* header = segment.try_at(Offset<SpscByteRingControl>{offset});
  if (header == nullptr || header->magic != SpscByteRingControl::kMagic ||
      header->version != SpscByteRingControl::kVersion) {
    throw std::invalid_argument(ring_mismatch_message("byte ring", offset, "bad magic/version"));
  }
  if (!std::has_single_bit(header->capacity) || header->capacity < 64) {
    throw std::invalid_argument(ring_mismatch_message("byte ring", offset, "corrupt capacity"));
  }
  auto* data = segment.try_at(Offset<std::byte>{header->data_offset}, header->capacity);
  if (data == nullptr) {
    throw std::invalid_argument(ring_mismatch_message("byte ring", offset, "data outside segment"));
  }
  return SpscByteRing(offset, header, data);
}

bool SpscByteRing::ensure_free(std::uint64_t bytes) noexcept {
  if (capacity() - (local_tail_ - cached_head_) >= bytes) return true;
  // acquire: pairs with the consumer's release of head; the bytes it freed are read.
  cached_head_ = control_->head.load(std::memory_order_acquire);
  return capacity() - (local_tail_ - cached_head_) >= bytes;
}

std::span<std::byte> SpscByteRing::reserve(std::size_t length) noexcept {
  if (length > max_record() || closed()) return {};
  const std::uint64_t need = kHeaderBytes + padded(length);
  const std::uint64_t index = local_tail_ & mask_;
  const std::uint64_t to_end = capacity() - index;
  if (need > to_end) {
    // Wrap: the marker and the skipped end count as used until the consumer passes them.
    if (!ensure_free(to_end + need)) return {};
    const std::uint32_t marker[2] = {kWrapMarker, 0};
    std::memcpy(data_ + index, marker, sizeof(marker));
    local_tail_ += to_end;
  } else if (!ensure_free(need)) {
    return {};
  }
  reserved_at_ = local_tail_;
  reserved_bytes_ = length;
  return {data_ + (local_tail_ & mask_) + kHeaderBytes, length};
}

void SpscByteRing::commit(std::size_t length) noexcept {
  if (length > reserved_bytes_) length = reserved_bytes_;
  const std::uint32_t header[2] = {static_cast<std::uint32_t>(length), 0};
  std::memcpy(data_ + (reserved_at_ & mask_), header, sizeof(header));
  local_tail_ = reserved_at_ + kHeaderBytes + padded(length);
  // release: the record's bytes and header are visible to a consumer that sees this tail.
  control_->tail.store(local_tail_, std::memory_order_release);
  const std::uint64_t held = local_tail_ - cached_head_;
  if (held > high_water_seen_) {
    high_water_seen_ = held;
    atomic_max(control_->high_water, held);
  }
  control_->not_empty.notify_all();
}

RingStatus SpscByteRing::try_push(std::span<const std::byte> record) noexcept {
  if (record.size() > max_record()) return RingStatus::kNoMemory;
  std::span<std::byte> space = reserve(record.size());
  if (space.data() == nullptr) return closed() ? RingStatus::kClosed : RingStatus::kFull;
  if (!record.empty()) std::memcpy(space.data(), record.data(), record.size());
  commit(record.size());
  return RingStatus::kOk;
}

RingStatus SpscByteRing::push(std::span<const std::byte> record, Deadline deadline) {
  RingStatus status = try_push(record);
  if (status != RingStatus::kFull) return status;
  control_->full_waits.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t need = 2 * (kHeaderBytes + padded(record.size()));
  spin_then_park(
      control_->not_full,
      [&] {
        return closed() ||
               capacity() - (local_tail_ - control_->head.load(std::memory_order_acquire)) >= need;
      },
      deadline);
  status = try_push(record);
  return status == RingStatus::kFull ? RingStatus::kTimedOut : status;
}

std::span<const std::byte> SpscByteRing::peek() noexcept {
  for (;;) {
    if (corrupt_) return {};
    std::uint64_t available = cached_tail_ - local_head_;
    if (available < kHeaderBytes) {
      // acquire: pairs with the producer's release of tail; the record is visible.
      cached_tail_ = control_->tail.load(std::memory_order_acquire);
      available = cached_tail_ - local_head_;
      if (available == 0) return {};
      if (available > capacity() || available < kHeaderBytes) {
        corrupt_ = true;
        return {};
      }
    }
    const std::uint64_t index = local_head_ & mask_;
    std::uint32_t header[2];
    std::memcpy(header, data_ + index, sizeof(header));
    if (header[0] == kWrapMarker) {
      local_head_ += capacity() - index;
      continue;
    }
    const std::uint64_t size = kHeaderBytes + padded(header[0]);
    // Nothing from shared memory is trusted: the record must fit where it claims to be.
    if (header[0] > max_record() || size > available || index + size > capacity()) {
      corrupt_ = true;
      return {};
    }
    peeked_bytes_ = size;
    return {data_ + index + kHeaderBytes, header[0]};
  }
}

void SpscByteRing::release() noexcept {
  local_head_ += peeked_bytes_;
  peeked_bytes_ = 0;
  // release: our reads of the record finish before the producer may overwrite it.
  control_->head.store(local_head_, std::memory_order_release);
  control_->not_full.notify_all();
}

RingStatus SpscByteRing::try_pop(std::vector<std::byte>& record) {
  std::span<const std::byte> bytes = peek();
  if (bytes.data() == nullptr) {
    if (corrupt_) return RingStatus::kClosed;
    // Closed and drained only if nothing arrived since peek looked. acquire: as in peek.
    return closed() && control_->tail.load(std::memory_order_acquire) == local_head_
               ? RingStatus::kClosed
               : RingStatus::kEmpty;
  }
  record.assign(bytes.begin(), bytes.end());
  release();
  return RingStatus::kOk;
}

RingStatus SpscByteRing::pop(std::vector<std::byte>& record, Deadline deadline) {
  RingStatus status = try_pop(record);
  if (status != RingStatus::kEmpty) return status;
  control_->empty_waits.fetch_add(1, std::memory_order_relaxed);
  spin_then_park(
      control_->not_empty,
      [&] { return closed() || control_->tail.load(std::memory_order_acquire) != local_head_; },
      deadline);
  status = try_pop(record);
  return status == RingStatus::kEmpty ? RingStatus::kTimedOut : status;
}

void SpscByteRing::close() noexcept { close_ring(*control_); }

std::size_t SpscByteRing::bytes_held() const noexcept {
  return published_span(*control_, capacity());
}

RingCounters SpscByteRing::counters() const noexcept {
  // puts/gets here are bytes (positions), not records.
  return read_common_counters(*control_);
}

}  // namespace ringfork
