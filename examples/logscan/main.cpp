// logscan: analyses application logs (shared/LOGFORMAT.md) over worker processes, merges
// partial reports, and runs across a fleet under OpenMPI. See cli.cpp for the usage.
//
// The ringfork Runtime is made before anything starts a thread (MPI_Init included), since it
// forks the template that workers are forked from.
#include <cstdio>
#include <exception>

#include "cli.h"
#include "emit.h"
#include "fleet.h"
#include "heap.h"
#include "partial_file.h"
#include "pipeline.h"
#include "ringfork/runtime.h"

int main(int argc, char** argv) {
  using namespace logscan;
  // Before the Runtime forks the template, so that the workers inherit it.
  configure_heap();
  Arguments args;
  if (const std::optional<int> status = parse_arguments(argc, argv, args)) return *status;
  try {
    if (args.mode == Mode::kMerge) {
      PartialReport total;
      for (const std::string& path : args.inputs) total.merge(read_partial_file(path));
      return emit_report(std::move(total), args, kExitOk);
    }
    ringfork::Runtime runtime;
    if (args.fleet != Fleet::kNone) return run_fleet(runtime, args, argc, argv);
    PipelineResult result = scan_paths(runtime, args.inputs, args.pipeline);
    for (const std::string& skipped : result.skipped)
      std::fprintf(stderr, "logscan: %s\n", skipped.c_str());
    return emit_report(std::move(result.report), args, result.status);
  } catch (const ScanFailed& failure) {
    std::fprintf(stderr, "logscan: %s\n", failure.what());
    return failure.status();
  } catch (const BadPartialFile& bad) {
    std::fprintf(stderr, "logscan: %s\n", bad.what());
    return kExitBadInput;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "logscan: %s\n", error.what());
    return kExitIoError;
  }
}
