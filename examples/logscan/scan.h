// Scanning: a buffer of whole lines -> a PartialReport. The entry point a pipeline worker
// calls once per chunk.
//
// A Scanner owns the reusable parsers (see PayloadChecker), so it belongs to one thread
// at a time; make one per worker and keep it. scan() never throws but std::bad_alloc.
#pragma once

#include <cstddef>
#include <string_view>

#include "payload_check.h"
#include "report.h"

namespace logscan {

class Scanner {
 public:
  // Adds every line of `lines` to `into`: lines, blank, malformed, levels and the call
  // records. `lines` holds whole lines, each ending in '\n' except perhaps the last, which
  // is then the last line of its file (an unterminated last line, whose final '\r' stays
  // in the line). A reader therefore cuts chunks only after a '\n' or at a file's end.
  // `readable_after`: bytes after lines.end() the scanner may read (never interpret);
  // with kJsonPadding or more, JSON payloads are parsed in place, with no copy.
  void scan(std::string_view lines, PartialReport& into, std::size_t readable_after = 0);

 private:
  PayloadChecker checker_;
};

}  // namespace logscan
