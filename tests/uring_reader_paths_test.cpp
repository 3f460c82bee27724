// UringReader's paths: directories expand sorted and recursively to their regular files
// (symlinks to files read, to directories not followed, FIFOs passed over); a missing or
// unreadable path is named, from the constructor or, with keep_going, in errors(); a file
// removed or shrunk after the reader was made fails or ends where it now ends.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "ringfork/uring_reader.h"
#include "uring_reader_fixture.h"

namespace ringfork {
namespace {

using testing::random_lines;
using testing::TempDir;
using testing::UringPoolFixture;

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
  UringPoolFixture f;
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
  UringPoolFixture f;
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
  UringPoolFixture f;
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
  UringPoolFixture f;
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

}  // namespace
}  // namespace ringfork
