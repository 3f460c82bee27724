// UringReader's byte ranges: a range delivers exactly the lines whose first byte it holds
// (checked byte for byte against the file), so ranges that tile a file hand out each line
// once: at every range length down to 1 byte, with ranges starting on, just after and inside
// a line, lines longer than a range or than max_line_bytes, no final newline, and one reader
// reused across ranges and files.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "ringfork/input_files.h"
#include "ringfork/uring_reader.h"
#include "uring_reader_fixture.h"

namespace ringfork {
namespace {

using testing::random_lines;
using testing::TempDir;
using testing::UringPoolFixture;

struct RangeRead {
  std::string text;         // the delivered bytes, in order
  std::uint64_t first = 0;  // file offset of the first delivered byte
  std::size_t continued = 0;
};

// Reads one range to its end, checking that chunks follow each other without gap; with
// `listed`, the file must still be the one it describes.
RangeRead read_range(UringReader& reader, const std::string& path, std::uint64_t size,
                     std::uint64_t offset, std::uint64_t length,
                     const InputFile* listed = nullptr) {
  reader.read_range(path, size,
                    {.offset = offset,
                     .length = length,
                     .device = listed ? listed->device : 0,
                     .inode = listed ? listed->inode : 0});
  RangeRead read;
  while (auto chunk = reader.next()) {
    if (read.text.empty()) read.first = chunk->file_offset;
    EXPECT_EQ(chunk->file_offset, read.first + read.text.size()) << "gap at " << offset;
    EXPECT_EQ(chunk->file, 0u);
    if (chunk->continued()) ++read.continued;
    read.text.append(reader.text(*chunk));
    reader.release(*chunk);
  }
  return read;
}

// The lines of `text` that start in [offset, offset + length), computed the obvious way.
RangeRead lines_starting_in(const std::string& text, std::uint64_t offset, std::uint64_t length) {
  RangeRead out;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t newline = text.find('\n', start);
    const std::size_t end = newline == std::string::npos ? text.size() : newline + 1;
    if (start >= offset && start - offset < length) {
      if (out.text.empty()) out.first = start;
      out.text.append(text, start, end - start);
    }
    start = end;
  }
  return out;
}

// Reads `text` (the file at `path`) as consecutive ranges of `length` bytes: each must deliver
// exactly the lines that start in it, and together the whole file.
void expect_ranges_tile(UringReader& reader, const std::string& path, const std::string& text,
                        std::uint64_t length) {
  std::string joined;
  for (std::uint64_t offset = 0; offset < text.size(); offset += length) {
    const RangeRead read = read_range(reader, path, text.size(), offset, length);
    const RangeRead want = lines_starting_in(text, offset, length);
    ASSERT_EQ(read.text, want.text) << "range at " << offset;
    EXPECT_EQ(read.first, want.first) << "range at " << offset;
    joined += read.text;
  }
  EXPECT_TRUE(joined == text) << "the ranges together are not the file";
}

TEST(UringReaderRange, RangesTilingAFileDeliverEachLineOnceAtEveryRangeLength) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(20261130);
  TempDir dir;
  UringPoolFixture f;
  for (const bool final_newline : {true, false}) {
    const std::string text = random_lines(rng, 30'000, 300, final_newline);
    const std::string path = dir.write(final_newline ? "nl.log" : "no_nl.log", text);
    for (const std::size_t chunk : {std::size_t{256}, std::size_t{4096}, std::size_t{65536}}) {
      UringReader reader(f.pool, {}, {.chunk_bytes = chunk});
      for (const std::uint64_t length : {1, 2, 7, 100, 1000, 4096, 30'000, 100'000}) {
        SCOPED_TRACE("chunk " + std::to_string(chunk) + " range " + std::to_string(length));
        expect_ranges_tile(reader, path, text, length);
      }
    }
  }
  EXPECT_EQ(f.in_use(), 0u) << "blocks left allocated";
}

// With direct_io, a range's reads start and end on O_DIRECT's alignment around its bytes: the
// same lines as through the page cache, and no file falls back to it (an unaligned first read
// would be refused and make it fall back).
TEST(UringReaderRange, DirectIoRangesReadAlignedAndDeliverTheSameLines) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(20261201);
  TempDir dir;
  UringPoolFixture f;
  const std::string text = random_lines(rng, 100'000, 700, false);
  const std::string path = dir.write("direct.log", text);
  for (const std::size_t chunk : {std::size_t{16384}, std::size_t{65536}}) {
    UringReader reader(f.pool, {}, {.chunk_bytes = chunk, .direct_io = true});
    // Every range is read from the device: a few hundred of them, not one per byte.
    for (const std::uint64_t length : {777, 4096, 5000, 30'000, 300'000}) {
      SCOPED_TRACE("chunk " + std::to_string(chunk) + " range " + std::to_string(length));
      expect_ranges_tile(reader, path, text, length);
    }
    if (reader.stats().direct_files == 0) {
      std::printf("%s refuses O_DIRECT: aligned range reads NOT CHECKED\n", dir.path.c_str());
      continue;
    }
    EXPECT_EQ(reader.stats().direct_fallbacks, 0u) << "a range read fell back to the page cache";
  }
  EXPECT_EQ(f.in_use(), 0u) << "blocks left allocated";
}

TEST(UringReaderRange, RangeStartingOnAfterOrInsideALine) {
  SKIP_WITHOUT_IO_URING();
  TempDir dir;
  UringPoolFixture f;
  const std::string text = "aaa\nbbb\r\nccc";  // lines start at 0, 4 and 9
  const std::string path = dir.write("small.log", text);
  UringReader reader(f.pool, {}, {.chunk_bytes = 256});
  const auto range = [&](std::uint64_t offset, std::uint64_t length) {
    return read_range(reader, path, text.size(), offset, length).text;
  };
  EXPECT_EQ(range(0, 1), "aaa\n");
  EXPECT_EQ(range(1, 3), "");         // inside the first line, up to its newline
  EXPECT_EQ(range(3, 1), "");         // the newline alone
  EXPECT_EQ(range(4, 1), "bbb\r\n");  // exactly at a line start
  EXPECT_EQ(range(3, 2), "bbb\r\n");  // the newline and the next line's first byte
  EXPECT_EQ(range(8, 1), "");         // the '\n' of a CRLF
  EXPECT_EQ(range(9, 3), "ccc");      // the last line, unterminated
  EXPECT_EQ(range(11, 1), "");        // its last byte
  EXPECT_EQ(range(0, 100), text);     // longer than the file
  EXPECT_EQ(range(12, 5), "");        // past the end
  EXPECT_EQ(range(5, 0), "");         // empty
  EXPECT_EQ(f.in_use(), 0u);
}

TEST(UringReaderRange, LineSpanningManyRangesComesWholeFromTheRangeHoldingItsStart) {
  SKIP_WITHOUT_IO_URING();
  TempDir dir;
  UringPoolFixture f;
  const std::string long_line = std::string(50'000, 'x') + "\n";
  const std::string text = "a\n" + long_line + "b\n" + long_line;  // the last one ends the file
  const std::string path = dir.write("long.log", text);
  for (const std::size_t chunk : {std::size_t{256}, std::size_t{4096}}) {
    UringReader reader(f.pool, {}, {.chunk_bytes = chunk});
    std::vector<std::string> got;
    for (std::uint64_t offset = 0; offset < text.size(); offset += 1000) {
      got.push_back(read_range(reader, path, text.size(), offset, 1000).text);
    }
    ASSERT_EQ(got.size(), 101u);
    EXPECT_TRUE(got[0] == "a\n" + long_line) << got[0].size() << " bytes in range 0";
    for (std::size_t i = 1; i < got.size(); ++i) {
      const std::uint64_t second = 2 + long_line.size();  // "b\n" and then the second long line
      const std::string want = i == second / 1000 ? "b\n" + long_line : "";
      EXPECT_TRUE(got[i] == want) << "range " << i << ": " << got[i].size() << " bytes";
    }
  }
  EXPECT_EQ(f.in_use(), 0u);
}

TEST(UringReaderRange, LineLongerThanMaxLineBytesArrivesInContinuedPieces) {
  SKIP_WITHOUT_IO_URING();
  TempDir dir;
  UringPoolFixture f;
  const std::string text = "head\n" + std::string(20'000, 'y') + "\ntail\n";
  const std::string path = dir.write("pieces.log", text);
  UringReader reader(f.pool, {}, {.chunk_bytes = 4096, .max_line_bytes = 4096});
  const RangeRead first = read_range(reader, path, text.size(), 0, 4096);
  EXPECT_TRUE(first.text == text.substr(0, text.size() - 5));
  EXPECT_GE(first.continued, 4u);
  EXPECT_EQ(read_range(reader, path, text.size(), 4096, 4096).text, "");
  EXPECT_EQ(read_range(reader, path, text.size(), 20'000, 10'000).text, "tail\n");
  EXPECT_EQ(f.in_use(), 0u);
}

TEST(UringReaderRange, ReaderIsReusedAcrossFilesAndRefusesANewRangeMidway) {
  SKIP_WITHOUT_IO_URING();
  TempDir dir;
  UringPoolFixture f;
  const std::string a = dir.write("a.log", "1\n22\n333\n");
  const std::string b = dir.write("b.log", "4444\n55555\n");
  UringReader reader(f.pool, {}, {.chunk_bytes = 256});
  EXPECT_EQ(read_range(reader, a, 9, 2, 3).text, "22\n");
  EXPECT_EQ(read_range(reader, b, 11, 0, 5).text, "4444\n");
  EXPECT_EQ(reader.files(), std::vector<std::string>{b});
  // A file that grew after it was listed is read up to its listed size.
  EXPECT_EQ(read_range(reader, b, 8, 5, 100).text, "555");

  reader.read_range(a, 9, {.offset = 0, .length = 9});
  auto chunk = reader.next();
  ASSERT_TRUE(chunk.has_value());
  reader.release(*chunk);
  EXPECT_THROW(reader.read_range(b, 11, {.offset = 0, .length = 11}), std::logic_error);
  while (auto rest = reader.next()) reader.release(*rest);
  EXPECT_EQ(read_range(reader, b, 11, 5, 6).text, "55555\n");
  EXPECT_EQ(f.in_use(), 0u);
}

// Expects next() to throw `code`, naming `path` and `detail`; the reader then has nothing
// left from that range.
void expect_error(UringReader& reader, const std::string& path, int code,
                  const std::string& detail) {
  try {
    while (auto chunk = reader.next()) reader.release(*chunk);
    ADD_FAILURE() << "no error for " << path;
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code().value(), code) << error.what();
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find(detail), std::string::npos) << error.what();
  }
  while (auto chunk = reader.next()) reader.release(*chunk);
}

TEST(UringReaderRange, MissingFileThrowsFromNextNamingIt) {
  SKIP_WITHOUT_IO_URING();
  TempDir dir;
  UringPoolFixture f;
  const std::string gone = dir.path + "/gone.log";
  UringReader reader(f.pool, {}, {.chunk_bytes = 256});
  reader.read_range(gone, 100, {.offset = 0, .length = 100});
  expect_error(reader, gone, ENOENT, "cannot open");
  EXPECT_FALSE(reader.next().has_value());
  const std::string there = dir.write("there.log", "ok\n");
  EXPECT_EQ(read_range(reader, there, 3, 0, 3).text, "ok\n");
}

// A range's file shorter than the size it was listed with (truncated or rotated since, as
// logrotate's copytruncate does) is an error naming it, not a range that ends early without
// a word: the range's lines are not all there. So is one that shrinks while it is read.
TEST(UringReaderRange, FileShorterThanListedIsAnErrorNotAShortRange) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(11);
  TempDir dir;
  UringPoolFixture f;
  const std::string text = random_lines(rng, 1'000'000, 100);
  const std::string path = dir.write("rotated.log", text);
  {
    UringReader reader(f.pool, {}, {.chunk_bytes = 65536});
    reader.read_range(path, text.size() + 10, {.offset = 0, .length = text.size() + 10});
    expect_error(reader, path, ESTALE, "since it was listed");

    reader.read_range(path, text.size(), {.offset = 0, .length = text.size()});
    auto chunk = reader.next();
    ASSERT_TRUE(chunk.has_value());
    reader.release(*chunk);
    ASSERT_EQ(::truncate(path.c_str(), 300'001), 0);
    expect_error(reader, path, ESTALE, "while it was read");
    EXPECT_EQ(read_range(reader, path, 300'001, 0, 300'001).text, text.substr(0, 300'001))
        << "the reader is usable after the error";
  }
  EXPECT_EQ(f.in_use(), 0u);
}

// A file rotated since it was listed (renamed away, another put at its path, as logrotate
// does): its ranges fail naming it, instead of delivering the new file's lines as the old's.
TEST(UringReaderRange, FileRotatedSinceItWasListedIsAnError) {
  SKIP_WITHOUT_IO_URING();
  TempDir dir;
  UringPoolFixture f;
  const std::string path = dir.write("app.log", "old line\n");
  const InputFile listed = list_input_files({path}, false).files.at(0);
  const std::string newer = dir.write("new.log", "a longer, newer line\n");
  ASSERT_EQ(::rename(newer.c_str(), path.c_str()), 0);
  UringReader reader(f.pool, {}, {.chunk_bytes = 256});
  reader.read_range(path, listed.size,
                    {.offset = 0, .length = listed.size, .device = listed.device,
                     .inode = listed.inode});
  expect_error(reader, path, ESTALE, "another file than the one listed");

  const InputFile relisted = list_input_files({path}, false).files.at(0);
  EXPECT_NE(relisted.inode, listed.inode);
  EXPECT_EQ(read_range(reader, path, relisted.size, 0, relisted.size, &relisted).text,
            "a longer, newer line\n");
}

// A FIFO put where a listed file was: an error, not an open that blocks for ever.
TEST(UringReaderRange, FifoInPlaceOfTheFileIsAnErrorNotAHang) {
  SKIP_WITHOUT_IO_URING();
  TempDir dir;
  UringPoolFixture f;
  const std::string path = dir.path + "/was-a-file.log";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  UringReader reader(f.pool, {}, {.chunk_bytes = 256});
  reader.read_range(path, 100, {.offset = 0, .length = 100});
  expect_error(reader, path, ESTALE, "no longer a regular file");
}

}  // namespace
}  // namespace ringfork
