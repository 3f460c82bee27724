// BlockPool: size classes, limits and statistics in one process; no block handed out twice
// across forked processes and threads; a SIGKILLed owner's blocks come back through reclaim;
// a forked child never uses its parent's cache; debug builds stop a double free; the tagged
// head defeats ABA.
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

#include "test_support.h"

namespace ringfork {
namespace {

using testing::expect_clean_exit;
using testing::fork_child;
using testing::wait_child;

// A pool in a fresh segment; members in construction order (the arena points at the segment,
// the pool at the arena), so the whole thing is built in place and never moved.
struct PoolFixture {
  explicit PoolFixture(const BlockPoolOptions& options, std::size_t capacity = 256 << 20)
      : segment(Segment::create({.capacity = capacity})),
        arena(SharedArena::create(segment)),
        pool(BlockPool::create(arena, options)) {}
  Segment segment;
  SharedArena arena;
  BlockPool pool;

  std::uint64_t* words(std::uint64_t block) const {
    return reinterpret_cast<std::uint64_t*>(segment.base() + block);
  }
  std::uint64_t total_in_use() const {
    std::uint64_t total = 0;
    for (const auto& s : pool.stats()) total += s.in_use;
    return total;
  }
};

// Cheap per-process randomness for the stress loops.
struct XorShift {
  std::uint64_t state;
  std::uint64_t next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
};

// Stamps a block with its holder and offset (first and last words), to catch any other writer.
void stamp(const PoolFixture& f, std::uint64_t block, std::size_t bytes, std::uint64_t holder) {
  std::uint64_t* words = f.words(block);
  words[0] = holder;
  words[1] = block;
  words[bytes / 8 - 1] = ~block;
}
bool stamp_intact(const PoolFixture& f, std::uint64_t block, std::size_t bytes,
                  std::uint64_t holder) {
  const std::uint64_t* words = f.words(block);
  return words[0] == holder && words[1] == block && words[bytes / 8 - 1] == ~block;
}

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

TEST(BlockPool, ManyProcessesNeverShareABlockAndLeakNone) {
  constexpr int kProcesses = 4;
  constexpr int kPairsPerProcess = 1'000'000;
  constexpr std::size_t kHeldMax = 8;
  const std::vector<std::size_t> sizes = {64, 256, 1024, 4096, 65536};
  PoolFixture f({.block_sizes = sizes, .max_bytes = 48 << 20}, 128 << 20);
  // One ownership byte per 64-byte granule of the segment: 0 free, 1 handed out.
  const std::size_t granules = f.segment.capacity() / 64;
  auto* owned = f.segment.at(
      Offset<std::atomic<std::uint8_t>>{f.arena.allocate_or_throw(granules, 64, "owners")},
      granules);
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    children.push_back(fork_child([&, p] {
      const auto me = static_cast<std::uint64_t>(::getpid());
      XorShift random{0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(p + 1)};
      struct Held {
        std::uint64_t block;
        std::size_t bytes;
      };
      std::vector<Held> held;
      int failures = 0;
      auto release = [&](std::size_t i) {
        const Held h = held[i];
        if (!stamp_intact(f, h.block, h.bytes, me)) ++failures;
        // Clear ownership before the block can go to anyone else.
        if (owned[h.block / 64].exchange(0, std::memory_order_acq_rel) != 1) ++failures;
        f.pool.free(h.block);
        held[i] = held.back();
        held.pop_back();
      };
      for (int pair = 0; pair < kPairsPerProcess && failures == 0;) {
        const std::uint64_t r = random.next();
        if (held.size() < kHeldMax && (held.empty() || (r & 1) != 0)) {
          // Mostly small blocks, so the test runs in seconds; large ones now and then.
          const std::size_t cls = (r >> 8) % 64 == 0 ? 3 + (r >> 16) % 2 : (r >> 16) % 3;
          std::uint64_t block = 0;
          if (f.pool.allocate(sizes[cls], block)) return 2;
          if (owned[block / 64].exchange(1, std::memory_order_acq_rel) != 0) return 3;
          stamp(f, block, sizes[cls], me);
          held.push_back({block, sizes[cls]});
          ++pair;
        } else {
          release((r >> 8) % held.size());
        }
      }
      while (!held.empty()) release(0);
      f.pool.flush_local_cache();
      return failures == 0 ? 0 : 4;
    }));
  }
  for (pid_t child : children) expect_clean_exit(child, std::chrono::minutes(5));
  for (const auto& s : f.pool.stats()) {
    EXPECT_EQ(s.in_use, 0u) << s.block_bytes << "-byte class leaked";
    EXPECT_GT(s.high_water, 0u) << s.block_bytes;
    EXPECT_LE(s.high_water, s.carved) << s.block_bytes;
  }
  EXPECT_EQ(
      std::count_if(owned, owned + granules, [](const auto& byte) { return byte.load() != 0; }), 0);
}

TEST(BlockPool, ThreadsNeverShareABlock) {
  constexpr int kThreads = 4;
  constexpr int kPairsPerThread = 100'000;
  const std::vector<std::size_t> sizes = {64, 256, 4096};
  PoolFixture f({.block_sizes = sizes, .max_bytes = 16 << 20}, 64 << 20);
  const std::size_t granules = f.segment.capacity() / 64;
  std::vector<std::atomic<std::uint8_t>> owned(granules);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      XorShift random{0xda942042e4dd58b5ull * static_cast<std::uint64_t>(t + 1)};
      const std::uint64_t me = 1000 + static_cast<std::uint64_t>(t);
      std::vector<std::pair<std::uint64_t, std::size_t>> held;
      for (int pair = 0; pair < kPairsPerThread;) {
        const std::uint64_t r = random.next();
        if (held.size() < 8 && (held.empty() || (r & 1) != 0)) {
          const std::size_t bytes = sizes[(r >> 16) % sizes.size()];
          std::uint64_t block = 0;
          if (f.pool.allocate(bytes, block)) {
            failures.fetch_add(1);
            return;
          }
          if (owned[block / 64].exchange(1, std::memory_order_acq_rel) != 0) failures.fetch_add(1);
          stamp(f, block, bytes, me);
          held.emplace_back(block, bytes);
          ++pair;
        } else {
          const std::size_t i = (r >> 8) % held.size();
          const auto [block, bytes] = held[i];
          if (!stamp_intact(f, block, bytes, me)) failures.fetch_add(1);
          if (owned[block / 64].exchange(0, std::memory_order_acq_rel) != 1) failures.fetch_add(1);
          f.pool.free(block);
          held[i] = held.back();
          held.pop_back();
        }
      }
      for (const auto& [block, bytes] : held) {
        owned[block / 64].store(0, std::memory_order_relaxed);
        f.pool.free(block);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  f.pool.flush_local_cache();
  EXPECT_EQ(f.total_in_use(), 0u);
}

// Fault injected: SIGKILL of an owner at a random moment of its alloc/free loop.
TEST(BlockPool, KilledOwnersBlocksComeBackThroughReclaim) {
  constexpr int kTrials = 100;
  const std::vector<std::size_t> sizes = {64, 1024, 4096};
  PoolFixture f({.block_sizes = sizes, .max_bytes = 16 << 20}, 64 << 20);
  auto* ready = f.segment.at(
      Offset<std::atomic<std::uint32_t>>{f.arena.allocate_or_throw(64, 64, "ready flag")});
  const auto parent = static_cast<std::uint64_t>(::getpid());
  std::vector<std::pair<std::uint64_t, std::size_t>> mine;
  for (std::size_t bytes : sizes) {
    for (int i = 0; i < 3; ++i) {
      std::uint64_t block = 0;
      ASSERT_FALSE(f.pool.allocate(bytes, block));
      stamp(f, block, bytes, parent);
      mine.emplace_back(block, bytes);
    }
  }
  XorShift random{42};
  std::size_t total_reclaimed = 0;
  for (int trial = 0; trial < kTrials; ++trial) {
    ready->store(0, std::memory_order_relaxed);
    const int hold = 2 + static_cast<int>(random.next() % 40);
    const pid_t child = fork_child([&, trial] {
      XorShift r{static_cast<std::uint64_t>(trial) * 7919 + 1};
      const auto me = static_cast<std::uint64_t>(::getpid());
      std::vector<std::uint64_t> held;
      for (int i = 0; i < hold; ++i) {
        const std::size_t bytes = sizes[r.next() % sizes.size()];
        std::uint64_t block = 0;
        if (f.pool.allocate(bytes, block)) return 2;
        stamp(f, block, bytes, me);
        held.push_back(block);
      }
      for (int i = 0; i < hold / 2; ++i) {  // these sit in the child's cache
        f.pool.free(held.back());
        held.pop_back();
      }
      // release: the parent may kill us once our blocks are recorded as ours.
      ready->store(1, std::memory_order_release);
      for (std::uint64_t i = 0;; ++i) {
        std::uint64_t block = 0;
        if (f.pool.allocate(sizes[r.next() % sizes.size()], block)) return 3;
        f.pool.free(block);
        if (i % 64 == 0) f.pool.flush_local_cache();  // so kills also land in pushes
      }
    });
    ASSERT_GT(child, 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    // acquire: pairs with the child's release.
    while (ready->load(std::memory_order_acquire) == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    EXPECT_EQ(ready->load(std::memory_order_acquire), 1u) << "child never got ready";
    std::this_thread::sleep_for(std::chrono::microseconds(random.next() % 2000));
    ::kill(child, SIGKILL);
    const int status = wait_child(child, std::chrono::seconds(20));
    ASSERT_TRUE(WIFSIGNALED(status)) << "trial " << trial << " status " << status;
    const std::size_t reclaimed = f.pool.reclaim(child);
    EXPECT_GE(reclaimed, static_cast<std::size_t>(hold - hold / 2)) << "trial " << trial;
    total_reclaimed += reclaimed;
    EXPECT_EQ(f.pool.reclaim(child), 0u) << "a second reclaim finds nothing";
    EXPECT_EQ(f.total_in_use(), mine.size()) << "trial " << trial;
    for (const auto& [block, bytes] : mine) {
      ASSERT_TRUE(stamp_intact(f, block, bytes, parent)) << "trial " << trial;
    }
    if (trial % 10 == 0) {  // still usable, and never hands out what the parent holds
      std::set<std::uint64_t> fresh;
      for (int i = 0; i < 60; ++i) {
        std::uint64_t block = 0;
        ASSERT_FALSE(f.pool.allocate(sizes[i % sizes.size()], block));
        EXPECT_TRUE(fresh.insert(block).second);
      }
      for (const auto& held : mine) EXPECT_EQ(fresh.count(held.first), 0u);
      for (std::uint64_t block : fresh) f.pool.free(block);
    }
  }
  std::uint64_t stats_reclaimed = 0;
  for (const auto& s : f.pool.stats()) stats_reclaimed += s.reclaimed;
  EXPECT_EQ(stats_reclaimed, total_reclaimed);
  for (const auto& held : mine) f.pool.free(held.first);
  f.pool.flush_local_cache();
  EXPECT_EQ(f.total_in_use(), 0u);
  // Drain one class to the cap: whatever a crash left behind, no block comes out twice.
  std::set<std::uint64_t> drained;
  std::uint64_t block = 0;
  while (!f.pool.allocate(64, block)) ASSERT_TRUE(drained.insert(block).second) << block;
  EXPECT_GE(drained.size() + kTrials, f.pool.stats()[0].carved) << "at most one leak per kill";
}

TEST(BlockPool, ForkedChildNeverUsesItsParentsCache) {
  PoolFixture f({.block_sizes = {64}, .max_bytes = 4 << 20}, 16 << 20);
  constexpr int kChildBlocks = 64;
  auto* seen = f.segment.at(Offset<std::uint64_t>{f.arena.allocate_or_throw(
                                kChildBlocks * sizeof(std::uint64_t), 64, "child's blocks")},
                            kChildBlocks);
  const auto parent = static_cast<std::uint64_t>(::getpid());
  std::vector<std::uint64_t> held, cached;
  for (int i = 0; i < 12; ++i) {
    std::uint64_t block = 0;
    ASSERT_FALSE(f.pool.allocate(64, block));
    stamp(f, block, 64, parent);
    (i < 4 ? held : cached).push_back(block);
  }
  for (std::uint64_t block : cached) f.pool.free(block);  // warm cache
  const pid_t child = fork_child([&] {
    for (int i = 0; i < kChildBlocks; ++i) {
      if (f.pool.allocate(64, seen[i])) return 2;
      stamp(f, seen[i], 64, static_cast<std::uint64_t>(::getpid()));
    }
    return 0;  // exits holding them all: reclaim's job
  });
  expect_clean_exit(child);
  std::set<std::uint64_t> parents(held.begin(), held.end());
  parents.insert(cached.begin(), cached.end());
  for (int i = 0; i < kChildBlocks; ++i) {
    EXPECT_EQ(parents.count(seen[i]), 0u) << "child got the parent's block " << seen[i];
  }
  for (std::uint64_t block : held) EXPECT_TRUE(stamp_intact(f, block, 64, parent));
  EXPECT_GE(f.pool.reclaim(child), static_cast<std::size_t>(kChildBlocks));
  EXPECT_EQ(f.total_in_use(), held.size());
  std::set<std::uint64_t> again;
  for (std::size_t i = 0; i < cached.size(); ++i) {
    std::uint64_t block = 0;
    ASSERT_FALSE(f.pool.allocate(64, block));
    again.insert(block);
  }
  EXPECT_EQ(again, std::set<std::uint64_t>(cached.begin(), cached.end()))
      << "the parent's cache survived the child";
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

// Fault injected: a pop paused between loading the head and its CAS while another thread pops
// the head block A and its successor B, then pushes A back. Untagged, the CAS would succeed
// and install B, which is in use, as the head.
struct AbaScene {
  BlockPool* pool;
  std::thread::id victim;
  bool interleaved = false;
  std::uint64_t popped_and_pushed = 0;  // A
  std::uint64_t kept = 0;               // B
};

void interleave_aba(void* context) {
  auto& scene = *static_cast<AbaScene*>(context);
  if (std::this_thread::get_id() != scene.victim || scene.interleaved) return;
  scene.interleaved = true;
  // The victim holds its process's cache (it is refilling), so this thread's calls go
  // straight to the shared list.
  std::thread other([&scene] {
    std::uint64_t a = 0, b = 0;
    if (scene.pool->allocate(64, a) || scene.pool->allocate(64, b)) return;
    scene.pool->free(a);
    scene.popped_and_pushed = a;
    scene.kept = b;
  });
  other.join();
}

TEST(BlockPool, TaggedHeadMakesAPausedPopFailAfterAba) {
  PoolFixture f({.block_sizes = {64}, .max_bytes = 1 << 20}, 16 << 20);
  std::uint64_t block = 0;
  ASSERT_FALSE(f.pool.allocate(64, block));  // carves a chunk: the rest goes on the list
  f.pool.free(block);
  f.pool.flush_local_cache();
  AbaScene scene{.pool = &f.pool, .victim = std::this_thread::get_id()};
  if (!BlockPool::set_pop_hook_for_testing(interleave_aba, &scene)) {
    GTEST_SKIP() << "pop hook is compiled only when NDEBUG is undefined";
  }
  std::uint64_t first = 0;
  const std::error_code error = f.pool.allocate(64, first);
  BlockPool::set_pop_hook_for_testing(nullptr, nullptr);
  ASSERT_FALSE(error);
  ASSERT_TRUE(scene.interleaved);
  ASSERT_NE(scene.kept, 0u);
  // Drain everything: B must never come out (it is held), and nothing comes out twice.
  std::set<std::uint64_t> handed_out{first};
  while (!f.pool.allocate(64, block)) {
    EXPECT_NE(block, scene.kept) << "ABA: a block in use came off the free list";
    EXPECT_TRUE(handed_out.insert(block).second) << "handed out twice: " << block;
  }
  EXPECT_EQ(handed_out.count(scene.popped_and_pushed), 1u);
  EXPECT_EQ(handed_out.size() + 1, f.pool.stats()[0].carved) << "all but B, none lost";
}

// Fault injected: fork() while another thread of the parent holds the cache (paused inside a
// refill). The child inherits a cache lock nobody in it will release; it must not hang.
struct PausedRefill {
  std::thread::id victim;
  std::atomic<int> phase{0};  // 1: victim paused inside the pool, 2: may go on
};

void pause_victim(void* context) {
  auto& scene = *static_cast<PausedRefill*>(context);
  if (std::this_thread::get_id() != scene.victim || scene.phase.load() != 0) return;
  scene.phase.store(1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (scene.phase.load() != 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
}

TEST(BlockPool, ChildForkedWhileAParentThreadHoldsTheCacheDoesNotHang) {
  PoolFixture f({.block_sizes = {64}, .max_bytes = 1 << 20}, 16 << 20);
  std::uint64_t block = 0;
  ASSERT_FALSE(f.pool.allocate(64, block));
  f.pool.free(block);
  f.pool.flush_local_cache();  // the next allocate refills from the shared list: hook runs
  PausedRefill scene;
  std::atomic<bool> have_id{false};
  std::thread victim([&] {
    while (!have_id.load()) std::this_thread::yield();
    std::uint64_t mine = 0;
    if (!f.pool.allocate(64, mine)) f.pool.free(mine);
  });
  scene.victim = victim.get_id();
  const bool hooked = BlockPool::set_pop_hook_for_testing(pause_victim, &scene);
  have_id.store(true);
  if (!hooked) {
    victim.join();
    GTEST_SKIP() << "pop hook is compiled only when NDEBUG is undefined";
  }
  while (scene.phase.load() != 1) std::this_thread::yield();
  const pid_t child = fork_child([&] {
    std::uint64_t taken = 0;
    if (f.pool.allocate(64, taken)) return 2;
    f.pool.free(taken);
    f.pool.flush_local_cache();
    return 0;
  });
  expect_clean_exit(child, std::chrono::seconds(20));
  scene.phase.store(2);
  victim.join();
  BlockPool::set_pop_hook_for_testing(nullptr, nullptr);
  EXPECT_EQ(f.pool.reclaim(child), 0u) << "the child returned all it took";
  f.pool.flush_local_cache();
  EXPECT_EQ(f.total_in_use(), 0u);
}

}  // namespace
}  // namespace ringfork
