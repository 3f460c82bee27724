#include "emit.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "partial_file.h"

namespace logscan {

int emit_report(PartialReport&& report, const Arguments& args, int status) {
  if (!args.partial_out.empty()) {
    try {
      write_partial_file(args.partial_out, report);
    } catch (const std::system_error& error) {
      std::fprintf(stderr, "logscan: %s\n", error.what());
      return kExitIoError;
    }
    return status;
  }
  const FinalReport final_report = report.finish();
  const std::string text = args.format == "json" ? final_report.to_json() : final_report.to_table();
  // Both checks: a write of a buffer or more goes out at once, and when it fails, stdio
  // drops it, so the flush after it has nothing left to fail on.
  const bool written = std::fwrite(text.data(), 1, text.size(), stdout) == text.size();
  if (!written || std::fflush(stdout) != 0) {
    std::fprintf(stderr, "logscan: cannot write the report: %s\n", std::strerror(errno));
    return kExitIoError;
  }
  return status;
}

}  // namespace logscan
