// UringReader: its set-up (options checked, buffer geometry, the ring), its teardown, and
// next(), which hands out chunks in file order. The other parts live beside it:
// input_files.cpp (which files a path stands for), uring_reader_range.cpp (byte ranges),
// uring_reader_reads.cpp (the reads in
// flight) and uring_reader_lines.cpp (cutting read buffers at line ends).
#include "ringfork/uring_reader.h"

#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "uring_reader_internal.h"

namespace ringfork {
namespace {

using uring_reader_internal::quoted;
using uring_reader_internal::round_down;
using uring_reader_internal::round_up;

constexpr unsigned kMaxQueueDepth = 64;
// Tiny buffers only make sense for tests that cut every line (most lines then take the
// long-line path); O_DIRECT needs whole pages.
constexpr std::size_t kMinChunkBytes = 256;
// Headroom (4 KiB), the target's alignment slack (up to 4 KiB - 64) and one aligned read
// (4 KiB) must fit: with 8 KiB, reads were 0 bytes long and next() spun forever.
constexpr std::size_t kMinDirectChunkBytes = 16384;
constexpr std::size_t kDirectAlignment = 4096;  // offset, length and address of O_DIRECT reads
constexpr std::size_t kBlockAlignment = 64;     // what the pool guarantees

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
  if (read_bytes_ == 0) {
    throw std::logic_error("UringReader: chunk_bytes " + std::to_string(options_.chunk_bytes) +
                           " leaves no room for a read: kMinChunkBytes is too small");
  }

  InputFiles list = list_input_files(paths, options_.keep_going);
  errors_ = std::move(list.errors);
  for (InputFile& file : list.files) {
    files_.push_back({.size = file.size, .read_limit = file.size});
    total_bytes_ += file.size;
    paths_.push_back(std::move(file.path));
  }

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

void UringReader::add_error(const std::string& path, int error, const std::string& what) {
  if (!options_.keep_going) throw std::system_error(error, std::generic_category(), what);
  errors_.push_back({path, std::error_code(error, std::generic_category()), what});
}

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
        throw std::system_error(blocked_error_, "UringReader: " + blocked_what_);
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

}  // namespace ringfork
