// The io_uring reader against plain read(2): the same page-cached files, the same chunk size,
// in one binary so the ratio comes from one run. Each iteration reads the whole corpus; an
// "item" is a byte, so items/s is bytes/s.
//
// The corpus (RINGFORK_URING_BENCH_MB, default 512 MB of text lines in 8 files) is written
// once per process into a temporary directory, left in the page cache by the writing, and
// removed at exit.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "ringfork/block_pool.h"
#include "ringfork/uring_reader.h"

namespace ringfork {
namespace {

constexpr std::size_t kChunkBytes = std::size_t{8} << 20;
constexpr int kFiles = 8;

struct Corpus {
  Corpus() {
    const char* wanted = std::getenv("RINGFORK_URING_BENCH_MB");
    const std::uint64_t total = (wanted != nullptr ? std::strtoull(wanted, nullptr, 10) : 512)
                                << 20;
    char pattern[] = "/tmp/ringfork-uring-bench-XXXXXX";
    if (::mkdtemp(pattern) == nullptr)
      throw std::system_error(errno, std::generic_category(), "mkdtemp");
    dir = pattern;
    // 4 MiB of random lines (10..200 bytes), written over and over.
    std::mt19937_64 rng(42);
    std::string block;
    while (block.size() < (std::size_t{4} << 20)) {
      const std::size_t n = 10 + rng() % 190;
      for (std::size_t i = 0; i < n; ++i) block.push_back(static_cast<char>('a' + rng() % 26));
      block.push_back('\n');
    }
    for (int i = 0; i < kFiles; ++i) {
      const std::string path = dir + "/part-" + std::to_string(i) + ".log";
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
      for (std::uint64_t written = 0; written < total / kFiles;) {
        const std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>(block.size(), total / kFiles - written));
        const ssize_t done = ::write(fd, block.data(), n);
        if (done <= 0) throw std::system_error(errno, std::generic_category(), "write " + path);
        written += static_cast<std::uint64_t>(done);
      }
      ::close(fd);
      paths.push_back(path);
      bytes += total / kFiles;
    }
  }
  ~Corpus() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  std::string dir;
  std::vector<std::string> paths;
  std::uint64_t bytes = 0;
};

Corpus& corpus() {
  static Corpus instance;
  return instance;
}

struct BenchPool {
  BenchPool()
      : segment(Segment::create({.capacity = std::size_t{1} << 30})),
        arena(SharedArena::create(segment)),
        pool(BlockPool::create(arena, {.block_sizes = {4096, 1 << 20, kChunkBytes, 64 << 20},
                                       .max_bytes = std::size_t{512} << 20})) {}
  Segment segment;
  SharedArena arena;
  BlockPool pool;
};

void run_reader(benchmark::State& state, UringFixedBuffers fixed_buffers) try {
  Corpus& files = corpus();
  BenchPool f;
  std::uint64_t fixed_reads = 0;
  unsigned max_in_flight = 0;
  const auto read_corpus = [&] {
    UringReader reader(
        f.pool, files.paths,
        {.chunk_bytes = kChunkBytes, .queue_depth = 4, .fixed_buffers = fixed_buffers});
    std::uint64_t bytes = 0;
    while (auto chunk = reader.next()) {
      bytes += chunk->length;
      benchmark::DoNotOptimize(reader.data(*chunk));
      reader.release(*chunk);
    }
    fixed_reads = reader.stats().fixed_reads;
    max_in_flight = reader.stats().max_in_flight;
    return bytes;
  };
  read_corpus();  // untimed: carves and faults in the pool's blocks, as the baseline's warm-up
  for (auto _ : state) {
    const std::uint64_t bytes = read_corpus();
    if (bytes != files.bytes) {
      state.SkipWithError("UringReader delivered the wrong number of bytes");
      return;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * files.bytes));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * files.bytes));
  state.counters["fixed_reads"] = static_cast<double>(fixed_reads);
  state.counters["max_in_flight"] = max_in_flight;
} catch (const std::exception& error) {
  state.SkipWithError(error.what());
}

// The default options: page-cache reads into unregistered buffers.
void BM_UringReader(benchmark::State& state) { run_reader(state, UringFixedBuffers::kForDirectIo); }
BENCHMARK(BM_UringReader)->UseRealTime()->Unit(benchmark::kMillisecond);

// For information: every read into a registered buffer (why that is not the default).
void BM_UringReaderFixed(benchmark::State& state) { run_reader(state, UringFixedBuffers::kAlways); }
BENCHMARK(BM_UringReaderFixed)->UseRealTime()->Unit(benchmark::kMillisecond);

// The baseline: read(2) of the same files into one buffer of the same size.
void BM_ReadSyscall(benchmark::State& state) {
  Corpus& files = corpus();
  const std::unique_ptr<char[]> buffer(new char[kChunkBytes]);
  const auto read_corpus = [&] {
    std::uint64_t bytes = 0;
    for (const std::string& path : files.paths) {
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return std::uint64_t{0};
      ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
      for (;;) {
        const ssize_t n = ::read(fd, buffer.get(), kChunkBytes);
        if (n <= 0) break;
        bytes += static_cast<std::uint64_t>(n);
        benchmark::DoNotOptimize(buffer.get());
      }
      ::close(fd);
    }
    return bytes;
  };
  read_corpus();  // untimed: faults in the buffer
  for (auto _ : state) {
    if (read_corpus() != files.bytes) {
      state.SkipWithError("read(2) returned the wrong number of bytes");
      return;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * files.bytes));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * files.bytes));
}
BENCHMARK(BM_ReadSyscall)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ringfork
