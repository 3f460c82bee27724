#include "scan.h"

#include <cstring>

#include "line_parser.h"

namespace logscan {

void Scanner::scan(std::string_view lines, PartialReport& into, std::size_t readable_after) {
  const char* const end = lines.data() + lines.size();
  const char* pos = lines.data();
  while (pos < end) {
    const auto* nl =
        static_cast<const char*>(std::memchr(pos, '\n', static_cast<std::size_t>(end - pos)));
    const char* line_end = nl ? nl : end;
    // A '\r' directly before '\n' belongs to the terminator; an unterminated last line
    // keeps its final '\r'.
    if (nl && line_end > pos && line_end[-1] == '\r') --line_end;
    const Record record =
        parse_line(std::string_view(pos, static_cast<std::size_t>(line_end - pos)));
    ++into.lines;
    switch (record.kind) {
      case LineKind::kBlank:
        ++into.blank;
        break;
      case LineKind::kMalformed:
        ++into.malformed;
        break;
      case LineKind::kPlain:
        ++into.levels[static_cast<std::size_t>(record.level)];
        break;
      case LineKind::kCall: {
        ++into.levels[static_cast<std::size_t>(record.level)];
        std::size_t after = 0;
        if (!record.payload.empty()) {
          const char* payload_end = record.payload.data() + record.payload.size();
          after = static_cast<std::size_t>(end - payload_end) + readable_after;
        }
        into.add_call(record, checker_.check(record.payload, after));
        break;
      }
    }
    pos = nl ? nl + 1 : end;
  }
}

}  // namespace logscan
