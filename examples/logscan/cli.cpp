#include "cli.h"

#include <sched.h>
#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <string_view>

namespace logscan {
namespace {

void usage(std::FILE* out) {
  std::fputs(
      "usage: logscan [options] PATH...             scan logs and print the report\n"
      "       logscan merge [options] PARTIAL...    combine partial reports (--partial)\n"
      "       mpirun -np N logscan --mpi [options] PATH...   a fleet run (OpenMPI)\n"
      "Analyses application logs (shared/LOGFORMAT.md). PATH is a file or a directory\n"
      "(read recursively, in name order).\n"
      "  -j, --jobs N         worker processes (default: the CPUs this process may use)\n"
      "  --format json|table  the contract's JSON report (default) or a table for people\n"
      "  --partial OUT        write a partial report to OUT instead (for logscan merge)\n"
      "  --keep-going         report unreadable paths, scan the rest, exit 2 at the end\n"
      "  --chunk-bytes N      read buffer size, 256 to 67108864 (default 4194304)\n"
      "  --no-progress        no progress line (there is none unless stderr is a terminal)\n"
      "  --mpi                each MPI rank scans the PATHs on its own host; rank 0 prints\n"
      "  --mpi-split          the ranks split one list of PATHs (a shared filesystem)\n"
      "  --help, --version\n"
      "Exit status: 0 done; 1 a read or write failed; 2 bad usage, a missing or unreadable\n"
      "path or a bad partial file; 3 a worker process or an MPI rank died (no report is\n"
      "printed: it would be incomplete).\n",
      out);
}

unsigned available_cpus() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<unsigned>(online) : 1;
}

std::optional<std::uint64_t> parse_count(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

int misuse(const char* message) {
  std::fprintf(stderr, "logscan: %s (see --help)\n", message);
  return kExitBadInput;
}

}  // namespace

std::optional<int> parse_arguments(int argc, char** argv, Arguments& args) {
  args.pipeline.jobs = available_cpus();
  bool no_progress = false;
  int first = 1;
  if (argc > 1 && std::string_view(argv[1]) == "merge") {
    args.mode = Mode::kMerge;
    first = 2;
  }
  for (int i = first; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return kExitOk;
    } else if (arg == "--version") {
      std::printf("logscan %s\n", kVersion);
      return kExitOk;
    } else if (arg == "-j" || arg == "--jobs") {
      const auto jobs = has_value ? parse_count(argv[++i]) : std::nullopt;
      if (!jobs || *jobs == 0 || *jobs > 256)
        return misuse("-j takes a number of worker processes from 1 to 256");
      args.pipeline.jobs = static_cast<unsigned>(*jobs);
    } else if (arg == "--format") {
      const std::string_view format = has_value ? argv[++i] : "";
      if (format != "json" && format != "table") return misuse("--format takes json or table");
      args.format = std::string(format);
    } else if (arg == "--partial") {
      if (!has_value || *argv[i + 1] == '\0') return misuse("--partial takes an output file");
      args.partial_out = argv[++i];
    } else if (arg == "--keep-going") {
      args.pipeline.keep_going = true;
    } else if (arg == "--no-progress") {
      no_progress = true;
    } else if (arg == "--chunk-bytes") {
      const auto bytes = has_value ? parse_count(argv[++i]) : std::nullopt;
      if (!bytes || *bytes < 256 || *bytes > (std::uint64_t{64} << 20)) {
        return misuse("--chunk-bytes takes a number of bytes, 256 to 67108864");
      }
      args.pipeline.chunk_bytes = *bytes;
    } else if (arg == "--mpi" || arg == "--mpi-split") {
      args.fleet = arg == "--mpi" ? Fleet::kMpiLocal : Fleet::kMpiSplit;
    } else if (arg == "--") {
      for (++i; i < argc; ++i) args.inputs.emplace_back(argv[i]);
    } else if (arg.starts_with("-") && arg != "-") {
      std::fprintf(stderr, "logscan: unknown option '%s' (see --help)\n", argv[i]);
      return kExitBadInput;
    } else {
      args.inputs.emplace_back(arg);
    }
  }
  if (args.mode == Mode::kMerge && args.fleet != Fleet::kNone) {
    return misuse("merge combines partial files here; --mpi applies to scans");
  }
  if (args.inputs.empty()) {
    usage(stderr);
    return kExitBadInput;
  }
  args.pipeline.progress = !no_progress && ::isatty(STDERR_FILENO) == 1;
  return std::nullopt;
}

}  // namespace logscan
