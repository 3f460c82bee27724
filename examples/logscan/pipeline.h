// The logscan pipeline: an io_uring reader in the calling process feeds chunks of whole lines
// (in shared pool blocks, never copied) to a ringfork::Pool of worker processes, each of which
// scans its chunk in place into a PartialReport; the caller merges the partials as they come
// back. Pairing across chunks, workers and files happens in those merges.
//
// Contract: call scan_paths() from the process that owns the ringfork::Runtime (made first
// thing in main). It blocks until every input is scanned or the run fails; nothing waits
// without a bound: a worker that dies fails the run (ScanFailed naming the chunk's file and
// offset) instead of hanging or yielding a report that silently lacks that chunk.
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

struct PipelineOptions {
  unsigned jobs = 1;  // worker processes
  // Read buffer size, 256 B .. 64 MiB. 4 MiB, not more: the reading process copies each
  // buffer from the page cache, and a smaller destination stays in its CPU cache and needs
  // fewer freshly faulted pages (measured: about a fifth less CPU in the reading process at
  // 2-4 MiB than at 8 MiB, the same -j 2 time at 2 and 4 MiB, for the same report; merging
  // partials costs little per chunk).
  std::size_t chunk_bytes = std::size_t{4} << 20;
  bool keep_going = false;  // skip unreadable paths instead of failing
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
  PartialReport report;              // files and bytes included
  std::vector<std::string> skipped;  // keep_going: one message per path not (fully) read
  ExitStatus status = kExitOk;       // with skipped paths: kExitBadInput or kExitIoError
};

// Scans `paths` (files, or directories read recursively) to one merged PartialReport.
// Throws ScanFailed: a missing or unreadable path (without keep_going), a read error, a
// worker that died; std::invalid_argument for bad options.
PipelineResult scan_paths(ringfork::Runtime& runtime, const std::vector<std::string>& paths,
                          const PipelineOptions& options);

}  // namespace logscan
