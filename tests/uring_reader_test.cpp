// UringReader: every file comes back byte for byte as whole-line chunks (random files and
// chunk sizes, empty files, no final newline, lines longer than a chunk, CRLF, NUL, binary);
// directories expand sorted and recursively; bad paths are named; several reads are really in
// flight; fixed buffers, plain reads and O_DIRECT all work; every pool block comes back, also
// when chunks are freed by another process or the reader is dropped mid-run; nothing hangs.
#include "ringfork/uring_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "test_support.h"

namespace ringfork {
namespace {

namespace fs = std::filesystem;
using testing::expect_clean_exit;
using testing::fork_child;

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

// A pool with a class for every chunk size the tests use, in a fresh segment.
struct PoolFixture {
  explicit PoolFixture(std::size_t max_bytes = std::size_t{1} << 30,
                       std::vector<std::size_t> classes = {4096, 16384, 65536, 262144, 1 << 20,
                                                           4 << 20, 8 << 20, 16 << 20, 64 << 20})
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
    fs::remove_all(path, ignored);
  }
  std::string write(const std::string& name, const std::string& bytes) const {
    const fs::path file = fs::path(path) / name;
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return file.string();
  }
  std::string path;
};

// Lines of random printable text, lengths drawn up to max_line (0 = blank lines too).
std::string random_lines(std::mt19937_64& rng, std::size_t bytes, std::size_t max_line,
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
std::size_t resident_pages(int fd, std::size_t bytes) {
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

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Reads everything, checking each chunk's contract, and returns the bytes per file index.
struct ReadResult {
  std::map<std::uint32_t, std::string> bytes;
  std::map<std::uint32_t, std::size_t> chunks;
  std::size_t continued = 0;
};

ReadResult read_all(UringReader& reader, const PoolFixture& f) {
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

void expect_files_reproduced(const UringReader& reader, const ReadResult& result) {
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

TEST(UringReader, RandomFilesComeBackByteForByteAtEveryChunkSize) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(20240607);
  TempDir dir;
  std::vector<std::string> paths;
  for (int i = 0; i < 24; ++i) {
    const std::size_t sizes[] = {0,    1,      100,     4095,      4096,
                                 4097, 70'000, 300'000, 2'000'000, 5'000'000};
    const std::size_t size = sizes[std::uniform_int_distribution<std::size_t>(0, 9)(rng)];
    const std::size_t max_line =
        std::uniform_int_distribution<std::size_t>(0, 1)(rng) != 0 ? 200 : 9000;
    paths.push_back(
        dir.write("f" + std::to_string(100 + i), random_lines(rng, size, max_line, i % 3 != 0)));
  }
  for (const std::size_t chunk : {std::size_t{256}, std::size_t{4096}, std::size_t{16384}, std::size_t{65536},
                                  std::size_t{1} << 20, std::size_t{8} << 20}) {
    for (const UringFixedBuffers fixed :
         {UringFixedBuffers::kAlways, UringFixedBuffers::kNever, UringFixedBuffers::kForDirectIo}) {
      // 256 B buffers cut nearly every line (the long-line path); one mode shows that.
      if (chunk == 256 && fixed != UringFixedBuffers::kNever) continue;
      PoolFixture f;
      {
        const unsigned depth = std::uniform_int_distribution<unsigned>(1, 8)(rng);
        UringReader reader(f.pool, paths,
                           {.chunk_bytes = chunk, .queue_depth = depth, .fixed_buffers = fixed});
        SCOPED_TRACE("chunk " + std::to_string(chunk) + " depth " + std::to_string(depth) +
                     " mode " + to_string(reader.mode()));
        ASSERT_EQ(reader.files().size(), paths.size());
        expect_files_reproduced(reader, read_all(reader, f));
        if (fixed != UringFixedBuffers::kAlways) {
          EXPECT_EQ(reader.mode(), UringReadMode::kPlainReads);  // page-cache reads stay plain
          EXPECT_EQ(reader.stats().fixed_reads, 0u);
        } else if (reader.mode() == UringReadMode::kFixedBuffers) {
          EXPECT_GT(reader.stats().fixed_reads, 0u);
        }
      }
      EXPECT_EQ(f.in_use(), 0u) << "blocks not returned, chunk " << chunk;
    }
  }
}

TEST(UringReader, EmptyFilesYieldNoChunkAndNoFinalNewlineIsDeliveredAsLast) {
  SKIP_WITHOUT_IO_URING();
  TempDir dir;
  const std::vector<std::string> paths = {dir.write("a", ""), dir.write("b", "one\ntwo"),
                                          dir.write("c", ""), dir.write("d", "x"),
                                          dir.write("e", "\n")};
  PoolFixture f;
  {
    UringReader reader(f.pool, paths, {.chunk_bytes = 4096});
    EXPECT_EQ(reader.total_bytes(), 9u);
    std::vector<std::pair<std::uint32_t, std::string>> got;
    while (auto chunk = reader.next()) {
      EXPECT_TRUE(chunk->last_in_file());
      got.emplace_back(chunk->file, std::string(reader.text(*chunk)));
      reader.release(*chunk);
    }
    const std::vector<std::pair<std::uint32_t, std::string>> want = {
        {1, "one\ntwo"}, {3, "x"}, {4, "\n"}};
    EXPECT_EQ(got, want);
  }
  EXPECT_EQ(f.in_use(), 0u);
}

TEST(UringReader, LineLongerThanTheChunkArrivesWholeInOneChunk) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(7);
  TempDir dir;
  const std::string before = random_lines(rng, 3'000'000, 100);
  const std::string long_line = std::string(20'000'000, 'L') + "\n";
  const std::string after = random_lines(rng, 3'000'000, 100, false);
  const std::string path = dir.write("long", before + long_line + after);
  PoolFixture f;
  {
    UringReader reader(f.pool, {path}, {.chunk_bytes = std::size_t{1} << 20});
    bool seen_whole = false;
    std::string all;
    while (auto chunk = reader.next()) {
      const std::string_view text = reader.text(*chunk);
      EXPECT_FALSE(chunk->continued());
      if (text.find(long_line) != std::string_view::npos) seen_whole = true;
      all.append(text);
      reader.release(*chunk);
    }
    EXPECT_TRUE(seen_whole) << "the 20 MB line was split";
    EXPECT_TRUE(all == before + long_line + after);
    EXPECT_GT(reader.stats().long_line_bytes, 20'000'000u);
  }
  EXPECT_EQ(f.in_use(), 0u);
}

TEST(UringReader, HundredMegabyteLineBeyondTheLargestBlockArrivesAsContinuedPieces) {
  SKIP_WITHOUT_IO_URING();
  TempDir dir;
  std::string text = "first\n" + std::string(100'000'000, 'H') + "\nlast line\n";
  text[50'000'000] = '\0';
  const std::string path = dir.write("huge", text);
  text.clear();
  PoolFixture f;
  {
    UringReader reader(f.pool, {path});  // 8 MiB chunks; the pool's largest class is 64 MiB
    const ReadResult result = read_all(reader, f);
    expect_files_reproduced(reader, result);
    EXPECT_EQ(result.continued, 1u) << "100 MB line = one full 64 MiB piece + the rest";
  }
  EXPECT_EQ(f.in_use(), 0u);
}

TEST(UringReader, MaxLineBytesSplitsLongLinesIntoContinuedPieces) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(11);
  TempDir dir;
  const std::string path =
      dir.write("pieces", random_lines(rng, 100'000, 80) + std::string(1'000'000, 'P') + "\n" +
                              random_lines(rng, 100'000, 80) + std::string(300'000, 'Q'));
  PoolFixture f;
  {
    UringReader reader(f.pool, {path}, {.chunk_bytes = 4096, .max_line_bytes = 65536});
    const ReadResult result = read_all(reader, f);
    expect_files_reproduced(reader, result);
    EXPECT_GE(result.continued, 15u);
  }
  EXPECT_EQ(f.in_use(), 0u);
}

TEST(UringReader, CrlfNulAndBinaryGarbagePassThroughUntouched) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(3);
  TempDir dir;
  std::string crlf;
  for (int i = 0; i < 20000; ++i) crlf += "line " + std::to_string(i) + "\r\n";
  std::string garbage(3'000'000, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  std::string nul = random_lines(rng, 500'000, 300);
  for (std::size_t i = 0; i < nul.size(); i += 97) nul[i] = '\0';
  const std::vector<std::string> paths = {dir.write("crlf", crlf), dir.write("garbage", garbage),
                                          dir.write("nul", nul),
                                          dir.write("nul-only", std::string(100'000, '\0'))};
  for (const std::size_t chunk : {std::size_t{4096}, std::size_t{65536}}) {
    PoolFixture f;
    {
      UringReader reader(f.pool, paths, {.chunk_bytes = chunk});
      expect_files_reproduced(reader, read_all(reader, f));
    }
    EXPECT_EQ(f.in_use(), 0u);
  }
}

TEST(UringReader, DirectoriesExpandRecursivelyInSortedOrderRegularFilesOnly) {
  SKIP_WITHOUT_IO_URING();
  TempDir dir;
  dir.write("logs/b.log", "b\n");
  dir.write("logs/a.log", "a\n");
  dir.write("logs/sub/z.log", "z\n");
  dir.write("logs/sub/deeper/y.log", "y\n");
  dir.write("logs/c/empty", "");
  dir.write("outside/o.log", "o\n");
  ASSERT_EQ(::symlink((dir.path + "/outside").c_str(), (dir.path + "/logs/d-link").c_str()), 0);
  ASSERT_EQ(::symlink((dir.path + "/outside/o.log").c_str(), (dir.path + "/logs/e.log").c_str()),
            0);
  ASSERT_EQ(::mkfifo((dir.path + "/logs/fifo").c_str(), 0600), 0);
  PoolFixture f;
  {
    UringReader reader(f.pool, {dir.path + "/logs", dir.path + "/outside/o.log"},
                       {.chunk_bytes = 4096});
    const std::string logs = dir.path + "/logs/";
    const std::vector<std::string> want = {logs + "a.log",
                                           logs + "b.log",
                                           logs + "c/empty",
                                           logs + "e.log",
                                           logs + "sub/deeper/y.log",
                                           logs + "sub/z.log",
                                           dir.path + "/outside/o.log"};
    EXPECT_EQ(reader.files(), want);
    std::string all;
    while (auto chunk = reader.next()) {
      all.append(reader.text(*chunk));
      reader.release(*chunk);
    }
    EXPECT_EQ(all, "a\nb\no\ny\nz\no\n");
  }
  EXPECT_EQ(f.in_use(), 0u);
}

TEST(UringReader, MissingPathThrowsNamingItOrIsCollectedWithKeepGoing) {
  SKIP_WITHOUT_IO_URING();
  TempDir dir;
  const std::string good = dir.write("good", "fine\n");
  const std::string missing = dir.path + "/no-such-file.log";
  PoolFixture f;
  try {
    UringReader reader(f.pool, {good, missing});
    ADD_FAILURE() << "no exception for a missing path";
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code().value(), ENOENT);
    EXPECT_NE(std::string(error.what()).find(missing), std::string::npos) << error.what();
  }
  const std::string fifo = dir.path + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THROW(UringReader(f.pool, {fifo}), std::system_error);

  UringReader reader(f.pool, {missing, good, fifo}, {.keep_going = true});
  ASSERT_EQ(reader.errors().size(), 2u);
  EXPECT_EQ(reader.errors()[0].path, missing);
  EXPECT_NE(reader.errors()[0].message.find(missing), std::string::npos);
  EXPECT_EQ(reader.errors()[1].path, fifo);
  ASSERT_EQ(reader.files(), std::vector<std::string>{good});
  auto chunk = reader.next();
  ASSERT_TRUE(chunk);
  EXPECT_EQ(reader.text(*chunk), "fine\n");
  reader.release(*chunk);
  EXPECT_FALSE(reader.next());
}

TEST(UringReader, FileRemovedAfterConstructionFailsInNextNamingIt) {
  SKIP_WITHOUT_IO_URING();
  TempDir dir;
  const std::string first = dir.write("first", "1\n");
  const std::string gone = dir.write("gone", "2\n");
  const std::string third = dir.write("third", "3\n");
  PoolFixture f;
  UringReader reader(f.pool, {first, gone, third}, {.chunk_bytes = 4096});
  ASSERT_EQ(::unlink(gone.c_str()), 0);
  auto chunk = reader.next();
  ASSERT_TRUE(chunk);
  EXPECT_EQ(reader.text(*chunk), "1\n");
  reader.release(*chunk);
  try {
    reader.next();
    ADD_FAILURE() << "no exception for a file removed before it was opened";
  } catch (const std::system_error& error) {
    EXPECT_NE(std::string(error.what()).find(gone), std::string::npos) << error.what();
  }
  chunk = reader.next();  // the reader goes on with the next file
  ASSERT_TRUE(chunk);
  EXPECT_EQ(reader.text(*chunk), "3\n");
  reader.release(*chunk);
  EXPECT_FALSE(reader.next());
}

TEST(UringReader, FileThatShrankEndsWithItsShorterContent) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(5);
  TempDir dir;
  const std::string text = random_lines(rng, 1'000'000, 100);
  const std::string path = dir.write("shrinks", text);
  PoolFixture f;
  {
    UringReader reader(f.pool, {path}, {.chunk_bytes = 65536});
    ASSERT_EQ(::truncate(path.c_str(), 300'001), 0);
    std::string all;
    bool last = false;
    while (auto chunk = reader.next()) {
      all.append(reader.text(*chunk));
      last = chunk->last_in_file();
      reader.release(*chunk);
    }
    EXPECT_TRUE(last);
    EXPECT_TRUE(all == text.substr(0, 300'001));
  }
  EXPECT_EQ(f.in_use(), 0u);
}

// The reader reads ahead while it waits for the device; a read the page cache serves
// completes inside its submission, so reads that really wait are needed here: O_DIRECT, and
// buffered reads of a file dropped from the page cache.
TEST(UringReader, SeveralReadsAreInFlightWhileTheDeviceIsBusy) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(9);
  TempDir dir;
  const std::string text = random_lines(rng, 8'000'000, 120);
  const std::string path = dir.write("multi", text);
  for (const bool direct : {true, false}) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::fdatasync(fd), 0);
    ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    const std::size_t cached = resident_pages(fd, text.size());
    ::close(fd);
    PoolFixture f;
    UringReader reader(f.pool, {path},
                       {.chunk_bytes = 65536, .queue_depth = 6, .direct_io = direct});
    expect_files_reproduced(reader, read_all(reader, f));
    std::printf("%s: at most %u reads in flight (%zu pages were cached)\n",
                direct ? "O_DIRECT" : "cold page cache", reader.stats().max_in_flight, cached);
    EXPECT_LE(reader.stats().max_in_flight, 6u);
    if (direct || cached == 0) {
      EXPECT_GT(reader.stats().max_in_flight, 1u);
    } else {
      std::printf("the page cache kept the file: buffered read-ahead NOT CHECKED\n");
    }
  }
}

TEST(UringReader, DirectIoReadsTheSameBytes) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(13);
  TempDir dir;
  const std::vector<std::string> paths = {dir.write("d1", random_lines(rng, 3'000'001, 500)),
                                          dir.write("d2", random_lines(rng, 8192, 50, false)),
                                          dir.write("d3", "tiny")};
  for (const UringFixedBuffers fixed :
       {UringFixedBuffers::kForDirectIo, UringFixedBuffers::kNever}) {
    PoolFixture f;
    {
      UringReader reader(f.pool, paths,
                         {.chunk_bytes = 65536, .fixed_buffers = fixed, .direct_io = true});
      if (fixed == UringFixedBuffers::kNever) {
        EXPECT_EQ(reader.mode(), UringReadMode::kPlainReads);
      }
      expect_files_reproduced(reader, read_all(reader, f));
      EXPECT_EQ(reader.stats().direct_files + reader.stats().direct_fallbacks, 3u);
      std::printf("O_DIRECT: %llu files direct, %llu fell back; mode %s\n",
                  static_cast<unsigned long long>(reader.stats().direct_files),
                  static_cast<unsigned long long>(reader.stats().direct_fallbacks),
                  to_string(reader.mode()));
    }
    EXPECT_EQ(f.in_use(), 0u);
  }
}

TEST(UringReader, FallsBackToPlainReadsWhenBuffersCannotBePinned) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(17);
  TempDir dir;
  const std::string text = random_lines(rng, 2'000'000, 100);
  const std::string path = dir.write("plain", text);
  PoolFixture f;
  // Fault injected: no CAP_IPC_LOCK and RLIMIT_MEMLOCK 256 KiB: enough for the ring itself
  // (some kernels account it), too little to pin one 1 MiB buffer.
  const pid_t child = fork_child([&] {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct caps[2]{};
    if (::syscall(SYS_capget, &header, caps) != 0) return 10;
    caps[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
    if (::syscall(SYS_capset, &header, caps) != 0) return 11;
    const rlimit small{256 << 10, 256 << 10};
    if (::setrlimit(RLIMIT_MEMLOCK, &small) != 0) return 12;
    UringReader reader(
        f.pool, {path},
        {.chunk_bytes = std::size_t{1} << 20, .fixed_buffers = UringFixedBuffers::kAlways});
    std::string all;
    while (auto chunk = reader.next()) {
      all.append(reader.text(*chunk));
      reader.release(*chunk);
    }
    if (reader.mode() != UringReadMode::kPlainReads) return 13;
    if (!reader.fixed_buffers_error()) return 14;
    std::printf("plain reads after: %s\n", reader.fixed_buffers_error().message().c_str());
    return all == text ? 0 : 15;
  });
  expect_clean_exit(child);
  EXPECT_EQ(f.in_use(), 0u);
}

TEST(UringReader, ChunksHandedToAnotherProcessAreReadAndFreedThere) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(19);
  TempDir dir;
  const std::string text = random_lines(rng, 3'000'000, 200);
  const std::string path = dir.write("handed", text);
  PoolFixture f;
  int channel[2];
  ASSERT_EQ(::pipe(channel), 0);
  // The consumer is forked first; the reader is made afterwards, in the process that reads.
  const pid_t consumer = fork_child([&] {
    ::close(channel[1]);
    std::string all;
    UringChunk chunk;
    while (::read(channel[0], &chunk, sizeof(chunk)) == static_cast<ssize_t>(sizeof(chunk))) {
      f.pool.set_owner(chunk.block, ::getpid());
      all.append(chunk.text(f.segment));
      f.pool.free(chunk.block);
    }
    f.pool.flush_local_cache();
    return all == text ? 0 : 1;
  });
  ::close(channel[0]);
  {
    UringReader reader(f.pool, {path}, {.chunk_bytes = 65536});
    while (auto chunk = reader.next()) {
      ASSERT_EQ(::write(channel[1], &*chunk, sizeof(*chunk)), static_cast<ssize_t>(sizeof(*chunk)));
    }
  }
  ::close(channel[1]);
  expect_clean_exit(consumer);
  EXPECT_EQ(f.in_use(), 0u);
}

TEST(UringReader, UseFromAForkedChildThrowsInsteadOfSharingTheRing) {
  SKIP_WITHOUT_IO_URING();
  TempDir dir;
  const std::string path = dir.write("f", "x\n");
  PoolFixture f;
  UringReader reader(f.pool, {path}, {.chunk_bytes = 4096});
  const pid_t child = fork_child([&] {
    try {
      reader.next();
    } catch (const std::logic_error& error) {
      return std::string(error.what()).find("after fork") != std::string::npos ? 0 : 2;
    }
    return 1;
  });
  expect_clean_exit(child);
  auto chunk = reader.next();  // the parent's reader is untouched
  ASSERT_TRUE(chunk);
  EXPECT_EQ(reader.text(*chunk), "x\n");
  reader.release(*chunk);
}

TEST(UringReader, DroppedMidRunReturnsEveryBlock) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(23);
  TempDir dir;
  const std::string path = dir.write("dropped", random_lines(rng, 6'000'000, 30'000));
  // Out of the page cache, so that reads are still in flight when the reader goes.
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fdatasync(fd), 0);
  ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  ::close(fd);
  PoolFixture f;
  {
    UringReader reader(f.pool, {path}, {.chunk_bytes = 16384, .queue_depth = 8});
    for (int i = 0; i < 10; ++i) {
      auto chunk = reader.next();
      ASSERT_TRUE(chunk);
      reader.release(*chunk);
    }
  }
  EXPECT_EQ(f.in_use(), 0u);
}

TEST(UringReader, ExhaustedPoolThrowsInsteadOfHanging) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(29);
  TempDir dir;
  const std::string path = dir.write("big", random_lines(rng, 4'000'000, 100));
  PoolFixture f(std::size_t{1} << 20, {65536});
  std::vector<UringChunk> held;
  {
    UringReader reader(f.pool, {path}, {.chunk_bytes = 65536});
    try {
      while (auto chunk = reader.next()) held.push_back(*chunk);  // never released
      ADD_FAILURE() << "read 4 MB through a 1 MiB pool without releasing";
    } catch (const std::system_error& error) {
      EXPECT_EQ(error.code(), std::errc::not_enough_memory) << error.what();
    }
    for (const UringChunk& chunk : held) reader.release(chunk);
  }
  EXPECT_EQ(f.in_use(), 0u);
}

TEST(UringReader, BadOptionsAreRejected) {
  SKIP_WITHOUT_IO_URING();
  PoolFixture f;
  EXPECT_THROW(UringReader(f.pool, {}, {.queue_depth = 0}), std::invalid_argument);
  EXPECT_THROW(UringReader(f.pool, {}, {.queue_depth = 65}), std::invalid_argument);
  EXPECT_THROW(UringReader(f.pool, {}, {.chunk_bytes = 255}), std::invalid_argument);
  EXPECT_THROW(UringReader(f.pool, {}, {.chunk_bytes = std::size_t{128} << 20}),
               std::invalid_argument);
  EXPECT_THROW(UringReader(f.pool, {}, {.chunk_bytes = 4096, .direct_io = true}),
               std::invalid_argument);
  UringReader empty(f.pool, {});
  EXPECT_FALSE(empty.next());
  EXPECT_EQ(empty.total_bytes(), 0u);
}

}  // namespace
}  // namespace ringfork
