// UringReader's reads and lifetime: several reads are really in flight; fixed buffers, plain
// reads and O_DIRECT all work; every pool block comes back, also when chunks are freed by
// another process or the reader is dropped mid-run; an exhausted pool or a forked child's use
// throws instead of hanging; bad options are rejected. Line cutting and paths have their own
// tests (uring_reader_lines_test.cpp, uring_reader_paths_test.cpp).
#include "ringfork/uring_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "test_support.h"
#include "uring_reader_fixture.h"

namespace ringfork {
namespace {

using testing::expect_clean_exit;
using testing::expect_files_reproduced;
using testing::fork_child;
using testing::random_lines;
using testing::read_all;
using testing::resident_pages;
using testing::TempDir;
using testing::UringPoolFixture;

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
    UringPoolFixture f;
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
    UringPoolFixture f;
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
  UringPoolFixture f;
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
  UringPoolFixture f;
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
  UringPoolFixture f;
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
  UringPoolFixture f;
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
  UringPoolFixture f(std::size_t{1} << 20, {65536});
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
  UringPoolFixture f;
  EXPECT_THROW(UringReader(f.pool, {}, {.queue_depth = 0}), std::invalid_argument);
  EXPECT_THROW(UringReader(f.pool, {}, {.queue_depth = 65}), std::invalid_argument);
  EXPECT_THROW(UringReader(f.pool, {}, {.chunk_bytes = 255}), std::invalid_argument);
  EXPECT_THROW(UringReader(f.pool, {}, {.chunk_bytes = std::size_t{128} << 20}),
               std::invalid_argument);
  // 8 KiB left no room for an aligned read after the headroom: reads of 0 bytes, forever.
  EXPECT_THROW(UringReader(f.pool, {}, {.chunk_bytes = 8192, .direct_io = true}),
               std::invalid_argument);
  UringReader empty(f.pool, {});
  EXPECT_FALSE(empty.next());
  EXPECT_EQ(empty.total_bytes(), 0u);
}

}  // namespace
}  // namespace ringfork
