#include "pipeline.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <string_view>
#include <system_error>

#include "progress.h"
#include "range_scan.h"
#include "ringfork/input_files.h"
#include "ringfork/pool.h"

namespace logscan {
namespace {

// The reader's messages name themselves ("UringReader: 'x': reading at offset ..."); logscan's
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

// Hands byte ranges of the input files to the workers, which read and scan them, and merges
// their partial reports as they come back. Per byte it does nothing: the reading, the
// kernel's copy included, happens in the workers, so they alone share the cores.
class Pipeline {
 public:
  Pipeline(ringfork::Runtime& runtime, const std::vector<ringfork::InputFile>& files,
           const PipelineOptions& options)
      : files_(files),
        keep_going_(options.keep_going),
        pool_(runtime, static_cast<int>(options.jobs)),
        // Two ranges per worker keep every worker busy; tasks are a few bytes each, and
        // results wait here only until merged.
        max_in_flight_(2 * options.jobs + 2),
        failed_(files.size(), false),
        progress_(options.progress, total_bytes(files)) {}

  void submit(std::uint32_t file, const RangeTask& task) {
    while (in_flight_.size() >= max_in_flight_) collect_oldest();
    in_flight_.push_back({pool_.apply_async(&scan_range, files_[file].path, task), file, task});
  }

  PartialReport finish() {
    while (!in_flight_.empty()) collect_oldest();
    commit_staged_file();
    pool_.close();
    pool_.join();
    progress_.clear();
    return std::move(report_);
  }

  // keep_going: one message per file whose reading failed, and how many such files.
  const std::vector<std::string>& read_failures() const noexcept { return read_failures_; }
  std::uint64_t failed_files() const noexcept { return read_failures_.size(); }

 private:
  struct InFlight {
    ringfork::AsyncResult<RangeOutcome> result;
    std::uint32_t file;
    RangeTask task;
  };

  static std::uint64_t total_bytes(const std::vector<ringfork::InputFile>& files) {
    std::uint64_t total = 0;
    for (const ringfork::InputFile& file : files) total += file.size;
    return total;
  }

  // Waits for the oldest range (workers take ranges in order, so it is usually the first to
  // finish) and merges its partial report. A dead worker fails the run, naming its range.
  void collect_oldest() {
    InFlight oldest = std::move(in_flight_.front());
    in_flight_.pop_front();
    RangeOutcome outcome;
    try {
      outcome = oldest.result.get();
    } catch (const ringfork::WorkerCrashed& crash) {
      throw ScanFailed("a worker " + describe_exit(crash.exit_code()) + " while scanning " +
                           where(oldest) + "; no report, since it would lack that range",
                       kExitWorkerDied);
    } catch (const ringfork::RemoteError& error) {
      throw ScanFailed("a worker failed while scanning " + where(oldest) + ": " + error.what(),
                       kExitWorkerDied);
    }
    if (keep_going_) {
      stage(oldest.file, outcome);
    } else if (!outcome.read_error.empty()) {
      throw ScanFailed(without_reader_prefix(std::move(outcome.read_error)), kExitIoError);
    } else {
      report_.merge_encoded(outcome.partial);
    }
    done_bytes_ += oldest.task.length;
    progress_.update(done_bytes_);
  }

  // keep_going: a file whose reading failed is left out of the report whole (its lines read
  // before the error too), as `files` leaves it out. Ranges come back in the order they were
  // handed out, file after file, so a file's ranges merge into file_report_ first, which
  // joins the report when the next file's first range comes back (or at the end) unless one
  // of its ranges failed.
  void stage(std::uint32_t file, RangeOutcome& outcome) {
    if (file != staged_file_) {
      commit_staged_file();
      staged_file_ = file;
    }
    if (failed_[file]) return;  // a later range of a file already left out
    if (!outcome.read_error.empty()) {
      failed_[file] = true;
      read_failures_.push_back(without_reader_prefix(std::move(outcome.read_error)));
      file_report_.clear();
      return;
    }
    file_report_.merge_encoded(outcome.partial);
  }

  void commit_staged_file() {
    if (staged_file_ != kNoFile && !failed_[staged_file_]) report_.merge(std::move(file_report_));
    file_report_.clear();
    staged_file_ = kNoFile;
  }

  std::string where(const InFlight& range) const {
    return "'" + files_[range.file].path + "' bytes " + std::to_string(range.task.offset) + ".." +
           std::to_string(range.task.offset + range.task.length);
  }

  const std::vector<ringfork::InputFile>& files_;
  const bool keep_going_;
  ringfork::Pool pool_;
  const std::size_t max_in_flight_;
  std::deque<InFlight> in_flight_;
  std::vector<bool> failed_;  // per file: its reading failed (keep_going)
  std::vector<std::string> read_failures_;
  PartialReport report_;
  static constexpr std::uint32_t kNoFile = ~std::uint32_t{0};
  std::uint32_t staged_file_ = kNoFile;  // keep_going: the file file_report_ holds ranges of
  PartialReport file_report_;
  std::uint64_t done_bytes_ = 0;
  ProgressLine progress_;
};

}  // namespace

PipelineResult scan_paths(ringfork::Runtime& runtime, const std::vector<std::string>& paths,
                          const PipelineOptions& options) {
  if (options.jobs == 0) throw std::invalid_argument("logscan: -j must be at least 1");
  // The workers' readers check the same bounds, but only once a range reaches them.
  if (options.chunk_bytes < kMinChunkBytes || options.chunk_bytes > kMaxChunkBytes) {
    throw std::invalid_argument("logscan: --chunk-bytes " + std::to_string(options.chunk_bytes) +
                                ": give " + std::to_string(kMinChunkBytes) + ".." +
                                std::to_string(kMaxChunkBytes));
  }
  if (options.direct_io && options.chunk_bytes < kMinDirectChunkBytes) {
    throw std::invalid_argument("logscan: --direct needs --chunk-bytes " +
                                std::to_string(kMinDirectChunkBytes) + " or more");
  }
  ringfork::InputFiles inputs;
  try {
    inputs = ringfork::list_input_files(paths, options.keep_going);
  } catch (const std::system_error& error) {
    throw ScanFailed(error.what(), kExitBadInput);
  }
  PipelineResult result;
  for (const ringfork::InputPathError& error : inputs.errors) {
    result.skipped.push_back(error.message + ": " + error.error.message());
    result.status = kExitBadInput;
  }

  Pipeline pipeline(runtime, inputs.files, options);
  for (std::uint32_t file = 0; file < inputs.files.size(); ++file) {
    const ringfork::InputFile& input = inputs.files[file];
    const std::uint64_t size = input.size;
    for (std::uint64_t offset = 0; offset < size; offset += options.chunk_bytes) {
      pipeline.submit(file, {.file_size = size,
                             .offset = offset,
                             .length = std::min<std::uint64_t>(options.chunk_bytes, size - offset),
                             .read_bytes = options.chunk_bytes,
                             .direct_io = options.direct_io,
                             .device = input.device,
                             .inode = input.inode});
    }
  }
  result.report = pipeline.finish();
  result.report.files = inputs.files.size() - pipeline.failed_files();
  for (const std::string& failure : pipeline.read_failures()) {
    result.skipped.push_back(failure);
    if (result.status == kExitOk) result.status = kExitIoError;
  }
  return result;
}

}  // namespace logscan
