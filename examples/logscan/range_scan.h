// What a pipeline worker does with one task: reads the lines that start in one byte range of
// one file (io_uring, straight into shared pool blocks) and scans them in place into a
// PartialReport. A line belongs to the range that holds its first byte, so ranges that tile
// a file count each line once, and their partials merge exactly (pairs meet in the merges).
//
// Contract: scan_range() runs in a worker process of a ringfork::Pool (it uses the
// Runtime's pool, and keeps one UringReader per process, made there on first use, as an
// io_uring instance must be). A read error is returned in the outcome, not thrown.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "ringfork/serialize.h"

namespace logscan {

struct RangeTask {
  std::uint64_t file_size = 0;  // as listed by the parent: the file is read up to here
  std::uint64_t offset = 0;     // the range: lines starting in [offset, offset + length)
  std::uint64_t length = 0;
  std::uint64_t read_bytes = 0;  // the worker's read buffer size (PipelineOptions::chunk_bytes)
  bool direct_io = false;        // read with O_DIRECT (PipelineOptions::direct_io)
  std::uint64_t device = 0;      // the file's identity as listed (InputFile::device, inode):
  std::uint64_t inode = 0;       // a file rotated since is a read error, not other lines
};
static_assert(std::is_trivially_copyable_v<RangeTask>, "sent to a worker as it is");

struct RangeOutcome {
  std::string partial;     // PartialReport::encode() of the lines scanned; bytes = theirs
  std::string read_error;  // empty, or why reading stopped (naming the path and offset)
};

// Runs in a worker: scans the lines of `path` that start in the task's range.
RangeOutcome scan_range(std::string path, RangeTask task);

}  // namespace logscan

template <>
struct ringfork::Codec<logscan::RangeOutcome> {
  static void encode(ArgWriter& out, const logscan::RangeOutcome& outcome) {
    Codec<std::string>::encode(out, outcome.partial);
    Codec<std::string>::encode(out, outcome.read_error);
  }
  static logscan::RangeOutcome decode(ArgReader& in) {
    logscan::RangeOutcome outcome;
    outcome.partial = Codec<std::string>::decode(in);
    outcome.read_error = Codec<std::string>::decode(in);
    return outcome;
  }
};
