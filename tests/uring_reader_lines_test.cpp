// UringReader's line cutting: every file comes back byte for byte as whole-line chunks (random
// files at every chunk size and buffer mode, empty files, no final newline), lines longer than
// a chunk arrive whole or, past the largest block or max_line_bytes, as continued pieces, and
// CRLF, NUL and binary garbage pass through untouched.
#include <gtest/gtest.h>

#include <cstddef>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "ringfork/uring_reader.h"
#include "test_support.h"
#include "uring_reader_fixture.h"

namespace ringfork {
namespace {

using testing::expect_files_reproduced;
using testing::random_lines;
using testing::read_all;
using testing::ReadResult;
using testing::TempDir;
using testing::UringPoolFixture;

TEST(UringReader, RandomFilesComeBackByteForByteAtEveryChunkSize) {
  SKIP_WITHOUT_IO_URING();
  std::mt19937_64 rng(20240607);
  TempDir dir;
  std::vector<std::string> paths;
  // Under the sanitizers the largest file is smaller (still past the 1 MiB chunk), as the
  // 256 B chunks cost ASan most of this test's time.
  const std::size_t largest = testing::kSanitized ? 1'500'000 : 5'000'000;
  for (int i = 0; i < 24; ++i) {
    const std::size_t sizes[] = {0,    1,      100,     4095,      4096,
                                 4097, 70'000, 300'000, 2'000'000, largest};
    const std::size_t size = sizes[std::uniform_int_distribution<std::size_t>(0, 9)(rng)];
    const std::size_t max_line =
        std::uniform_int_distribution<std::size_t>(0, 1)(rng) != 0 ? 200 : 9000;
    paths.push_back(
        dir.write("f" + std::to_string(100 + i), random_lines(rng, size, max_line, i % 3 != 0)));
  }
  for (const std::size_t chunk : {std::size_t{256}, std::size_t{4096}, std::size_t{16384},
                                  std::size_t{65536}, std::size_t{1} << 20, std::size_t{8} << 20}) {
    for (const UringFixedBuffers fixed :
         {UringFixedBuffers::kAlways, UringFixedBuffers::kNever, UringFixedBuffers::kForDirectIo}) {
      // 256 B buffers cut nearly every line (the long-line path); one mode shows that.
      if (chunk == 256 && fixed != UringFixedBuffers::kNever) continue;
      UringPoolFixture f;
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
  UringPoolFixture f;
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
  UringPoolFixture f;
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
  UringPoolFixture f;
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
  UringPoolFixture f;
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
    UringPoolFixture f;
    {
      UringReader reader(f.pool, paths, {.chunk_bytes = chunk});
      expect_files_reproduced(reader, read_all(reader, f));
    }
    EXPECT_EQ(f.in_use(), 0u);
  }
}

}  // namespace
}  // namespace ringfork
