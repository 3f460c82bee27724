// UringReader: reads files through io_uring, several reads in flight, straight into chunk
// buffers from a shared BlockPool, cut at line ends so consumers parse whole lines in place.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "ringfork/block_pool.h"
#include "ringfork/input_files.h"
#include "ringfork/segment.h"

struct io_uring;  // liburing's ring; kept out of this header

namespace ringfork {

// Registered buffers spare O_DIRECT reads the page pinning of every read (measured ~15 %
// faster here), but make page-cache reads slower: the kernel copies into a registered buffer
// page by page (measured 2x slower than a plain read on Linux 6.18). Hence the default.
enum class UringFixedBuffers {
  kNever,
  kForDirectIo,  // for files opened with O_DIRECT; page-cache reads stay plain
  kAlways,
};

struct UringReaderOptions {
  // Bytes of each read buffer, headroom for the carried line tail included (a block of the
  // smallest pool class that fits is taken per buffer: make it a class size to waste none).
  // At least 256 B (16 KiB with direct_io), at most the pool's largest class.
  std::size_t chunk_bytes = std::size_t{8} << 20;
  // Reads kept in flight, 1..64.
  unsigned queue_depth = 4;
  // When reads go to buffers registered with the ring (io_uring_register_buffers,
  // IORING_OP_READ_FIXED): see UringFixedBuffers. If the kernel refuses to register (e.g.
  // RLIMIT_MEMLOCK), plain reads are used instead; mode() says which is in use.
  UringFixedBuffers fixed_buffers = UringFixedBuffers::kForDirectIo;
  // Open files with O_DIRECT (inputs larger than the page cache). A file whose filesystem
  // refuses it is read through the page cache instead; stats().direct_fallbacks counts them.
  bool direct_io = false;
  // false: a missing or unreadable path throws (from the constructor, or from next() when it
  // fails later). true: it is recorded in errors() and the other files are still read.
  bool keep_going = false;
  // Longest line delivered whole; 0 means the pool's largest class. A longer line arrives as
  // several chunks, each but the last flagged continued().
  std::size_t max_line_bytes = 0;
  // Longest wait for any read to complete before next() throws ETIMEDOUT (a hung device).
  std::chrono::milliseconds io_timeout{60'000};
};

// One delivered piece of a file: whole lines (except as noted below), in a pool block.
// Trivially copyable with fixed-width fields, so it may be sent to another process (through a
// Queue<UringChunk>) that maps the same segment; whoever ends up with it frees `block`.
struct UringChunk {
  static constexpr std::uint32_t kLastInFile = 1;  // no more chunks of this file follow
  static constexpr std::uint32_t kContinued = 2;   // its last line goes on in the next chunk

  std::uint32_t file = 0;  // index into UringReader::files()
  std::uint32_t flags = 0;
  std::uint64_t file_offset = 0;  // where data's first byte sits in the file
  std::uint64_t length = 0;       // bytes at data
  std::uint64_t block = 0;        // pool block holding the bytes: free it when done
  std::uint64_t data = 0;         // segment offset of the first byte (inside block)

  bool last_in_file() const noexcept { return (flags & kLastInFile) != 0; }
  bool continued() const noexcept { return (flags & kContinued) != 0; }

  // The bytes, bounds-checked against `segment` (a chunk may come from another process, so
  // it is not trusted); throws std::out_of_range if they do not lie inside it.
  std::string_view text(const Segment& segment) const {
    if (length == 0) return {};
    const void* bytes = segment.try_bytes(data, length, 1);
    if (bytes == nullptr) {
      throw std::out_of_range("UringChunk of " + std::to_string(length) +
                              " bytes at segment offset " + std::to_string(data) +
                              " lies outside the segment");
    }
    return {static_cast<const char*>(bytes), length};
  }
};
static_assert(std::is_trivially_copyable_v<UringChunk> && std::is_standard_layout_v<UringChunk>,
              "chunks are sent to other processes");

enum class UringReadMode {
  kFixedBuffers,  // buffers registered with the ring: IORING_OP_READ_FIXED where the options
                  // ask for it
  kPlainReads,    // IORING_OP_READ only
};
const char* to_string(UringReadMode mode) noexcept;

using UringReadError = InputPathError;

// The lines read_range() delivers: those whose first byte lies in [offset, offset + length).
// Ranges that tile a file hand out each of its lines exactly once, however long the line.
struct UringLineRange {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  // When not 0 (InputFile::device and inode): the file must still be the one listed, else
  // next() fails with ESTALE (it was rotated or replaced meanwhile).
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
};

struct UringReaderStats {
  std::uint64_t reads_submitted = 0;   // including resubmissions of short reads
  std::uint64_t fixed_reads = 0;       // of which IORING_OP_READ_FIXED
  std::uint64_t short_reads = 0;       // completed with fewer bytes than asked, resubmitted
  std::uint64_t registrations = 0;     // buffer table updates (a new block took a slot)
  std::uint64_t direct_files = 0;      // files read with O_DIRECT
  std::uint64_t direct_fallbacks = 0;  // files whose filesystem refused O_DIRECT
  std::uint64_t fuse_files = 0;        // files on FUSE, read at most 128 KiB at a time
  std::uint64_t chunks = 0;            // chunks delivered
  std::uint64_t long_line_bytes = 0;   // bytes copied to assemble lines longer than a buffer
  unsigned max_in_flight = 0;          // high-water mark of reads in flight at once
};

// Contract. A UringReader belongs to the process (and thread) that made it: an io_uring
// instance is the creating process's, so make the reader after fork(), in the process that
// reads; next() from another process throws std::logic_error. Not thread-safe.
//
// Paths are files or directories, expanded by list_input_files() (input_files.h).
// Files are read in the order given, each up to the size it had when the reader was made
// (total_bytes()). A file of size 0 yields no chunk; every other file yields one or more, the last
// flagged last_in_file().
//
// Chunks: every chunk but a file's last ends with '\n' and holds whole lines; the tail after
// the last '\n' of a read is carried to the front of the next buffer of the same file. A line
// longer than a buffer is assembled in a larger pool block (one copy); a line longer than
// max_line_bytes arrives as pieces flagged continued(). Bytes are delivered as they are:
// CRLF, NUL and invalid UTF-8 included. Chunks of a file arrive in order, file_offset rising
// with no gap.
//
// Reads in flight: the reader reads ahead (up to queue_depth reads) whenever the oldest read
// has not completed yet, i.e. while the device is busy. A read the page cache serves completes
// inside its submission; then nothing is waited for, one buffer is in use at a time and the
// copy's destination stays in the CPU cache (which is what makes page-cached reading as fast
// as read(2)). stats().max_in_flight shows how far it read ahead.
//
// Byte ranges: read_range() points a reader (made with no paths, or done with its files) at
// one range of one file, so that several processes share a file's lines between them, each
// with its own reader kept across ranges. A range read starts one byte before the range, to
// see whether its first byte begins a line (else the partial line is skipped), and goes on
// past the range's end, a little at a time, until the newline that ends its last line. With
// direct_io its reads start and end on O_DIRECT's alignment around those bytes instead.
//
// Blocking: next() waits only for reads it has submitted, at most io_timeout for each.
// Memory: at most queue_depth buffers plus one long-line block are held by the reader; the
// chunks it has delivered are the caller's, to return with release() (or pool.free(block) in
// any process). If the pool has no block and no read is in flight, next() throws ENOMEM
// rather than waiting for consumers.
//
// Throws: std::invalid_argument for bad options; std::system_error when io_uring cannot be
// set up, or for a missing/unreadable path (naming it) unless keep_going; from next(),
// std::system_error for a read error (naming the path and offset; the reader then skips that
// file and may be called again), pool exhaustion or a timeout.
class UringReader {
 public:
  UringReader(BlockPool pool, const std::vector<std::string>& paths,
              const UringReaderOptions& options = {});
  ~UringReader();
  UringReader(const UringReader&) = delete;
  UringReader& operator=(const UringReader&) = delete;

  // The next chunk in file order, or nullopt when every file is done.
  std::optional<UringChunk> next();
  // From now on next() delivers the lines of `path` that start in `range` (see UringLineRange),
  // reading it as a file of `file_size` bytes, then nullopt; files() is {path}. Call only
  // when next() has nothing left (it returned nullopt, or was never called on a reader made
  // with no paths): throws std::logic_error otherwise. An unreadable path throws from next(),
  // and so does a file shorter than `file_size` when opened or read (ESTALE, naming it: it
  // was truncated or replaced since it was measured, and the range's lines are not all there).
  // A path that is no longer a regular file (a FIFO put in its place) fails likewise, in
  // any mode, instead of blocking the open.
  void read_range(const std::string& path, std::uint64_t file_size, UringLineRange range);

  // Returns a delivered chunk's block to the pool (same as pool.free(chunk.block)).
  void release(const UringChunk& chunk) noexcept;

  // The chunk's bytes in this process (the reader's segment).
  const char* data(const UringChunk& chunk) const noexcept {
    return reinterpret_cast<const char*>(segment_base_ + chunk.data);
  }
  std::string_view text(const UringChunk& chunk) const noexcept {
    return {data(chunk), static_cast<std::size_t>(chunk.length)};
  }

  // The regular files being read, directories expanded; chunk.file indexes this.
  const std::vector<std::string>& files() const noexcept { return paths_; }
  const std::string& path(std::uint32_t file) const { return paths_.at(file); }
  std::uint64_t file_size(std::uint32_t file) const { return files_.at(file).size; }
  // Sum of the file sizes, and the bytes of them read so far (for progress and ETA).
  std::uint64_t total_bytes() const noexcept { return total_bytes_; }
  std::uint64_t bytes_read() const noexcept { return bytes_read_; }

  UringReadMode mode() const noexcept { return mode_; }
  // Why fixed buffers are not in use (the registration's error), empty if they are.
  std::error_code fixed_buffers_error() const noexcept { return fixed_error_; }
  const UringReaderStats& stats() const noexcept { return stats_; }
  // Paths skipped under keep_going, with their errors.
  const std::vector<UringReadError>& errors() const noexcept { return errors_; }
  const UringReaderOptions& options() const noexcept { return options_; }

 private:
  struct File {
    std::uint64_t size = 0;
    std::uint64_t next_read = 0;   // file offset of the next read to issue
    std::uint64_t read_limit = 0;  // reads stop here (size, or a range's end and overrun)
    int fd = -1;
    unsigned reads_pending = 0;  // issued and not yet consumed
    std::size_t max_read = 0;  // 0, or the most one read may ask for (see open_file)
    bool direct = false;
    bool done = false;  // ended (normally, truncated or failed): skip its reads
  };
  struct Slot {
    std::uint64_t block = 0;      // 0 when the slot holds no buffer
    std::byte* target = nullptr;  // read target; the headroom for the carry lies before it
    std::uint32_t file = 0;
    std::uint64_t file_offset = 0;  // of target[0]
    std::size_t planned = 0;        // file bytes this read covers
    std::size_t filled = 0;         // bytes of them read so far
    std::size_t requested = 0;      // bytes the read in flight asked for
    int result = 0;
    int registered = -1;  // index in the fixed-buffer table, -1 for a plain read
    unsigned retries = 0;
    bool direct = false;
    bool in_flight = false;
  };
  struct LongLine {
    std::uint64_t block = 0;
    std::size_t capacity = 0;
    std::size_t used = 0;
  };
  // The range read_range() asked for, while it is being read.
  struct Range {
    bool active = false;
    bool skipping = false;      // the first line start in the range is not found yet
    std::uint64_t lead = 0;     // bytes read before offset - 1 (O_DIRECT reads start aligned)
    std::uint64_t end = 0;      // lines starting before here (and in the range) are delivered
    std::uint64_t overrun = 0;  // how far past end the next extension of read_limit reaches
    std::uint64_t device = 0;   // the file's identity when listed (0: not checked)
    std::uint64_t inode = 0;
  };
  struct Registered {
    std::byte* address = nullptr;
    std::uint64_t last_use = 0;
    unsigned in_flight = 0;
  };

  void add_error(const std::string& path, int error, const std::string& what);
  void fill_pipeline(std::size_t target);
  bool open_file(std::uint32_t index);
  void close_file(File& file) noexcept;
  bool take_buffer(Slot& slot);
  void prepare_read(std::uint32_t slot_index);
  void submit();
  int wait(std::chrono::milliseconds timeout) noexcept;
  void collect() noexcept;
  void finish_head();
  int drop_direct(Slot& slot);
  void abandon_file(std::uint32_t file) noexcept;
  void fail_file(std::uint32_t file, int error, const std::string& what);
  bool fit_to_range(Slot& slot, bool& last);
  void consume(Slot& slot, bool last);
  void cut_in_place(Slot& slot, std::byte* begin, std::size_t length, bool last);
  void carry(const std::byte* tail, std::size_t length);
  void append_long(const std::byte* bytes, std::size_t length);
  void grow_long(std::size_t request);
  void emit(std::uint64_t block, const std::byte* begin, std::size_t length, std::uint32_t flags);
  void emit_long(std::uint32_t flags);
  int register_buffer(std::byte* address);
  std::byte* at(std::uint64_t offset) const noexcept { return segment_base_ + offset; }

  BlockPool pool_;
  std::byte* segment_base_;
  UringReaderOptions options_;
  pid_t owner_pid_;
  std::unique_ptr<io_uring> ring_;

  std::vector<std::string> paths_;
  std::vector<File> files_;
  std::uint64_t total_bytes_ = 0;
  std::uint64_t bytes_read_ = 0;
  std::vector<UringReadError> errors_;

  // Buffer geometry: [block, block + headroom) takes the carry, reads go to the aligned
  // target after it, read_bytes at a time.
  std::size_t headroom_ = 0;
  std::size_t read_bytes_ = 0;
  std::size_t alignment_ = 64;
  std::size_t max_piece_ = 0;

  std::vector<Slot> slots_;
  std::vector<std::uint32_t> idle_slots_;
  std::deque<std::uint32_t> in_order_;  // issued slots, oldest first: chunks leave in this order
  unsigned in_flight_ = 0;
  std::error_code pool_error_;                 // why the last buffer could not be had
  std::uint32_t next_file_ = 0;                // first file whose reads are not all issued
  std::optional<std::uint32_t> blocked_file_;  // could not be opened: throw when reached
  std::error_code blocked_error_;
  std::string blocked_what_;  // what failed, naming the file

  std::uint32_t head_file_ = UINT32_MAX;  // file of the chunks being emitted
  std::uint64_t emit_offset_ = 0;         // file offset of the next byte to emit
  std::vector<std::byte> carry_;          // tail of the last read, when it fits the headroom
  LongLine long_;                         // tail of the last read, when it did not
  std::deque<UringChunk> ready_;
  Range range_;

  UringReadMode mode_ = UringReadMode::kPlainReads;
  std::error_code fixed_error_;
  std::vector<Registered> registered_;
  std::uint64_t use_clock_ = 0;
  UringReaderStats stats_;
};

}  // namespace ringfork
