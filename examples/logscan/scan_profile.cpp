// logscan-scan-profile: the scan a worker does, in one process and without the pipeline, for
// profiling. Reads each FILE (mmap), cuts it into ranges of --range-bytes after a '\n' as the
// pipeline does, scans each range into one reused PartialReport and encodes it, as a worker
// does; prints one JSON line (bytes, lines, seconds, bytes per second). Exit 1 for a file it
// cannot read, 2 for bad usage.
//
// `valgrind --tool=callgrind build/examples/logscan/logscan-scan-profile FILE` counts the
// scanner's instructions: logscan itself cannot run under valgrind (its 64 GB reservation).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include "report.h"
#include "scan.h"

namespace {

// A file's bytes, mapped read-only; !ok() when they cannot be (the message is printed).
class MappedFile {
 public:
  explicit MappedFile(const char* path) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) {
      std::perror(path);
      ok_ = false;
    } else if (st.st_size > 0) {
      void* data = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE,
                          fd, 0);
      if (data == MAP_FAILED) {
        std::perror(path);
        ok_ = false;
      } else {
        bytes_ = std::string_view(static_cast<const char*>(data),
                                  static_cast<std::size_t>(st.st_size));
      }
    }
    if (fd >= 0) ::close(fd);
  }
  ~MappedFile() {
    if (!bytes_.empty()) ::munmap(const_cast<char*>(bytes_.data()), bytes_.size());
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  bool ok() const { return ok_; }
  std::string_view bytes() const { return bytes_; }

 private:
  bool ok_ = true;
  std::string_view bytes_;
};

}  // namespace

int main(int argc, char** argv) {
  std::size_t range_bytes = std::size_t{4} << 20;
  int first = 1;
  if (argc > 2 && std::string_view(argv[1]) == "--range-bytes") {
    const std::string_view value = argv[2];
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(),
                                              range_bytes);
    if (error != std::errc() || end != value.data() + value.size() || range_bytes == 0) {
      std::fprintf(stderr, "logscan-scan-profile: --range-bytes takes a positive number\n");
      return 2;
    }
    first = 3;
  }
  if (first >= argc) {
    std::fprintf(stderr, "usage: logscan-scan-profile [--range-bytes N] FILE...\n");
    return 2;
  }
  logscan::Scanner scanner;
  logscan::PartialReport partial;
  std::vector<char> range;  // a range's copy, as a worker holds it in a read buffer
  std::uint64_t bytes = 0, lines = 0, encoded = 0;
  const auto started = std::chrono::steady_clock::now();
  for (int i = first; i < argc; ++i) {
    const MappedFile file(argv[i]);
    if (!file.ok()) return 1;
    const std::string_view text = file.bytes();
    for (std::size_t offset = 0; offset < text.size();) {
      std::size_t end = std::min(text.size(), offset + range_bytes);
      const std::size_t newline = text.find('\n', end - 1);
      end = newline == std::string_view::npos ? text.size() : newline + 1;
      range.assign(text.begin() + static_cast<std::ptrdiff_t>(offset),
                   text.begin() + static_cast<std::ptrdiff_t>(end));
      range.resize(range.size() + logscan::kJsonPadding);  // simdjson parses in place
      partial.clear();
      scanner.scan(std::string_view(range.data(), end - offset), partial, logscan::kJsonPadding);
      lines += partial.lines;
      encoded += partial.encode().size();
      bytes += end - offset;
      offset = end;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("{\"bytes\": %llu, \"lines\": %llu, \"encoded_bytes\": %llu, \"seconds\": %.3f, "
              "\"bytes_per_second\": %.0f}\n",
              static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(lines),
              static_cast<unsigned long long>(encoded), seconds,
              seconds > 0 ? static_cast<double>(bytes) / seconds : 0.0);
  return 0;
}
