// logscan, sequential: reads its inputs with read(2) and scans them in one process.
// The multi-process io_uring pipeline replaces read_chunks() and the loop in main(); the
// scanning (scan.h) and the report (report.h) stay as they are.
//
//   logscan [--format json|table] [--keep-going] [--chunk-bytes N] PATH...
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

#include "scan.h"

namespace {

constexpr const char* kVersion = "0.1.0";
constexpr std::size_t kDefaultChunkBytes = std::size_t{16} << 20;

void usage(std::FILE* out) {
  std::fputs(
      "usage: logscan [--format json|table] [--keep-going] PATH...\n"
      "Analyses application logs (shared/LOGFORMAT.md) and prints the report.\n"
      "PATH is a file or a directory (read recursively).\n"
      "  --format json|table  the contract's JSON report (default) or a table\n"
      "  --keep-going         report unreadable paths, scan the rest, exit 2 at the end\n"
      "  --chunk-bytes N      read in chunks of about N bytes (default 16 MiB)\n"
      "  --help, --version\n"
      "Exit status: 0 done, 1 I/O error while reading, 2 bad usage or unreadable path.\n",
      out);
}

struct Chunk {
  std::string_view lines;      // whole lines, the last perhaps unterminated at file end
  std::size_t readable_after;  // padding after `lines` the scanner may read
};

// Reads `path` in chunks of about `chunk_bytes`, each cut after its last '\n' (a line
// longer than a chunk grows the buffer), and hands each to `consume`. Returns the file's
// size; throws std::system_error naming the path.
std::uint64_t read_chunks(const std::string& path, std::size_t chunk_bytes,
                          const std::function<void(const Chunk&)>& consume) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot read '" + path + "'");
  std::vector<char> buffer(chunk_bytes + logscan::kJsonPadding);
  std::size_t filled = 0;  // bytes in buffer: carried remainder plus new reads
  std::uint64_t total = 0;
  bool eof = false;
  while (!eof) {
    if (buffer.size() - logscan::kJsonPadding - filled < chunk_bytes / 2) {
      buffer.resize(std::max(buffer.size() * 2, filled + chunk_bytes + logscan::kJsonPadding));
    }
    const ssize_t n =
        ::read(fd, buffer.data() + filled, buffer.size() - logscan::kJsonPadding - filled);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw std::system_error(err, std::generic_category(), "cannot read '" + path + "'");
    }
    eof = n == 0;
    filled += static_cast<std::size_t>(n);
    total += static_cast<std::uint64_t>(n);
    std::size_t cut = filled;  // at end of file the last line goes too, terminated or not
    if (!eof) {
      const std::string_view data(buffer.data(), filled);
      const std::size_t nl = data.rfind('\n');
      if (nl == std::string_view::npos) continue;  // no whole line yet: read more
      cut = nl + 1;
    }
    if (cut > 0) {
      consume({std::string_view(buffer.data(), cut), buffer.size() - cut});
      std::memmove(buffer.data(), buffer.data() + cut, filled - cut);
      filled -= cut;
    }
  }
  ::close(fd);
  return total;
}

// The files under `path` (a directory recursively, in name order), or `path` itself.
std::vector<std::string> expand(const std::string& path) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  const fs::file_status status = fs::status(path);
  if (!fs::exists(status)) {
    throw std::system_error(ENOENT, std::generic_category(), "cannot read '" + path + "'");
  }
  if (!fs::is_directory(status)) {
    files.push_back(path);
    return files;
  }
  for (const auto& entry : fs::recursive_directory_iterator(path)) {
    if (!entry.is_directory()) files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  std::string format = "json";
  bool keep_going = false;
  std::size_t chunk_bytes = kDefaultChunkBytes;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    } else if (arg == "--version") {
      std::printf("logscan %s\n", kVersion);
      return 0;
    } else if (arg == "--format" && i + 1 < argc) {
      format = argv[++i];
      if (format != "json" && format != "table") {
        std::fprintf(stderr, "logscan: --format must be json or table, not '%s'\n", format.c_str());
        return 2;
      }
    } else if (arg == "--keep-going") {
      keep_going = true;
    } else if (arg == "--chunk-bytes" && i + 1 < argc) {
      chunk_bytes = std::strtoull(argv[++i], nullptr, 10);
      if (chunk_bytes == 0) {
        std::fprintf(stderr, "logscan: --chunk-bytes must be a positive number of bytes\n");
        return 2;
      }
    } else if (arg == "--") {
      for (++i; i < argc; ++i) paths.emplace_back(argv[i]);
    } else if (arg.starts_with("-") && arg != "-") {
      std::fprintf(stderr, "logscan: unknown or incomplete option '%s' (see --help)\n",
                   arg.c_str());
      return 2;
    } else {
      paths.push_back(arg);
    }
  }
  if (paths.empty()) {
    usage(stderr);
    return 2;
  }

  int status = 0;
  std::vector<std::string> files;
  for (const std::string& path : paths) {
    try {
      for (std::string& f : expand(path)) files.push_back(std::move(f));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "logscan: %s\n", e.what());
      if (!keep_going) return 2;
      status = 2;
    }
  }

  logscan::Scanner scanner;
  logscan::PartialReport total;
  for (const std::string& file : files) {
    logscan::PartialReport partial;  // per file, merged: the pipeline's shape, in miniature
    try {
      partial.bytes = read_chunks(file, chunk_bytes, [&](const Chunk& chunk) {
        scanner.scan(chunk.lines, partial, chunk.readable_after);
      });
      partial.files = 1;
      total.merge(std::move(partial));
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "logscan: %s\n", e.what());
      if (!keep_going) return 2;
      status = 2;
    }
  }
  const logscan::FinalReport report = total.finish();
  const std::string text = format == "json" ? report.to_json() : report.to_table();
  std::fwrite(text.data(), 1, text.size(), stdout);
  if (std::fflush(stdout) != 0) {
    std::fprintf(stderr, "logscan: cannot write the report: %s\n", std::strerror(errno));
    return 1;
  }
  return status;
}
