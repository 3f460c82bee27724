// UringReader's byte ranges: read_range() points the reader at the lines that start in one
// range of one file, and fit_to_range() trims each completed read to them: the partial line
// at the range's front is skipped, and reading goes on past the range's end, a little at a
// time, until the newline that ends the range's last line.
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "ringfork/uring_reader.h"
#include "uring_reader_internal.h"

namespace ringfork {
namespace {

using uring_reader_internal::round_down;
using uring_reader_internal::round_up;

// The first read past a range's end: a few log lines' worth, so that finishing the last line
// costs little beside the range's own bytes; a line longer than that doubles it each time.
constexpr std::uint64_t kFirstOverrunBytes = 16384;

}  // namespace

void UringReader::read_range(const std::string& path, std::uint64_t file_size,
                             UringLineRange range) {
  if (::getpid() != owner_pid_) {
    throw std::logic_error(
        "UringReader::read_range from another process than the reader's: "
        "make the reader after fork(), in the process that reads");
  }
  if (in_flight_ != 0 || !in_order_.empty() || !ready_.empty() || next_file_ < files_.size()) {
    throw std::logic_error(
        "UringReader::read_range while chunks are still to come: call next() until it "
        "returns nullopt first");
  }
  if (range.length > UINT64_MAX - range.offset) {
    throw std::invalid_argument("UringReader::read_range: offset " + std::to_string(range.offset) +
                                " + length " + std::to_string(range.length) + " overflows");
  }
  for (File& file : files_) close_file(file);
  if (long_.block != 0) pool_.free(long_.block);
  long_ = {};
  carry_.clear();
  errors_.clear();
  blocked_file_.reset();
  paths_.assign(1, path);
  const std::uint64_t end = std::min(file_size, range.offset + range.length);
  // One byte before the range tells whether the range's first byte starts a line.
  const std::uint64_t look_back = range.offset > 0 ? range.offset - 1 : 0;
  // O_DIRECT reads whole aligned blocks: start at the block holding look_back, and end reads
  // on a block boundary (or the file's end) so that every later read stays aligned too.
  // Otherwise the kernel refuses the read and the file falls back to the page cache.
  const std::uint64_t first_read =
      options_.direct_io ? round_down(look_back, alignment_) : look_back;
  const std::uint64_t read_limit =
      options_.direct_io ? std::min<std::uint64_t>(file_size, round_up(end, alignment_)) : end;
  files_.assign(1, {.size = file_size, .next_read = first_read, .read_limit = read_limit});
  files_[0].done = range.offset >= end;  // an empty range (or one past the end) owns no line
  range_ = {.active = true,
            .skipping = range.offset > 0,
            .lead = look_back - first_read,
            .end = end,
            .overrun = kFirstOverrunBytes,
            .device = range.device,
            .inode = range.inode};
  next_file_ = 0;
  head_file_ = UINT32_MAX;
  emit_offset_ = 0;
  total_bytes_ = end > range.offset ? end - range.offset : 0;
  bytes_read_ = 0;
}

bool UringReader::fit_to_range(Slot& slot, bool& last) {
  File& file = files_[slot.file];
  if (range_.lead > 0) {  // an aligned read's bytes before begin - 1 belong to no line here
    const std::size_t drop =
        static_cast<std::size_t>(std::min<std::uint64_t>(range_.lead, slot.filled));
    slot.target += drop;
    slot.filled -= drop;
    slot.file_offset += drop;
    range_.lead -= drop;
    if (slot.filled == 0) return false;
  }
  if (range_.skipping) {
    // The read starts at begin - 1: the range's first line starts after the first '\n'.
    const auto* newline =
        static_cast<const std::byte*>(std::memchr(slot.target, '\n', slot.filled));
    if (newline == nullptr) {
      // No line starts in the range so far; if the read reached end - 1, none does.
      // Otherwise the slot keeps its block for the next read.
      if (slot.file_offset + slot.filled + 1 >= range_.end) last = true;
      return false;
    }
    const auto skip = static_cast<std::size_t>(newline - slot.target) + 1;
    if (slot.file_offset + skip >= range_.end) {  // the next line starts in a later range
      last = true;
      return false;
    }
    slot.target += skip;
    slot.filled -= skip;
    slot.file_offset += skip;
    emit_offset_ = slot.file_offset;
    range_.skipping = false;
  }
  const std::uint64_t read_end = slot.file_offset + slot.filled;
  if (read_end >= range_.end) {
    // The range's last line ends at the first '\n' at or after end - 1.
    const std::uint64_t from = std::max(range_.end - 1, slot.file_offset);
    const std::size_t skip = static_cast<std::size_t>(from - slot.file_offset);
    const void* newline = std::memchr(slot.target + skip, '\n', slot.filled - skip);
    if (newline != nullptr) {
      slot.filled =
          static_cast<std::size_t>(static_cast<const std::byte*>(newline) - slot.target) + 1;
      last = true;
    }
  }
  if (!last && read_end >= file.read_limit) {  // the last line goes on beyond what is read
    file.read_limit = std::min(file.size, file.read_limit + range_.overrun);
    range_.overrun = std::min<std::uint64_t>(2 * range_.overrun, read_bytes_);
  }
  return true;
}

}  // namespace ringfork
