// logscan: analyses application logs (shared/LOGFORMAT.md) over worker processes.
//
//   logscan [-j N] [--format json|table] [--keep-going] [--chunk-bytes N] PATH...
//
// The ringfork Runtime is made first, before anything starts a thread, since it forks the
// template that workers are forked from; the pipeline (pipeline.h) does the rest.
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline.h"
#include "ringfork/runtime.h"

namespace {

constexpr const char* kVersion = "0.2.0";

void usage(std::FILE* out) {
  std::fputs(
      "usage: logscan [options] PATH...\n"
      "Analyses application logs (shared/LOGFORMAT.md) and prints the report.\n"
      "PATH is a file or a directory (read recursively, in name order).\n"
      "  -j, --jobs N         worker processes (default: the CPUs this process may use)\n"
      "  --format json|table  the contract's JSON report (default) or a table for people\n"
      "  --keep-going         report unreadable paths, scan the rest, exit 2 at the end\n"
      "  --chunk-bytes N      read buffer size, at least 256 (default 8388608)\n"
      "  --no-progress        no progress line (there is none unless stderr is a terminal)\n"
      "  --help, --version\n"
      "Exit status: 0 done; 1 a read failed part-way; 2 bad usage or a missing or unreadable\n"
      "path; 3 a worker process died (no report is printed: it would be incomplete).\n",
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

struct Arguments {
  logscan::PipelineOptions pipeline;
  std::string format = "json";
  bool no_progress = false;
  std::vector<std::string> paths;
};

// Parses argv; returns an exit status when the program should stop (help, version, misuse).
std::optional<int> parse(int argc, char** argv, Arguments& args) {
  args.pipeline.jobs = available_cpus();
  auto value_of = [&](int& i, std::string_view option) -> std::optional<std::string_view> {
    if (i + 1 < argc) return std::string_view(argv[++i]);
    std::fprintf(stderr, "logscan: %.*s needs a value (see --help)\n",
                 static_cast<int>(option.size()), option.data());
    return std::nullopt;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    } else if (arg == "--version") {
      std::printf("logscan %s\n", kVersion);
      return 0;
    } else if (arg == "-j" || arg == "--jobs") {
      const auto text = value_of(i, arg);
      const auto jobs = text ? parse_count(*text) : std::nullopt;
      if (!jobs || *jobs == 0 || *jobs > 256) {
        std::fprintf(stderr, "logscan: -j takes a number of worker processes from 1 to 256\n");
        return 2;
      }
      args.pipeline.jobs = static_cast<unsigned>(*jobs);
    } else if (arg == "--format") {
      const auto text = value_of(i, arg);
      if (!text || (*text != "json" && *text != "table")) {
        std::fprintf(stderr, "logscan: --format takes json or table\n");
        return 2;
      }
      args.format = std::string(*text);
    } else if (arg == "--keep-going") {
      args.pipeline.keep_going = true;
    } else if (arg == "--no-progress") {
      args.no_progress = true;
    } else if (arg == "--chunk-bytes") {
      const auto text = value_of(i, arg);
      const auto bytes = text ? parse_count(*text) : std::nullopt;
      if (!bytes || *bytes < 256 || *bytes > (std::uint64_t{64} << 20)) {
        std::fprintf(stderr, "logscan: --chunk-bytes takes a number of bytes, 256 to 67108864\n");
        return 2;
      }
      args.pipeline.chunk_bytes = *bytes;
    } else if (arg == "--") {
      for (++i; i < argc; ++i) args.paths.emplace_back(argv[i]);
    } else if (arg.starts_with("-") && arg != "-") {
      std::fprintf(stderr, "logscan: unknown option '%s' (see --help)\n", argv[i]);
      return 2;
    } else {
      args.paths.emplace_back(arg);
    }
  }
  if (args.paths.empty()) {
    usage(stderr);
    return 2;
  }
  args.pipeline.progress = !args.no_progress && ::isatty(STDERR_FILENO) == 1;
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  Arguments args;
  if (const std::optional<int> status = parse(argc, argv, args)) return *status;

  int status = logscan::kExitOk;
  try {
    ringfork::Runtime runtime;
    logscan::PipelineResult result = logscan::scan_paths(runtime, args.paths, args.pipeline);
    for (const std::string& skipped : result.skipped) {
      std::fprintf(stderr, "logscan: %s\n", skipped.c_str());
    }
    status = result.status;
    const logscan::FinalReport report = result.report.finish();
    const std::string text = args.format == "json" ? report.to_json() : report.to_table();
    std::fwrite(text.data(), 1, text.size(), stdout);
    if (std::fflush(stdout) != 0) {
      std::fprintf(stderr, "logscan: cannot write the report: %s\n", std::strerror(errno));
      return logscan::kExitIoError;
    }
  } catch (const logscan::ScanFailed& failure) {
    std::fprintf(stderr, "logscan: %s\n", failure.what());
    return failure.status();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "logscan: %s\n", error.what());
    return logscan::kExitIoError;
  }
  return status;
}
