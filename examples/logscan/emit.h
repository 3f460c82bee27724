// What a logscan run ends with: the report on stdout (JSON or table) or, with --partial, a
// partial report file for logscan merge.
#pragma once

#include "cli.h"
#include "report.h"

namespace logscan {

// Prints or writes `report` as `args` ask; returns `status`, or kExitIoError if the output
// could not be written (with a message naming it).
int emit_report(PartialReport&& report, const Arguments& args, int status);

}  // namespace logscan
