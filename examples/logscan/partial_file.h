// Partial report files: what `logscan --partial OUT` writes and `logscan merge` reads, so that
// scans run anywhere (other machines, other schedulers, other days) combine into exactly the
// report of one run over all their inputs.
//
// Layout, version 1 (integers little-endian; the writer refuses to run on a big-endian host):
//   offset  size  field
//        0     8  magic "LSCNPART"
//        8     4  format version (1)
//       12     4  header bytes (40): a reader skips fields a later version appends here
//       16     8  body bytes
//       24     4  CRC-32 (zlib's) of the body
//       28    12  reserved, zero
//       40     -  body: PartialReport::encode(), its own version first, then the sections
//                 counts | calls (name, counts, latency value -> count) | waiting records
//                 (call and req_id, timestamps, which halves were seen), each
//                 length-prefixed
// Not compressed: a partial holds counts, per-call latency histograms (one entry per
// distinct millisecond value) and the unpaired records, a few MB at most for GBs of logs.
#pragma once

#include <stdexcept>
#include <string>

#include "report.h"

namespace logscan {

// A file that is not a readable partial report of this format: what() names the file and
// what is wrong with it (missing, truncated, foreign, corrupted, unknown version).
class BadPartialFile : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes `report` to `path` atomically (a temporary file renamed over it, so a killed run
// never leaves half a file). Throws std::system_error naming the path.
void write_partial_file(const std::string& path, const PartialReport& report);

// Reads and checks a file write_partial_file() made. Throws BadPartialFile.
PartialReport read_partial_file(const std::string& path);

}  // namespace logscan
