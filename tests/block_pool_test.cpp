// BlockPool in one process: size classes, limits and statistics; debug builds stop a double
// free or a foreign offset, release builds ignore them without corrupting the pool.
#include "ringfork/block_pool.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "block_pool_fixture.h"
#include "test_support.h"

namespace ringfork {
namespace {

using testing::expect_clean_exit;
using testing::fork_child;
using testing::PoolFixture;
using testing::stamp;
using testing::stamp_intact;
using testing::wait_child;
using testing::XorShift;

TEST(BlockPool, SizesMapToTheSmallestFittingClassAndBlocksAreAligned) {
  PoolFixture f({.max_bytes = std::size_t{160} << 20}, std::size_t{512} << 20);
  const std::vector<std::size_t> classes = BlockPoolOptions{}.block_sizes;
  EXPECT_EQ(f.pool.max_block_bytes(), classes.back());
  std::size_t previous = 0;
  for (std::size_t size : classes) {
    for (std::size_t bytes : {previous + 1, size}) {
      std::uint64_t block = 0;
      ASSERT_FALSE(f.pool.allocate(bytes, block)) << bytes;
      EXPECT_EQ(block % 64, 0u) << bytes;
      EXPECT_EQ(f.pool.block_bytes(block), size) << bytes;
      EXPECT_EQ(f.pool.block_bytes(block + 64), 0u) << "interior offset is not a block";
      stamp(f, block, size, 1);
      EXPECT_TRUE(stamp_intact(f, block, size, 1));
      f.pool.free(block);
    }
    previous = size;
  }
  std::uint64_t block = 0;
  EXPECT_EQ(f.pool.allocate(classes.back() + 1, block), std::errc::invalid_argument);
  ASSERT_FALSE(f.pool.allocate(0, block)) << "zero bytes still gets the smallest class";
  EXPECT_EQ(f.pool.block_bytes(block), classes.front());
  f.pool.free(block);
  for (std::uint64_t foreign : {std::uint64_t{0}, std::uint64_t{64}, std::uint64_t{4096},
                                std::uint64_t{1} << 40, ~std::uint64_t{0} - 63}) {
    EXPECT_EQ(f.pool.block_bytes(foreign), 0u) << foreign;
  }
}

TEST(BlockPool, BadOptionsAndHandlesThrow) {
  Segment segment = Segment::create({.capacity = 16 << 20});
  SharedArena arena = SharedArena::create(segment);
  EXPECT_THROW(BlockPool::create(arena, {.block_sizes = {}}), std::invalid_argument);
  EXPECT_THROW(BlockPool::create(arena, {.block_sizes = {256, 64}}), std::invalid_argument);
  EXPECT_THROW(BlockPool::create(arena, {.block_sizes = {100}}), std::invalid_argument);
  EXPECT_THROW(BlockPool::attach(arena, 8192 + 64), std::invalid_argument);
  EXPECT_THROW(BlockPool::attach(arena, std::uint64_t{1} << 50), std::invalid_argument);
  BlockPool pool = BlockPool::create(arena, {.block_sizes = {64}, .max_bytes = 1 << 20});
  BlockPool again = BlockPool::attach(arena, pool.offset());
  std::uint64_t block = 0;
  ASSERT_FALSE(again.allocate(64, block));
  EXPECT_EQ(pool.block_bytes(block), 64u);
  pool.free(block);
}

TEST(BlockPool, MaxBytesIsEnforcedWithEnomemAndStatsCount) {
  constexpr std::size_t kBytes = 16384;
  PoolFixture f({.block_sizes = {64, kBytes}, .max_bytes = 1 << 20});
  std::vector<std::uint64_t> held;
  std::uint64_t block = 0;
  std::error_code error;
  while (!(error = f.pool.allocate(kBytes, block))) held.push_back(block);
  EXPECT_EQ(error, std::errc::not_enough_memory);
  ASSERT_FALSE(held.empty());
  auto stats = f.pool.stats();
  EXPECT_EQ(stats[1].block_bytes, kBytes);
  EXPECT_EQ(stats[1].carved, held.size()) << "every carved block was handed out";
  EXPECT_LE(held.size() * (kBytes + 64), std::size_t{1} << 20);
  EXPECT_EQ(stats[1].in_use, held.size());
  EXPECT_EQ(stats[1].high_water, held.size());
  EXPECT_EQ(f.pool.allocate(64, block), std::errc::not_enough_memory) << "budget is shared";
  for (std::size_t i = 0; i < held.size() / 2; ++i) f.pool.free(held[i]);
  stats = f.pool.stats();
  EXPECT_EQ(stats[1].in_use, held.size() - held.size() / 2);
  EXPECT_EQ(stats[1].high_water, held.size());
  EXPECT_EQ(stats[1].reclaimed, 0u);
  ASSERT_FALSE(f.pool.allocate(kBytes, block)) << "freed blocks are reused at the cap";
  f.pool.free(block);
  for (std::size_t i = held.size() / 2; i < held.size(); ++i) f.pool.free(held[i]);
  f.pool.flush_local_cache();
  EXPECT_EQ(f.total_in_use(), 0u);
}

#ifndef NDEBUG
TEST(BlockPoolDeathTest, DoubleFreeAndForeignOffsetsAbortInDebugBuilds) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // sanitizer runtimes start threads
  PoolFixture f({.block_sizes = {64, 4096}, .max_bytes = 1 << 20}, 16 << 20);
  std::uint64_t block = 0;
  ASSERT_FALSE(f.pool.allocate(4096, block));
  f.pool.free(block);
  EXPECT_DEATH(f.pool.free(block), "double free");
  EXPECT_DEATH(f.pool.free(block + 64), "not a block");
  EXPECT_DEATH(f.pool.free(std::uint64_t{1} << 40), "not a block");
  EXPECT_DEATH(f.pool.set_owner(block, BlockPool::kSharedOwner), "not in use");
  // Freed by another thread (into that thread's cache), then again here.
  ASSERT_FALSE(f.pool.allocate(64, block));
  std::thread([&] { f.pool.free(block); }).join();
  EXPECT_DEATH(f.pool.free(block), "double free");
}
#else
TEST(BlockPool, DoubleFreeAndForeignOffsetsAreIgnoredInReleaseBuilds) {
  PoolFixture f({.block_sizes = {64}, .max_bytes = 1 << 20}, 16 << 20);
  std::uint64_t block = 0;
  ASSERT_FALSE(f.pool.allocate(64, block));
  f.pool.free(block);
  f.pool.free(block);
  f.pool.free(block + 64);
  f.pool.free(std::uint64_t{1} << 40);
  std::uint64_t first = 0, second = 0;
  ASSERT_FALSE(f.pool.allocate(64, first));
  ASSERT_FALSE(f.pool.allocate(64, second));
  EXPECT_NE(first, second) << "the double free did not put the block in twice";
}
#endif

}  // namespace
}  // namespace ringfork
