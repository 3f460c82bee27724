#include "pipeline.h"

#include <csignal>
#include <cstdlib>
#include <deque>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>

#include "progress.h"
#include "ringfork/pool.h"
#include "ringfork/uring_reader.h"
#include "scan.h"

namespace logscan {
namespace {

using ringfork::UringChunk;

// Fault injection for the crash tests: a worker handed the chunk that holds this byte offset
// (of any file) kills itself, as a worker hit by a bug or the OOM killer would die.
std::optional<std::uint64_t> kill_offset_for_testing() {
  const char* value = std::getenv("LOGSCAN_TEST_KILL_WORKER_AT");
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::strtoull(value, nullptr, 10);
}

// Bytes after the chunk that still belong to its block: the scanner may read (never use)
// them, which lets simdjson parse payloads in place. Zero when the chunk's numbers do not
// describe a place inside its block (it came from another process: rule 2, trust nothing).
std::size_t padding_after(const ringfork::BlockPool& pool, const UringChunk& chunk) {
  const std::uint64_t block_bytes = pool.block_bytes(chunk.block);
  const std::uint64_t block_end = chunk.block + block_bytes;
  const std::uint64_t chunk_end = chunk.data + chunk.length;
  if (block_bytes == 0 || chunk.data < chunk.block || chunk_end > block_end) return 0;
  return static_cast<std::size_t>(block_end - chunk_end);
}

// Runs in a worker process: scans one chunk in place and returns its partial report, encoded.
// The reading process frees the block when the result is back, so blocks return to its
// cache, still mapped and warm, and a worker that dies cannot leak one.
std::string scan_chunk(UringChunk chunk) {
  static const std::optional<std::uint64_t> kill_at = kill_offset_for_testing();
  if (kill_at && *kill_at >= chunk.file_offset && *kill_at - chunk.file_offset < chunk.length) {
    std::raise(SIGKILL);
  }
  ringfork::Runtime& runtime = *ringfork::Runtime::current();
  // One per worker process, kept across chunks: its parsers reuse their buffers.
  static Scanner scanner;
  PartialReport partial;
  scanner.scan(chunk.text(runtime.segment()), partial, padding_after(runtime.pool(), chunk));
  return partial.encode();
}

// The reader's messages name themselves ("UringReader: cannot read 'x': ..."); logscan's
// user needs only the path and the cause.
std::string without_reader_prefix(std::string message) {
  constexpr std::string_view kPrefix = "UringReader: ";
  if (std::string_view(message).starts_with(kPrefix)) message.erase(0, kPrefix.size());
  return message;
}

std::string describe_exit(int exit_code) {
  if (exit_code < 0) {
    const char* name = sigabbrev_np(-exit_code);
    return "was killed by signal " + std::to_string(-exit_code) +
           (name != nullptr ? std::string(" (SIG") + name + ")" : std::string());
  }
  return "exited with status " + std::to_string(exit_code);
}

// Lines longer than the reader's longest whole line arrive in pieces (UringChunk::continued);
// they are rare enough to join and scan here, in the reading process.
class LongLineJoiner {
 public:
  bool active() const noexcept { return !line_.empty(); }
  void drop() {
    line_.clear();
    line_.shrink_to_fit();
  }

  // Takes the pieces of a long line. Returns the part of `chunk` after the line's end that
  // is still to be scanned (empty if none).
  std::string_view add(std::string_view text, const UringChunk& chunk, PartialReport& into) {
    if (chunk.continued()) {
      line_.append(text);
      return {};
    }
    const std::size_t end = text.find('\n');
    const std::size_t take = end == std::string_view::npos ? text.size() : end + 1;
    line_.append(text.substr(0, take));
    scanner_.scan(line_, into);
    drop();  // a 100 MB line should not stay resident for the rest of the run
    return text.substr(take);
  }

 private:
  std::string line_;
  Scanner scanner_;
};

class Pipeline {
 public:
  Pipeline(ringfork::Runtime& runtime, ringfork::UringReader& reader,
           const PipelineOptions& options)
      : reader_(reader),
        pool_(runtime, static_cast<int>(options.jobs)),
        // Two chunks per worker keep every worker busy while the reader works ahead; more
        // would only hold memory.
        max_in_flight_(2 * options.jobs + 2),
        progress_(options.progress, reader.total_bytes()) {}

  // Hands one chunk (or, after a long line ends, its rest) to a worker.
  void submit(UringChunk chunk) {
    while (in_flight_.size() >= max_in_flight_) collect_oldest();
    in_flight_.push_back({pool_.apply_async(&scan_chunk, chunk), chunk});
  }

  // Scans the pieces of a line too long for one chunk; the chunk's rest goes to a worker.
  void add_long_line_piece(UringChunk chunk) {
    const std::string_view text = reader_.text(chunk);
    const std::string_view rest = joiner_.add(text, chunk, report_);
    done_bytes_ += text.size() - rest.size();
    if (rest.empty()) {
      reader_.release(chunk);
      return;
    }
    chunk.data += text.size() - rest.size();
    chunk.file_offset += text.size() - rest.size();
    chunk.length = rest.size();
    submit(chunk);
  }

  bool in_long_line(const UringChunk& chunk) const noexcept {
    return chunk.continued() || joiner_.active();
  }
  // The file being read failed: a long line it had begun will not be finished.
  void drop_long_line() { joiner_.drop(); }

  PartialReport finish() {
    while (!in_flight_.empty()) collect_oldest();
    pool_.close();
    pool_.join();
    progress_.clear();
    return std::move(report_);
  }

 private:
  struct InFlight {
    ringfork::AsyncResult<std::string> result;
    UringChunk chunk;
  };

  // Waits for the oldest chunk (workers take chunks in order, so it is usually the first to
  // finish) and merges its partial report. A dead worker fails the run, naming its chunk.
  void collect_oldest() {
    InFlight oldest = std::move(in_flight_.front());
    in_flight_.pop_front();
    struct Release {  // whatever the outcome: a crashed worker's chunk is freed too
      ringfork::UringReader& reader;
      const UringChunk& chunk;
      ~Release() { reader.release(chunk); }
    } release{reader_, oldest.chunk};
    std::string encoded;
    try {
      encoded = oldest.result.get();
    } catch (const ringfork::WorkerCrashed& crash) {
      throw ScanFailed("a worker " + describe_exit(crash.exit_code()) + " while scanning " +
                           where(oldest.chunk) + "; no report, since it would lack that chunk",
                       kExitWorkerDied);
    } catch (const ringfork::RemoteError& error) {
      throw ScanFailed(
          "a worker failed while scanning " + where(oldest.chunk) + ": " + error.what(),
          kExitWorkerDied);
    }
    report_.merge_encoded(encoded);
    done_bytes_ += oldest.chunk.length;
    progress_.update(done_bytes_);
  }

  std::string where(const UringChunk& chunk) const {
    return "'" + reader_.path(chunk.file) + "' bytes " + std::to_string(chunk.file_offset) + ".." +
           std::to_string(chunk.file_offset + chunk.length);
  }

  ringfork::UringReader& reader_;
  ringfork::Pool pool_;
  const std::size_t max_in_flight_;
  std::deque<InFlight> in_flight_;
  LongLineJoiner joiner_;
  PartialReport report_;
  std::uint64_t done_bytes_ = 0;
  ProgressLine progress_;
};

}  // namespace

PipelineResult scan_paths(ringfork::Runtime& runtime, const std::vector<std::string>& paths,
                          const PipelineOptions& options) {
  if (options.jobs == 0) throw std::invalid_argument("logscan: -j must be at least 1");
  const ringfork::UringReaderOptions reader_options{.chunk_bytes = options.chunk_bytes,
                                                    .keep_going = options.keep_going};
  std::optional<ringfork::UringReader> reader;
  try {
    reader.emplace(runtime.pool(), paths, reader_options);
  } catch (const std::system_error& error) {
    throw ScanFailed(without_reader_prefix(error.what()), kExitBadInput);
  }
  PipelineResult result;
  for (const ringfork::UringReadError& error : reader->errors()) {
    result.skipped.push_back(without_reader_prefix(error.message + ": " + error.error.message()));
    result.status = kExitBadInput;
  }

  Pipeline pipeline(runtime, *reader, options);
  std::uint64_t bytes = 0;
  std::uint64_t failed_files = 0;
  for (;;) {
    std::optional<UringChunk> chunk;
    try {
      chunk = reader->next();
    } catch (const std::system_error& error) {
      // The reader has dropped the file and goes on with the next; the report covers the
      // failed file's bytes up to the error, which the exit status says.
      if (!options.keep_going) throw ScanFailed(without_reader_prefix(error.what()), kExitIoError);
      result.skipped.push_back(without_reader_prefix(error.what()));
      if (result.status == kExitOk) result.status = kExitIoError;
      pipeline.drop_long_line();
      ++failed_files;
      continue;
    }
    if (!chunk) break;
    bytes += chunk->length;
    if (pipeline.in_long_line(*chunk)) {
      pipeline.add_long_line_piece(*chunk);
    } else {
      pipeline.submit(*chunk);
    }
  }
  result.report = pipeline.finish();
  result.report.files = reader->files().size() - failed_files;
  result.report.bytes = bytes;
  return result;
}

}  // namespace logscan
