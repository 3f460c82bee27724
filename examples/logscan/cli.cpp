#include "cli.h"

#include <getopt.h>
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
      "  --direct             read with O_DIRECT, past the page cache (inputs larger than\n"
      "                       memory); needs --chunk-bytes of 16384 or more\n"
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
  if (argc > 1 && std::string_view(argv[1]) == "merge") {
    args.mode = Mode::kMerge;
    --argc;  // getopt then sees "merge" as the program name
    ++argv;
  }
  // getopt_long, so that -j2, -j 2, --jobs=2 and --jobs 2 all work, and options may follow
  // the PATHs.
  enum LongOnly : int { kFormat = 256, kPartial, kKeepGoing, kChunkBytes, kDirect, kNoProgress,
                        kMpi, kMpiSplit, kVersion };
  static const option kOptions[] = {
      {"help", no_argument, nullptr, 'h'},          {"version", no_argument, nullptr, kVersion},
      {"jobs", required_argument, nullptr, 'j'},    {"format", required_argument, nullptr, kFormat},
      {"partial", required_argument, nullptr, kPartial},
      {"keep-going", no_argument, nullptr, kKeepGoing},
      {"chunk-bytes", required_argument, nullptr, kChunkBytes},
      {"direct", no_argument, nullptr, kDirect},
      {"no-progress", no_argument, nullptr, kNoProgress},
      {"mpi", no_argument, nullptr, kMpi},          {"mpi-split", no_argument, nullptr, kMpiSplit},
      {nullptr, 0, nullptr, 0}};
  opterr = 0;  // the messages below name the option and point to --help
  optind = 0;  // glibc: start afresh
  for (int opt, before = optind; (opt = getopt_long(argc, argv, ":hj:", kOptions, nullptr)) != -1;
       before = optind) {
    switch (opt) {
      case 'h':
        usage(stdout);
        return kExitOk;
      case kVersion:
        std::printf("logscan %s\n", logscan::kVersion);
        return kExitOk;
      case 'j': {
        const auto jobs = parse_count(optarg);
        if (!jobs || *jobs == 0 || *jobs > 256) {
          return misuse("-j takes a number of worker processes from 1 to 256");
        }
        args.pipeline.jobs = static_cast<unsigned>(*jobs);
        break;
      }
      case kFormat:
        if (std::string_view(optarg) != "json" && std::string_view(optarg) != "table") {
          return misuse("--format takes json or table");
        }
        args.format = optarg;
        break;
      case kPartial:
        if (*optarg == '\0') return misuse("--partial takes an output file");
        args.partial_out = optarg;
        break;
      case kKeepGoing:
        args.pipeline.keep_going = true;
        break;
      case kNoProgress:
        no_progress = true;
        break;
      case kDirect:
        args.pipeline.direct_io = true;
        break;
      case kChunkBytes: {
        const auto bytes = parse_count(optarg);
        if (!bytes || *bytes < 256 || *bytes > (std::uint64_t{64} << 20)) {
          return misuse("--chunk-bytes takes a number of bytes, 256 to 67108864");
        }
        args.pipeline.chunk_bytes = *bytes;
        break;
      }
      case kMpi:
      case kMpiSplit:
        args.fleet = opt == kMpi ? Fleet::kMpiLocal : Fleet::kMpiSplit;
        break;
      case ':':
        std::fprintf(stderr, "logscan: option '%s' needs a value (see --help)\n", argv[optind - 1]);
        return kExitBadInput;
      default: {
        // The argument at fault: optind passed it, unless it is a cluster like -xv whose rest
        // getopt has not reached yet. A bad long option is its whole argument; a bad short
        // one is optopt.
        const std::string_view bad = optind > before ? argv[optind - 1] : argv[optind];
        if (bad.starts_with("--")) {
          std::fprintf(stderr, "logscan: bad option '%s' (see --help)\n", bad.data());
        } else {
          std::fprintf(stderr, "logscan: unknown option '-%c' (see --help)\n", optopt);
        }
        return kExitBadInput;
      }
    }
  }
  for (int i = optind; i < argc; ++i) args.inputs.emplace_back(argv[i]);
  if (args.mode == Mode::kMerge && args.fleet != Fleet::kNone) {
    return misuse("merge combines partial files here; --mpi applies to scans");
  }
  if (args.inputs.empty()) {
    usage(stderr);
    return kExitBadInput;
  }
  if (args.pipeline.direct_io && args.pipeline.chunk_bytes < kMinDirectChunkBytes) {
    return misuse(("--direct needs --chunk-bytes of " + std::to_string(kMinDirectChunkBytes) +
                   " or more").c_str());
  }
  args.pipeline.progress = !no_progress && ::isatty(STDERR_FILENO) == 1;
  return std::nullopt;
}

}  // namespace logscan
