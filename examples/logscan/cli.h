// logscan's command line: what to do (scan, merge, fleet scan) and how, parsed from argv.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "pipeline.h"

namespace logscan {

inline constexpr const char* kVersion = "0.3.0";

enum class Mode {
  kScan,   // logscan PATH...: scan here
  kMerge,  // logscan merge PARTIAL...: combine partial reports
};

enum class Fleet {
  kNone,
  kMpiLocal,  // --mpi: every rank scans PATHs as they exist on its host
  kMpiSplit,  // --mpi-split: the ranks share one file list (a shared filesystem)
};

struct Arguments {
  Mode mode = Mode::kScan;
  Fleet fleet = Fleet::kNone;
  PipelineOptions pipeline;
  std::string format = "json";
  std::string partial_out;          // --partial OUT: write a partial report instead of the report
  std::vector<std::string> inputs;  // PATHs to scan, or partial files to merge
};

// Parses argv into `args`; returns an exit status when the program should stop now (help,
// version, misuse: the message is printed).
std::optional<int> parse_arguments(int argc, char** argv, Arguments& args);

}  // namespace logscan
