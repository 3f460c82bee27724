// UringReader's line cutter: a read buffer is delivered up to its last '\n'; the tail is
// carried to the headroom of the file's next buffer, or, when it does not fit there, gathered
// in a long-line block that grows up to max_line_bytes (or the pool's largest class).
#include <string.h>  // memrchr (a GNU extension)

#include <algorithm>
#include <cstring>

#include "ringfork/uring_reader.h"
#include "uring_reader_internal.h"

namespace ringfork {

using uring_reader_internal::quoted;

void UringReader::consume(Slot& slot, bool last) {
  std::byte* data = slot.target;
  const std::size_t length = slot.filled;
  if (long_.block != 0) {
    // A line longer than the headroom is open: its end is at the first '\n'.
    const auto* newline = static_cast<std::byte*>(std::memchr(data, '\n', length));
    if (last || newline == nullptr) {
      append_long(data, length);
      if (last) emit_long(UringChunk::kLastInFile);
      return;
    }
    const auto line_end = static_cast<std::size_t>(newline - data) + 1;
    append_long(data, line_end);
    emit_long(0);
    cut_in_place(slot, data + line_end, length - line_end, false);
    return;
  }
  // The carry has no '\n' and fits the headroom: put it just before the new bytes.
  std::byte* begin = data - carry_.size();
  if (!carry_.empty()) std::memcpy(begin, carry_.data(), carry_.size());
  const std::size_t total = carry_.size() + length;
  carry_.clear();
  cut_in_place(slot, begin, total, last);
}

void UringReader::cut_in_place(Slot& slot, std::byte* begin, std::size_t length, bool last) {
  if (last) {
    emit(slot.block, begin, length, UringChunk::kLastInFile);
    slot.block = 0;
    return;
  }
  const void* newline = length == 0 ? nullptr : ::memrchr(begin, '\n', length);
  if (newline == nullptr) {
    carry(begin, length);  // the buffer stays with the slot for its next read
    return;
  }
  const auto cut = static_cast<std::size_t>(static_cast<const std::byte*>(newline) - begin) + 1;
  carry(begin + cut, length - cut);
  emit(slot.block, begin, cut, 0);
  slot.block = 0;
}

void UringReader::carry(const std::byte* tail, std::size_t length) {
  if (length == 0) return;
  if (length <= headroom_) {
    carry_.assign(tail, tail + length);
  } else {
    append_long(tail, length);
  }
}

void UringReader::append_long(const std::byte* bytes, std::size_t length) {
  while (length > 0) {
    if (long_.block == 0) {
      grow_long(std::min(max_piece_, std::max(2 * length, options_.chunk_bytes)));
    } else if (long_.capacity - long_.used < length && long_.capacity < max_piece_) {
      grow_long(std::min(max_piece_, std::max(long_.used + length, 2 * long_.capacity)));
    }
    const std::size_t take = std::min(long_.capacity - long_.used, length);
    std::memcpy(at(long_.block) + long_.used, bytes, take);
    long_.used += take;
    stats_.long_line_bytes += take;
    bytes += take;
    length -= take;
    // Full at max_piece_: this much of the line goes out now, the rest follows.
    if (length > 0) emit_long(UringChunk::kContinued);
  }
}

void UringReader::grow_long(std::size_t request) {
  std::uint64_t block = 0;
  if (std::error_code error = pool_.allocate(request, block)) {
    throw std::system_error(
        error, "UringReader: no pool block of " + std::to_string(request) +
                   " bytes for a long line of " + quoted(paths_[head_file_]) + " at offset " +
                   std::to_string(emit_offset_) +
                   ": raise BlockPoolOptions.max_bytes or lower max_line_bytes");
  }
  if (long_.block != 0) {
    std::memcpy(at(block), at(long_.block), long_.used);
    stats_.long_line_bytes += long_.used;
    pool_.free(long_.block);
  }
  long_.block = block;
  long_.capacity = std::min(pool_.block_bytes(block), max_piece_);
}

void UringReader::emit_long(std::uint32_t flags) {
  emit(long_.block, at(long_.block), long_.used, flags);
  long_ = {};
}

void UringReader::emit(std::uint64_t block, const std::byte* begin, std::size_t length,
                       std::uint32_t flags) {
  ready_.push_back({.file = head_file_,
                    .flags = flags,
                    .file_offset = emit_offset_,
                    .length = length,
                    .block = block,
                    .data = static_cast<std::uint64_t>(begin - segment_base_)});
  emit_offset_ += length;
  ++stats_.chunks;
}

}  // namespace ringfork
