#include "range_scan.h"

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

#include "line_parser.h"
#include "report.h"
#include "ringfork/runtime.h"
#include "ringfork/uring_reader.h"
#include "scan.h"

namespace logscan {
namespace {

using ringfork::UringChunk;

// Fault injection for the crash tests: a worker handed the range that holds this byte offset
// (of any file) kills itself, as a worker hit by a bug or the OOM killer would die.
std::optional<std::uint64_t> kill_offset_for_testing() {
  const char* value = std::getenv("LOGSCAN_TEST_KILL_WORKER_AT");
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::strtoull(value, nullptr, 10);
}

// Bytes after the chunk that still belong to its block: the scanner may read (never use)
// them, which lets simdjson parse payloads in place. Zero when the chunk's numbers do not
// describe a place inside its block (rule 2: trust nothing read from shared memory).
std::size_t padding_after(const ringfork::BlockPool& pool, const UringChunk& chunk) {
  const std::uint64_t block_bytes = pool.block_bytes(chunk.block);
  const std::uint64_t block_end = chunk.block + block_bytes;
  const std::uint64_t chunk_end = chunk.data + chunk.length;
  if (block_bytes == 0 || chunk.data < chunk.block || chunk_end > block_end) return 0;
  return static_cast<std::size_t>(block_end - chunk_end);
}

// Lines longer than the reader's longest whole line arrive in pieces (UringChunk::continued);
// they are rare enough to join here before scanning. A line whose first piece already breaks
// the timestamp rule is malformed whatever follows (a multi-GB run of NULs after a crash, say):
// only that first piece's failing prefix is kept, so such a line costs no memory.
class LongLineJoiner {
 public:
  bool active() const noexcept { return !line_.empty(); }
  void drop() {
    line_.clear();
    line_.shrink_to_fit();  // a 100 MB line should not stay resident for the rest of the run
    hopeless_ = false;
  }

  // Takes the pieces of a long line. Returns the part of `text` after the line's end that
  // is still to be scanned (empty if none).
  std::string_view add(std::string_view text, const UringChunk& chunk, Scanner& scanner,
                       PartialReport& into) {
    if (line_.empty() && chunk.continued() && breaks_timestamp_rule(text)) {
      line_.assign(text.substr(0, kTimestampBytes + 1));  // malformed, as the whole line is
      hopeless_ = true;
    }
    const std::size_t end = chunk.continued() ? std::string_view::npos : text.find('\n');
    const std::size_t take = end == std::string_view::npos ? text.size() : end + 1;
    if (!hopeless_) line_.append(text.substr(0, take));
    if (chunk.continued()) return {};
    if (hopeless_) line_ += '\n';
    scanner.scan(line_, into);
    drop();
    return text.substr(take);
  }

 private:
  static constexpr std::size_t kTimestampBytes = 24;  // YYYY-MM-DDTHH:MM:SS.mmmZ

  // The first kTimestampBytes + 1 bytes decide it: a timestamp, then a space.
  static bool breaks_timestamp_rule(std::string_view piece) {
    std::int64_t ms = 0;
    return piece.size() > kTimestampBytes &&
           (piece[kTimestampBytes] != ' ' || !parse_timestamp(piece.substr(0, kTimestampBytes), ms));
  }

  std::string line_;
  bool hopeless_ = false;
};

// One per worker process, made on its first range (after the fork, as io_uring wants) and
// kept: its ring, slots and the blocks they hold serve every later range. Emptied after a read
// error: that reader may still have reads in flight, which its destructor waits for.
std::optional<ringfork::UringReader>& worker_reader() {
  static std::optional<ringfork::UringReader> reader;
  return reader;
}

ringfork::UringReader& reader_for(const RangeTask& task) {
  std::optional<ringfork::UringReader>& reader = worker_reader();
  if (!reader || reader->options().chunk_bytes != task.read_bytes ||
      reader->options().direct_io != task.direct_io) {
    reader.reset();
    reader.emplace(ringfork::Runtime::current()->pool(), std::vector<std::string>{},
                   ringfork::UringReaderOptions{.chunk_bytes = task.read_bytes,
                                                .direct_io = task.direct_io});
  }
  return *reader;
}

}  // namespace

RangeOutcome scan_range(std::string path, RangeTask task) {
  static const std::optional<std::uint64_t> kill_at = kill_offset_for_testing();
  if (kill_at && *kill_at >= task.offset && *kill_at - task.offset < task.length) {
    std::raise(SIGKILL);
  }
  ringfork::Runtime& runtime = *ringfork::Runtime::current();
  // Kept across ranges: its parsers reuse their buffers.
  static Scanner scanner;
  LongLineJoiner joiner;
  // Kept across ranges, like the scanner: its tables grow once per worker, not per range.
  static PartialReport partial;
  partial.clear();
  RangeOutcome outcome;
  ringfork::UringReader& reader = reader_for(task);
  try {
    reader.read_range(path, task.file_size,
                      {.offset = task.offset,
                       .length = task.length,
                       .device = task.device,
                       .inode = task.inode});
    while (const std::optional<UringChunk> chunk = reader.next()) {
      struct Release {  // whatever the scan does, the block goes back to the pool
        ringfork::UringReader& reader;
        const UringChunk& chunk;
        ~Release() { reader.release(chunk); }
      } release{reader, *chunk};
      std::string_view text = reader.text(*chunk);
      partial.bytes += text.size();
      if (chunk->continued() || joiner.active()) {
        text = joiner.add(text, *chunk, scanner, partial);
        if (text.empty()) continue;
      }
      scanner.scan(text, partial, padding_after(runtime.pool(), *chunk));
    }
  } catch (const std::system_error& error) {
    outcome.read_error = error.what();
    worker_reader().reset();
  }
  outcome.partial = partial.encode();
  return outcome;
}

}  // namespace logscan
