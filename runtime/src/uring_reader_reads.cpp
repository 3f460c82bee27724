// UringReader's read pipeline: slots with buffers from the pool, reads issued to io_uring
// (plain or into registered buffers), completions collected, short and failed reads resubmitted
// or turned into errors, and the oldest completed read handed to the line cutter.
#include <fcntl.h>
#include <linux/magic.h>
#include <liburing.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "ringfork/uring_reader.h"
#include "uring_reader_internal.h"

namespace ringfork {
namespace {

using uring_reader_internal::quoted;
using uring_reader_internal::round_up;

constexpr unsigned kMaxRetries = 16;  // EAGAIN/EINTR resubmissions of one read
constexpr std::size_t kFuseReadBytes = std::size_t{128} << 10;  // FUSE's default max_read

}  // namespace

void UringReader::fill_pipeline(std::size_t target) {
  bool prepared = false;
  while (in_order_.size() < target && !idle_slots_.empty() && next_file_ < files_.size() &&
         !blocked_file_) {
    File& file = files_[next_file_];
    if (file.done || file.size == 0 || file.next_read >= file.size) {
      ++next_file_;
      continue;
    }
    if (file.next_read >= file.read_limit) break;  // a range's end: read on only if needed
    if (file.fd < 0 && !open_file(next_file_)) continue;
    const std::uint32_t index = idle_slots_.back();
    Slot& slot = slots_[index];
    if (!take_buffer(slot)) break;  // the pool is dry: go on with the reads in flight
    idle_slots_.pop_back();
    slot.file = next_file_;
    slot.file_offset = file.next_read;
    slot.planned = static_cast<std::size_t>(
        std::min<std::uint64_t>(read_bytes_, file.read_limit - file.next_read));
    slot.filled = 0;
    slot.retries = 0;
    slot.direct = file.direct;
    file.next_read += slot.planned;
    ++file.reads_pending;
    in_order_.push_back(index);
    prepare_read(index);
    prepared = true;
  }
  if (prepared) submit();
}

bool UringReader::open_file(std::uint32_t index) {
  File& file = files_[index];
  const char* path = paths_[index].c_str();
  int fd = -1;
  int error = 0;
  std::string what = "cannot open " + quoted(paths_[index]);
  // O_NONBLOCK: a FIFO put where a listed file was would block the open for ever. It is
  // cleared below once the file is known to be regular (io_uring would not wait for the
  // disk on a file that has it).
  if (options_.direct_io) {
    fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_DIRECT);
    if (fd >= 0) {
      file.direct = true;
      ++stats_.direct_files;
    } else if (errno == EINVAL) {
      ++stats_.direct_fallbacks;  // e.g. tmpfs: read it through the page cache
    } else {
      error = errno;
    }
  }
  if (fd < 0 && error == 0) {
    fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) error = errno;
  }
  if (fd >= 0) {
    // The file may have been replaced since it was listed. A range's reader was promised
    // file.size bytes: a shorter file (truncated, rotated) would end the range without a word.
    struct stat now {};
    if (::fstat(fd, &now) != 0) {
      error = errno;
    } else if (!S_ISREG(now.st_mode)) {
      error = ESTALE;
      what = quoted(paths_[index]) + " is no longer a regular file";
    } else if (range_.active && range_.inode != 0 &&
               (now.st_dev != range_.device || now.st_ino != range_.inode)) {
      error = ESTALE;
      what = quoted(paths_[index]) + " is another file than the one listed (rotated or replaced?)";
    } else if (range_.active && static_cast<std::uint64_t>(now.st_size) < file.size) {
      error = ESTALE;
      what = quoted(paths_[index]) + " shrank from " + std::to_string(file.size) + " to " +
             std::to_string(now.st_size) + " bytes since it was listed (truncated or rotated?)";
    } else if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
      error = errno;
    }
    if (error != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  if (fd < 0) {
    if (options_.keep_going) {
      add_error(paths_[index], error, "UringReader: " + what);
      file.done = true;
    } else {
      blocked_file_ = index;
      blocked_error_ = std::error_code(error, std::generic_category());
      blocked_what_ = std::move(what);
    }
    return false;
  }
  if (!file.direct) ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  // FUSE serves a read as requests of up to max_read bytes (128 KiB unless the mount says
  // otherwise). On Linux 6.18, an io_uring read of a direct_io FUSE file whose middle request
  // fails completes with the full count, part of the buffer never written (seen with
  // tests/logscan/failing_fs.py; read(2) returns the bytes before the failure, as it should).
  // A read of one request fails whole, so on FUSE no read asks for more.
  struct statfs filesystem {};
  if (::fstatfs(fd, &filesystem) == 0 && filesystem.f_type == FUSE_SUPER_MAGIC) {
    file.max_read = kFuseReadBytes;
    ++stats_.fuse_files;
  }
  file.fd = fd;
  return true;
}

void UringReader::close_file(File& file) noexcept {
  if (file.fd >= 0) ::close(file.fd);
  file.fd = -1;
}

bool UringReader::take_buffer(Slot& slot) {
  if (slot.block == 0) {
    std::uint64_t block = 0;
    if (std::error_code error = pool_.allocate(options_.chunk_bytes, block)) {
      pool_error_ = error;
      return false;
    }
    slot.block = block;
  }
  const auto base = reinterpret_cast<std::uintptr_t>(at(slot.block));
  slot.target = reinterpret_cast<std::byte*>(round_up(base + headroom_, alignment_));
  return true;
}

void UringReader::prepare_read(std::uint32_t index) {
  Slot& slot = slots_[index];
  const File& file = files_[slot.file];
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (sqe == nullptr) {  // cannot happen with 2 * depth entries; flush and retry anyway
    submit();
    sqe = io_uring_get_sqe(ring_.get());
    if (sqe == nullptr) throw std::system_error(EBUSY, std::generic_category(), "io_uring_get_sqe");
  }
  std::byte* destination = slot.target + slot.filled;
  std::size_t length = slot.planned - slot.filled;
  if (file.max_read != 0) length = std::min(length, file.max_read);
  // O_DIRECT wants whole blocks: ask for them (the buffer has room, read_bytes_ is aligned);
  // the kernel stops at the end of the file and the surplus is never counted.
  if (slot.direct) length = round_up(length, alignment_);
  const std::uint64_t offset = slot.file_offset + slot.filled;
  const bool fixed = mode_ == UringReadMode::kFixedBuffers &&
                     (slot.direct || options_.fixed_buffers == UringFixedBuffers::kAlways);
  slot.registered = fixed ? register_buffer(at(slot.block)) : -1;
  if (slot.registered >= 0) {
    io_uring_prep_read_fixed(sqe, file.fd, destination, static_cast<unsigned>(length), offset,
                             slot.registered);
    ++registered_[static_cast<std::size_t>(slot.registered)].in_flight;
    ++stats_.fixed_reads;
  } else {
    io_uring_prep_read(sqe, file.fd, destination, static_cast<unsigned>(length), offset);
  }
  slot.requested = length;
  io_uring_sqe_set_data64(sqe, index);
  slot.in_flight = true;
  ++in_flight_;
  ++stats_.reads_submitted;
  stats_.max_in_flight = std::max(stats_.max_in_flight, in_flight_);
}

void UringReader::submit() {
  int result = 0;
  do {
    result = io_uring_submit(ring_.get());
  } while (result == -EINTR);
  if (result < 0) throw std::system_error(-result, std::generic_category(), "io_uring_submit");
}

int UringReader::register_buffer(std::byte* address) {
  ++use_clock_;
  int victim = -1;
  for (std::size_t i = 0; i < registered_.size(); ++i) {
    Registered& entry = registered_[i];
    if (entry.address == address) {
      entry.last_use = use_clock_;
      return static_cast<int>(i);
    }
    if (entry.in_flight == 0 &&
        (victim < 0 || entry.last_use < registered_[static_cast<std::size_t>(victim)].last_use)) {
      victim = static_cast<int>(i);
    }
  }
  if (victim < 0) return -1;
  iovec buffer{address, options_.chunk_bytes};
  __u64 tag = 0;
  const int result = io_uring_register_buffers_update_tag(
      ring_.get(), static_cast<unsigned>(victim), &buffer, &tag, 1);
  if (result < 0) {
    // Typically ENOMEM: pinning the block would pass RLIMIT_MEMLOCK. Plain reads from here on.
    mode_ = UringReadMode::kPlainReads;
    fixed_error_ = std::error_code(-result, std::generic_category());
    return -1;
  }
  registered_[static_cast<std::size_t>(victim)] = {address, use_clock_, 0};
  ++stats_.registrations;
  return victim;
}

int UringReader::wait(std::chrono::milliseconds timeout) noexcept {
  io_uring_cqe* cqe = nullptr;
  __kernel_timespec limit{};
  limit.tv_sec = timeout.count() / 1000;
  limit.tv_nsec = (timeout.count() % 1000) * 1'000'000;
  int result = 0;
  do {
    result = io_uring_wait_cqe_timeout(ring_.get(), &cqe, &limit);
  } while (result == -EINTR);
  if (result < 0) return result;
  collect();
  return 0;
}

void UringReader::collect() noexcept {
  unsigned head = 0;
  unsigned seen = 0;
  io_uring_cqe* cqe = nullptr;
  io_uring_for_each_cqe(ring_.get(), head, cqe) {
    ++seen;
    const std::uint64_t index = io_uring_cqe_get_data64(cqe);
    if (index >= slots_.size()) continue;  // not one of ours (a liburing timeout)
    Slot& slot = slots_[index];
    slot.result = cqe->res;
    slot.in_flight = false;
    --in_flight_;
    if (slot.registered >= 0) --registered_[static_cast<std::size_t>(slot.registered)].in_flight;
  }
  io_uring_cq_advance(ring_.get(), seen);
}

void UringReader::finish_head() {
  const std::uint32_t index = in_order_.front();
  Slot& slot = slots_[index];
  File& file = files_[slot.file];
  int error = 0;
  std::string failed;
  bool truncated = false;
  if (!file.done && slot.result < 0) {
    error = -slot.result;
    if ((error == EAGAIN || error == EINTR) && slot.retries++ < kMaxRetries) {
      prepare_read(index);
      submit();
      return;
    }
    if (error == EINVAL && slot.direct) {
      // The filesystem took O_DIRECT at open but refuses the read: use the page cache.
      error = drop_direct(slot);
      if (error == 0) return;
      failed = "reopening without O_DIRECT";
    } else {
      failed = "reading at offset " + std::to_string(slot.file_offset + slot.filled);
    }
  } else if (!file.done) {
    const std::size_t got =
        std::min(static_cast<std::size_t>(slot.result), slot.planned - slot.filled);
    slot.filled += got;
    bytes_read_ += got;
    if (slot.filled < slot.planned && got > 0) {
      // Not short when the read asked for less (a FUSE file's reads are capped).
      if (static_cast<std::size_t>(slot.result) < slot.requested) ++stats_.short_reads;
      // The rest of an O_DIRECT read must start aligned; if it does not, page cache.
      if (!slot.direct || slot.filled % alignment_ == 0) {
        prepare_read(index);
        submit();
        return;
      }
      error = drop_direct(slot);
      if (error == 0) return;
      failed = "reopening without O_DIRECT";
    }
    truncated = slot.filled < slot.planned;  // the file shrank since the reader was made
    if (truncated && range_.active) {
      error = ESTALE;  // a range's reader was promised file.size bytes
      failed = "shrank while it was read: it ends at " +
               std::to_string(slot.file_offset + slot.filled) + " bytes, listed as " +
               std::to_string(file.size) + " (truncated or rotated?)";
    }
  }
  in_order_.pop_front();
  idle_slots_.push_back(index);  // consume() only takes the block from it
  --file.reads_pending;
  if (error != 0) return fail_file(slot.file, error, failed);
  if (!file.done) {
    bool last = truncated || slot.file_offset + slot.planned >= file.size;
    if (slot.file != head_file_) {
      head_file_ = slot.file;
      emit_offset_ = 0;
    }
    try {
      if (range_.active && !fit_to_range(slot, last)) {
        if (last) file.done = true;
        if (file.done && file.reads_pending == 0) close_file(file);
        return;
      }
      consume(slot, last);
    } catch (...) {
      abandon_file(slot.file);  // its lines cannot be continued: skip the rest of it
      throw;
    }
    if (last) file.done = true;
  }
  if (file.done && file.reads_pending == 0) close_file(file);
}

int UringReader::drop_direct(Slot& slot) {
  File& file = files_[slot.file];
  if (file.direct) {
    const int fd = ::open(paths_[slot.file].c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ::close(file.fd);  // reads in flight hold their own reference to the open file
    file.fd = fd;
    file.direct = false;
    ++stats_.direct_fallbacks;
  }
  slot.direct = false;
  prepare_read(static_cast<std::uint32_t>(&slot - slots_.data()));
  submit();
  return 0;
}

void UringReader::abandon_file(std::uint32_t index) noexcept {
  File& file = files_[index];
  file.done = true;
  carry_.clear();
  if (long_.block != 0) pool_.free(long_.block);
  long_ = {};
  if (file.reads_pending == 0) close_file(file);
}

void UringReader::fail_file(std::uint32_t index, int error, const std::string& what) {
  abandon_file(index);
  add_error(paths_[index], error, "UringReader: " + quoted(paths_[index]) + ": " + what);
}

}  // namespace ringfork
