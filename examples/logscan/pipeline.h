// The logscan pipeline: the calling process lists the input files and splits each into byte
// ranges of about chunk_bytes; a ringfork::Pool of worker processes reads each range with
// io_uring (the lines that start in it, straight into shared pool blocks) and scans it in
// place into a PartialReport; the caller merges the partials as they come back. Pairing
// across ranges, workers and files happens in those merges. The caller touches no input
// byte, so the workers have the cores to themselves.
//
// Contract: call scan_paths() from the process that owns the ringfork::Runtime (made first
// thing in main). It blocks until every input is scanned or the run fails; nothing waits
// without a bound: a worker that dies fails the run (ScanFailed naming the range's file and
// offsets) instead of hanging or yielding a report that silently lacks that range.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "report.h"
#include "ringfork/runtime.h"

namespace logscan {

// Exit statuses of the logscan command, shared by everything that can fail a run.
enum ExitStatus : int {
  kExitOk = 0,
  kExitIoError = 1,     // a read failed part-way through a file
  kExitBadInput = 2,    // bad usage, or a missing or unreadable path
  kExitWorkerDied = 3,  // a worker process crashed or was killed
};

constexpr std::size_t kMinChunkBytes = 256;
constexpr std::size_t kMaxChunkBytes = std::size_t{64} << 20;  // the pool's largest block
constexpr std::size_t kMinDirectChunkBytes = 16384;  // UringReaderOptions::direct_io's least

struct PipelineOptions {
  unsigned jobs = 1;  // worker processes
  // Bytes of a range (a worker's task) and of a worker's read buffer, 256 B .. 64 MiB.
  // 4 MiB: 16 MiB ranges measured no less CPU in the merging parent (its cost is the
  // records that never pair, not the ranges' edges), and smaller ranges even out the end of
  // a run between workers.
  std::size_t chunk_bytes = std::size_t{4} << 20;
  // Skip unreadable paths, and leave out whole a file whose reading fails, instead of
  // failing the run.
  bool keep_going = false;
  // Read with O_DIRECT, past the page cache: for inputs larger than memory, which would
  // otherwise evict everything else cached. Needs chunk_bytes >= kMinDirectChunkBytes. A
  // filesystem that refuses O_DIRECT (tmpfs) is read through the page cache all the same.
  bool direct_io = false;
  bool progress = false;    // a progress line on stderr
};

// A run that cannot produce a complete report; what() names the cause and the input.
class ScanFailed : public std::runtime_error {
 public:
  ScanFailed(const std::string& what, ExitStatus status)
      : std::runtime_error(what), status_(status) {}
  ExitStatus status() const noexcept { return status_; }

 private:
  ExitStatus status_;
};

struct PipelineResult {
  PartialReport report;              // the files read whole, and only those
  std::vector<std::string> skipped;  // keep_going: one message per path not (fully) read
  ExitStatus status = kExitOk;       // with skipped paths: kExitBadInput or kExitIoError
};

// Scans `paths` (files, or directories read recursively) to one merged PartialReport.
// Throws ScanFailed: a missing or unreadable path (without keep_going), a read error, a
// worker that died; std::invalid_argument for bad options.
PipelineResult scan_paths(ringfork::Runtime& runtime, const std::vector<std::string>& paths,
                          const PipelineOptions& options);

}  // namespace logscan
