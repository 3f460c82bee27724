// Shared by the UringReader tests: the io_uring skip, a pool with a class for every chunk size
// they use, a temporary directory, random line text, and read_all(), which checks every
// chunk's contract while it reads.
#pragma once

#include <gtest/gtest.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "ringfork/uring_reader.h"

// Skips (loudly) only where the kernel has no io_uring or forbids it to this process. A raw
// io_uring_setup: the test links libringfork, not liburing.
#define SKIP_WITHOUT_IO_URING()                                                             \
  do {                                                                                      \
    io_uring_params probe_params{};                                                         \
    const long probe = ::syscall(__NR_io_uring_setup, 2, &probe_params);                    \
    if (probe < 0 && (errno == ENOSYS || errno == EPERM)) {                                 \
      GTEST_SKIP() << "io_uring unavailable here (io_uring_setup: " << std::strerror(errno) \
                   << "): UringReader NOT TESTED";                                          \
    }                                                                                       \
    ASSERT_GE(probe, 0) << std::strerror(errno);                                            \
    ::close(static_cast<int>(probe));                                                       \
  } while (0)

namespace ringfork::testing {

// A pool with a class for every chunk size the tests use, in a fresh segment.
struct UringPoolFixture {
  explicit UringPoolFixture(std::size_t max_bytes = std::size_t{1} << 30,
                            std::vector<std::size_t> classes = {4096, 16384, 65536, 262144, 1 << 20,
                                                                4 << 20, 8 << 20, 16 << 20,
                                                                64 << 20})
      : segment(Segment::create({.capacity = std::size_t{2} << 30})),
        arena(SharedArena::create(segment)),
        pool(BlockPool::create(arena,
                               {.block_sizes = std::move(classes), .max_bytes = max_bytes})) {}
  Segment segment;
  SharedArena arena;
  BlockPool pool;

  std::uint64_t in_use() const {
    std::uint64_t total = 0;
    for (const auto& s : pool.stats()) total += s.in_use;
    return total;
  }
};

// A temporary directory, removed with everything in it.
struct TempDir {
  TempDir() {
    char pattern[] = "/tmp/ringfork-uring-XXXXXX";
    if (::mkdtemp(pattern) == nullptr)
      throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::filesystem::path file = std::filesystem::path(path) / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return file.string();
  }
  std::string path;
};

// Lines of random printable text, lengths drawn up to max_line (0 = blank lines too).
inline std::string random_lines(std::mt19937_64& rng, std::size_t bytes, std::size_t max_line,
                                bool final_newline = true) {
  std::string text;
  text.reserve(bytes + max_line + 1);
  std::uniform_int_distribution<std::size_t> length(0, max_line);
  std::uniform_int_distribution<int> letter(' ', '~');
  while (text.size() < bytes) {
    const std::size_t n = length(rng);
    for (std::size_t i = 0; i < n; ++i) text.push_back(static_cast<char>(letter(rng)));
    text.push_back('\n');
  }
  text.resize(bytes);
  if (!text.empty()) text.back() = final_newline ? '\n' : 'x';
  return text;
}

// Pages of the file behind `fd` in the page cache (mincore over a mapping of it).
inline std::size_t resident_pages(int fd, std::size_t bytes) {
  void* map = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return bytes;
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((bytes + page - 1) / page);
  std::size_t count = resident.size();
  if (::mincore(map, bytes, resident.data()) == 0) {
    count = 0;
    for (const unsigned char r : resident) count += r & 1u;
  }
  ::munmap(map, bytes);
  return count;
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Reads everything, checking each chunk's contract, and returns the bytes per file index.
struct ReadResult {
  std::map<std::uint32_t, std::string> bytes;
  std::map<std::uint32_t, std::size_t> chunks;
  std::size_t continued = 0;
};

inline ReadResult read_all(UringReader& reader, const UringPoolFixture& f) {
  ReadResult result;
  std::map<std::uint32_t, bool> ended;
  std::uint32_t previous_file = 0;
  while (auto chunk = reader.next()) {
    EXPECT_GE(chunk->file, previous_file) << "files out of order";
    previous_file = chunk->file;
    EXPECT_FALSE(ended[chunk->file]) << "chunk after the last of " << reader.path(chunk->file);
    std::string& got = result.bytes[chunk->file];
    EXPECT_EQ(chunk->file_offset, got.size()) << "gap or overlap in " << reader.path(chunk->file);
    const std::size_t block_bytes = f.pool.block_bytes(chunk->block);
    EXPECT_GT(block_bytes, 0u) << "not a pool block";
    EXPECT_GE(chunk->data, chunk->block);
    EXPECT_LE(chunk->data + chunk->length, chunk->block + block_bytes);
    const std::string_view text = reader.text(*chunk);
    EXPECT_EQ(text, chunk->text(f.segment));
    if (!chunk->last_in_file() && !chunk->continued()) {
      EXPECT_TRUE(!text.empty() && text.back() == '\n')
          << "chunk at " << chunk->file_offset << " of " << reader.path(chunk->file)
          << " does not end a line";
    }
    if (chunk->continued()) ++result.continued;
    got.append(text);
    ++result.chunks[chunk->file];
    ended[chunk->file] = chunk->last_in_file();
    reader.release(*chunk);
  }
  for (const auto& [file, last] : ended)
    EXPECT_TRUE(last) << reader.path(file) << " has no last chunk";
  EXPECT_EQ(reader.bytes_read(), reader.total_bytes());
  return result;
}

inline void expect_files_reproduced(const UringReader& reader, const ReadResult& result) {
  for (std::uint32_t i = 0; i < reader.files().size(); ++i) {
    const std::string want = slurp(reader.path(i));
    const auto found = result.bytes.find(i);
    if (want.empty()) {
      EXPECT_EQ(found, result.bytes.end()) << "empty file " << reader.path(i) << " gave chunks";
      continue;
    }
    ASSERT_NE(found, result.bytes.end()) << reader.path(i) << " gave no chunk";
    EXPECT_TRUE(found->second == want) << reader.path(i) << ": " << found->second.size()
                                       << " bytes read, " << want.size() << " in the file";
  }
}

}  // namespace ringfork::testing
