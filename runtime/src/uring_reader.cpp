// UringReader: the read pipeline (slots in flight, consumed in issue order), the line cutter
// (carry in the headroom, long lines in a growing block) and path expansion.
#include "ringfork/uring_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace ringfork {
namespace {

constexpr unsigned kMaxQueueDepth = 64;
// Tiny buffers only make sense for tests that cut every line (most lines then take the
// long-line path); O_DIRECT needs whole pages.
constexpr std::size_t kMinChunkBytes = 256;
constexpr std::size_t kMinDirectChunkBytes = 8192;
constexpr std::size_t kDirectAlignment = 4096;  // offset, length and address of O_DIRECT reads
constexpr std::size_t kBlockAlignment = 64;     // what the pool guarantees
constexpr unsigned kMaxRetries = 16;            // EAGAIN/EINTR resubmissions of one read

std::size_t round_up(std::size_t value, std::size_t to) { return (value + to - 1) / to * to; }
std::size_t round_down(std::size_t value, std::size_t to) { return value / to * to; }

std::string quoted(const std::string& path) { return "'" + path + "'"; }

}  // namespace

const char* to_string(UringReadMode mode) noexcept {
  return mode == UringReadMode::kFixedBuffers ? "fixed buffers" : "plain reads";
}

UringReader::UringReader(BlockPool pool, const std::vector<std::string>& paths,
                         const UringReaderOptions& options)
    : pool_(std::move(pool)),
      segment_base_(pool_.arena().segment().base()),
      options_(options),
      owner_pid_(::getpid()) {
  if (options_.queue_depth == 0 || options_.queue_depth > kMaxQueueDepth) {
    throw std::invalid_argument(
        "UringReaderOptions.queue_depth = " + std::to_string(options_.queue_depth) + ": give 1.." +
        std::to_string(kMaxQueueDepth));
  }
  if (options_.io_timeout <= std::chrono::milliseconds::zero()) {
    throw std::invalid_argument(
        "UringReaderOptions.io_timeout = " + std::to_string(options_.io_timeout.count()) +
        " ms: give a positive time");
  }
  alignment_ = options_.direct_io ? kDirectAlignment : kBlockAlignment;
  const std::size_t min_chunk = options_.direct_io ? kMinDirectChunkBytes : kMinChunkBytes;
  if (options_.chunk_bytes < min_chunk || options_.chunk_bytes > pool_.max_block_bytes()) {
    throw std::invalid_argument(
        "UringReaderOptions.chunk_bytes = " + std::to_string(options_.chunk_bytes) + ": give " +
        std::to_string(min_chunk) + ".." + std::to_string(pool_.max_block_bytes()) +
        " (the pool's largest class)");
  }
  max_piece_ = options_.max_line_bytes == 0
                   ? pool_.max_block_bytes()
                   : std::min(options_.max_line_bytes, pool_.max_block_bytes());
  if (max_piece_ < kBlockAlignment) {
    throw std::invalid_argument("UringReaderOptions.max_line_bytes = " +
                                std::to_string(options_.max_line_bytes) + ": give 0 or >= 64");
  }
  // An eighth of the buffer takes the carried tail: lines up to that length cost one small
  // copy; longer ones go through the long-line block. The target's alignment may cost up to
  // alignment_ - 64 bytes, since blocks are only 64-byte aligned.
  headroom_ = round_up(std::max(options_.chunk_bytes / 8, alignment_), alignment_);
  read_bytes_ =
      round_down(options_.chunk_bytes - headroom_ - (alignment_ - kBlockAlignment), alignment_);

  for (const std::string& path : paths) expand(path, true);
  for (const File& file : files_) total_bytes_ += file.size;

  ring_ = std::make_unique<io_uring>();
  io_uring_params params{};
  // Completions are collected only when next() enters the kernel anyway: no need to be
  // interrupted for them.
  params.flags = IORING_SETUP_COOP_TASKRUN;
  const unsigned entries = 2 * options_.queue_depth;  // room for resubmissions
  int result = io_uring_queue_init_params(entries, ring_.get(), &params);
  if (result == -EINVAL) {  // kernel older than 5.19
    params = {};
    result = io_uring_queue_init_params(entries, ring_.get(), &params);
  }
  if (result < 0) {
    ring_.reset();
    throw std::system_error(-result, std::generic_category(),
                            "UringReader: io_uring_queue_init (is io_uring disabled? see "
                            "/proc/sys/kernel/io_uring_disabled and seccomp)");
  }
  const bool want_fixed =
      options_.fixed_buffers == UringFixedBuffers::kAlways ||
      (options_.fixed_buffers == UringFixedBuffers::kForDirectIo && options_.direct_io);
  if (want_fixed) {
    // One table entry per block the reader has used lately: twice the depth, so a block that
    // comes back from the pool usually finds its registration still there.
    result = io_uring_register_buffers_sparse(ring_.get(), 2 * options_.queue_depth);
    if (result < 0) {
      fixed_error_ = std::error_code(-result, std::generic_category());
    } else {
      mode_ = UringReadMode::kFixedBuffers;
      registered_.resize(2 * options_.queue_depth);
    }
  }
  slots_.resize(options_.queue_depth);
  for (std::uint32_t i = options_.queue_depth; i-- > 0;) idle_slots_.push_back(i);
  carry_.reserve(headroom_);
}

UringReader::~UringReader() {
  if (::getpid() != owner_pid_) {
    // A forked child's copy: the reads and blocks are the parent's; drop only our handles.
    for (File& file : files_) close_file(file);
    io_uring_queue_exit(ring_.get());
    return;
  }
  // The kernel writes into the blocks of reads in flight until they complete: wait for them,
  // and leak (never free) a block whose read does not come back.
  while (in_flight_ > 0 && wait(options_.io_timeout) == 0) {
  }
  for (Slot& slot : slots_) {
    if (slot.block != 0 && !slot.in_flight) pool_.free(slot.block);
  }
  if (long_.block != 0) pool_.free(long_.block);
  for (const UringChunk& chunk : ready_) pool_.free(chunk.block);
  for (File& file : files_) close_file(file);
  io_uring_queue_exit(ring_.get());
}

// ---- paths ------------------------------------------------------------------------------

void UringReader::add_error(const std::string& path, int error, const std::string& what) {
  if (!options_.keep_going) throw std::system_error(error, std::generic_category(), what);
  errors_.push_back({path, std::error_code(error, std::generic_category()), what});
}

void UringReader::expand(const std::string& path, bool top_level) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    add_error(path, errno, "UringReader: cannot read " + quoted(path));
    return;
  }
  if (S_ISREG(info.st_mode)) {
    // Opened once here so that an unreadable file is named now, not half-way through a run.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      add_error(path, errno, "UringReader: cannot open " + quoted(path));
      return;
    }
    ::close(fd);
    if (paths_.size() >= UINT32_MAX) {
      throw std::invalid_argument("UringReader: more than 2^32 - 1 files");
    }
    paths_.push_back(path);
    files_.push_back({.size = static_cast<std::uint64_t>(info.st_size)});
    return;
  }
  if (!S_ISDIR(info.st_mode)) {
    // Sockets, FIFOs and devices met inside a directory are passed over; named, they are
    // an error.
    if (top_level)
      add_error(path, EINVAL, "UringReader: not a regular file or directory: " + quoted(path));
    return;
  }
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    add_error(path, errno, "UringReader: cannot list directory " + quoted(path));
    return;
  }
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  const int list_error = errno;
  ::closedir(dir);
  if (list_error != 0) {
    add_error(path, list_error, "UringReader: cannot list directory " + quoted(path));
    return;
  }
  std::sort(names.begin(), names.end());
  const std::string prefix = path.empty() || path.back() == '/' ? path : path + "/";
  for (const std::string& name : names) {
    const std::string child = prefix + name;
    struct stat link {};
    if (::lstat(child.c_str(), &link) != 0) {
      add_error(child, errno, "UringReader: cannot read " + quoted(child));
    } else if (S_ISLNK(link.st_mode)) {
      struct stat target {};
      // Links to directories are not followed (no cycles). A dangling link stands for a file
      // the user meant to be read and cannot be: an error, like a missing named path.
      if (::stat(child.c_str(), &target) != 0) {
        add_error(child, errno, "UringReader: cannot read " + quoted(child));
      } else if (S_ISREG(target.st_mode)) {
        expand(child, false);
      }
    } else if (S_ISDIR(link.st_mode) || S_ISREG(link.st_mode)) {
      expand(child, false);
    }
  }
}

// ---- the pipeline -----------------------------------------------------------------------

std::optional<UringChunk> UringReader::next() {
  if (::getpid() != owner_pid_) {
    throw std::logic_error("UringReader made in process " + std::to_string(owner_pid_) +
                           " used in process " + std::to_string(::getpid()) +
                           ": an io_uring instance belongs to the process that made it; make "
                           "the reader after fork(), in the process that reads");
  }
  for (;;) {
    if (!ready_.empty()) {
      const UringChunk chunk = ready_.front();
      ready_.pop_front();
      return chunk;
    }
    if (in_order_.empty()) fill_pipeline(1);
    if (in_order_.empty()) {
      if (blocked_file_) {
        // Every chunk before the unopenable file has been delivered: now its error.
        const std::uint32_t file = *blocked_file_;
        blocked_file_.reset();
        files_[file].done = true;
        throw std::system_error(blocked_error_, "UringReader: cannot open " + quoted(paths_[file]));
      }
      if (next_file_ < files_.size()) {
        throw std::system_error(
            pool_error_ ? pool_error_ : std::make_error_code(std::errc::not_enough_memory),
            "UringReader: no pool block of " + std::to_string(options_.chunk_bytes) +
                " bytes and no read in flight: release delivered chunks or raise "
                "BlockPoolOptions.max_bytes");
      }
      return std::nullopt;
    }
    collect();
    if (slots_[in_order_.front()].in_flight) {
      // The oldest read is still at the device: read ahead while waiting for it. (A read the
      // page cache serves completes inside the submission, so then nothing is waited for and
      // one buffer at a time is in use, which keeps the copy's destination in cache.)
      fill_pipeline(options_.queue_depth);
      const int result = wait(options_.io_timeout);
      if (result == -ETIME) {
        throw std::system_error(
            ETIMEDOUT, std::generic_category(),
            "UringReader: no read of " + quoted(paths_[slots_[in_order_.front()].file]) +
                " completed within " + std::to_string(options_.io_timeout.count()) + " ms");
      }
      if (result < 0)
        throw std::system_error(-result, std::generic_category(), "io_uring_wait_cqe");
      continue;
    }
    finish_head();
  }
}

void UringReader::release(const UringChunk& chunk) noexcept { pool_.free(chunk.block); }

void UringReader::fill_pipeline(std::size_t target) {
  bool prepared = false;
  while (in_order_.size() < target && !idle_slots_.empty() && next_file_ < files_.size() &&
         !blocked_file_) {
    File& file = files_[next_file_];
    if (file.done || file.size == 0 || file.next_read >= file.size) {
      ++next_file_;
      continue;
    }
    if (file.fd < 0 && !open_file(next_file_)) continue;
    const std::uint32_t index = idle_slots_.back();
    Slot& slot = slots_[index];
    if (!take_buffer(slot)) break;  // the pool is dry: go on with the reads in flight
    idle_slots_.pop_back();
    slot.file = next_file_;
    slot.file_offset = file.next_read;
    slot.planned =
        static_cast<std::size_t>(std::min<std::uint64_t>(read_bytes_, file.size - file.next_read));
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
  if (options_.direct_io) {
    fd = ::open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
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
    fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) error = errno;
  }
  if (fd < 0) {
    if (options_.keep_going) {
      add_error(paths_[index], error, "UringReader: cannot open " + quoted(paths_[index]));
      file.done = true;
    } else {
      blocked_file_ = index;
      blocked_error_ = std::error_code(error, std::generic_category());
    }
    return false;
  }
  if (!file.direct) ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
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
      ++stats_.short_reads;
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
  }
  in_order_.pop_front();
  idle_slots_.push_back(index);  // consume() only takes the block from it
  --file.reads_pending;
  if (error != 0) return fail_file(slot.file, error, failed);
  if (!file.done) {
    const bool last = truncated || slot.file_offset + slot.planned >= file.size;
    if (slot.file != head_file_) {
      head_file_ = slot.file;
      emit_offset_ = 0;
    }
    try {
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

// ---- cutting at line ends ---------------------------------------------------------------

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
