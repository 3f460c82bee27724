// SharedArena: aligned, disjoint allocations from several processes; exhaustion is an error.
#include "ringfork/arena.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "test_support.h"

namespace ringfork {
namespace {

using testing::expect_clean_exit;
using testing::fork_child;

TEST(SharedArena, AllocationsAreAlignedZeroedAndCommitted) {
  Segment segment = Segment::create({.capacity = 16 << 20});
  SharedArena arena = SharedArena::create(segment);
  for (std::size_t alignment : {1u, 8u, 64u, 4096u}) {
    std::uint64_t offset = 0;
    ASSERT_FALSE(arena.allocate(3 << 20, alignment, offset));
    EXPECT_EQ(offset % alignment, 0u);
    auto* bytes = segment.try_at(Offset<unsigned char>{offset}, 3 << 20);
    ASSERT_NE(bytes, nullptr);
    EXPECT_TRUE(std::all_of(bytes, bytes + (3 << 20), [](unsigned char b) { return b == 0; }));
  }
}

TEST(SharedArena, ExhaustionIsAnErrorCode) {
  Segment segment = Segment::create({.capacity = 4 << 20});
  SharedArena arena = SharedArena::create(segment);
  std::uint64_t offset = 0;
  EXPECT_EQ(arena.allocate(8 << 20, 64, offset), std::errc::no_space_on_device);
  EXPECT_EQ(arena.allocate(64, 3, offset), std::errc::invalid_argument);
  EXPECT_THROW(arena.allocate_or_throw(8 << 20, 64, "a test ring"), std::system_error);
  ASSERT_FALSE(arena.allocate(1 << 20, 64, offset)) << "still usable after a failure";
}

TEST(SharedArena, ConcurrentProcessesGetDisjointRanges) {
  constexpr int kProcesses = 4;
  constexpr int kPerProcess = 2000;
  Segment segment = Segment::create({.capacity = 64 << 20});
  SharedArena arena = SharedArena::create(segment);
  std::uint64_t table_offset = arena.allocate_or_throw(
      sizeof(std::uint64_t) * kProcesses * kPerProcess, 64, "result table");
  auto* table = segment.at(Offset<std::uint64_t>{table_offset}, kProcesses * kPerProcess);
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    children.push_back(fork_child([&, p] {
      SharedArena mine = SharedArena::attach(segment);
      for (int i = 0; i < kPerProcess; ++i) {
        std::uint64_t offset = 0;
        if (mine.allocate(24 + (i % 5) * 8, 8, offset)) return 1;
        table[p * kPerProcess + i] = offset;
      }
      return 0;
    }));
  }
  for (pid_t child : children) expect_clean_exit(child);
  std::vector<std::uint64_t> offsets(table, table + kProcesses * kPerProcess);
  std::sort(offsets.begin(), offsets.end());
  EXPECT_EQ(std::adjacent_find(offsets.begin(), offsets.end()), offsets.end()) << "duplicate";
  for (std::size_t i = 1; i < offsets.size(); ++i) {
    EXPECT_GE(offsets[i] - offsets[i - 1], 24u) << "overlapping allocations";
  }
}

TEST(SharedArena, RootsAreFoundByNameAfterAttach) {
  Segment segment = Segment::create({.capacity = 4 << 20});
  SharedArena arena = SharedArena::create(segment);
  arena.publish_root("orders", 8192);
  EXPECT_THROW(arena.publish_root("orders", 1), std::invalid_argument);
  EXPECT_THROW(arena.publish_root(std::string(60, 'x'), 1), std::invalid_argument);
  Segment attached = Segment::attach_fd(segment.fd());
  SharedArena seen = SharedArena::attach(attached);
  EXPECT_EQ(seen.find_root("orders"), 8192u);
  EXPECT_EQ(seen.find_root("missing"), 0u);
}

TEST(SharedArena, AttachRejectsSegmentWithoutArena) {
  Segment segment = Segment::create({.capacity = 4 << 20});
  EXPECT_THROW(SharedArena::attach(segment), std::invalid_argument);
}

}  // namespace
}  // namespace ringfork
