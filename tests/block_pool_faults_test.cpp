// BlockPool under injected faults: a SIGKILLed owner's blocks (held or cached by any of its
// threads) come back through reclaim; a forked child never uses its parent's cache; the
// tagged head defeats ABA; fork during another thread's refill does not hang.
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
#include "ringfork/block_pool.h"
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

// Fault injected: SIGKILL of a process whose threads are parked with blocks both held and in
// their caches. reclaim() returns every one of them: afterwards the whole budget can be
// allocated again, exactly.
TEST(BlockPool, KilledProcessThreadsCachedBlocksAreAllReclaimed) {
  constexpr int kThreads = 3;
  PoolFixture f({.block_sizes = {64, 4096}, .max_bytes = 2 << 20}, 16 << 20);
  auto* parked = f.segment.at(
      Offset<std::atomic<std::uint32_t>>{f.arena.allocate_or_throw(64, 64, "parked count")});
  const pid_t child = fork_child([&] {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::vector<std::uint64_t> held;
        for (int i = 0; i < 40 + 10 * t; ++i) {
          std::uint64_t block = 0;
          if (f.pool.allocate(i % 5 == 0 ? 4096 : 64, block)) std::abort();
          held.push_back(block);
        }
        for (int i = 0; i < 25; ++i) {  // these go to this thread's cache
          f.pool.free(held.back());
          held.pop_back();
        }
        parked->fetch_add(1, std::memory_order_release);  // release: our records are written
        for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
      });
    }
    for (auto& thread : threads) thread.join();
    return 0;
  });
  ASSERT_GT(child, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  // acquire: pairs with the threads' release.
  while (parked->load(std::memory_order_acquire) != kThreads &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_EQ(parked->load(std::memory_order_acquire), static_cast<std::uint32_t>(kThreads));
  ::kill(child, SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(wait_child(child, std::chrono::seconds(20))));
  // Each thread's refills took whole batches: more than it held, the rest in its cache.
  EXPECT_GT(f.pool.reclaim(child), static_cast<std::size_t>(40 + 50 + 60));
  EXPECT_EQ(f.total_in_use(), 0u);
  const auto stats = f.pool.stats();
  for (std::size_t cls = 0; cls < stats.size(); ++cls) {
    std::set<std::uint64_t> drained;
    std::uint64_t block = 0;
    const std::size_t bytes = stats[cls].block_bytes;
    // Every carved block comes back out once: none stayed with the dead process.
    for (std::uint64_t i = 0; i < stats[cls].carved; ++i) {
      ASSERT_FALSE(f.pool.allocate(bytes, block)) << bytes << " block " << i;
      ASSERT_TRUE(drained.insert(block).second) << block;
    }
    EXPECT_EQ(f.pool.stats()[cls].carved, stats[cls].carved) << "carved anew: a block was lost";
    for (std::uint64_t b : drained) f.pool.free(b);
  }
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

// Fault injected: a pop paused between loading the head and its CAS while another thread pops
// the head block A and its successor B, then pushes A back. Untagged, the CAS would succeed
// and install B, which is in use, as the head. The class holds 1 MiB blocks, so a thread's
// cache holds one block and each refill pops exactly one: the other thread's pops and push
// are exactly A, B and A.
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
  std::thread other([&scene] {
    std::uint64_t a = 0, b = 0;
    if (scene.pool->allocate(1 << 20, a) || scene.pool->allocate(1 << 20, b)) return;
    scene.pool->free(a);              // into this thread's cache (room for one) ...
    scene.pool->flush_local_cache();  // ... and back onto the shared list: A is the head
    scene.popped_and_pushed = a;
    scene.kept = b;
  });
  other.join();
}

TEST(BlockPool, TaggedHeadMakesAPausedPopFailAfterAba) {
  constexpr std::size_t kBlock = 1 << 20;
  PoolFixture f({.block_sizes = {kBlock}, .max_bytes = 4 * (kBlock + 64)}, 16 << 20);
  std::vector<std::uint64_t> blocks(4);
  for (auto& block : blocks) ASSERT_FALSE(f.pool.allocate(kBlock, block));
  for (auto block : blocks) f.pool.free(block);
  f.pool.flush_local_cache();  // all four on the shared list; one chunk is one block
  ASSERT_EQ(f.pool.stats()[0].carved, blocks.size());
  AbaScene scene{.pool = &f.pool, .victim = std::this_thread::get_id()};
  if (!BlockPool::set_pop_hook_for_testing(interleave_aba, &scene)) {
    GTEST_SKIP() << "pop hook is compiled only when NDEBUG is undefined";
  }
  std::uint64_t first = 0;
  const std::error_code error = f.pool.allocate(kBlock, first);
  BlockPool::set_pop_hook_for_testing(nullptr, nullptr);
  ASSERT_FALSE(error);
  ASSERT_TRUE(scene.interleaved);
  ASSERT_NE(scene.kept, 0u);
  EXPECT_EQ(first, scene.popped_and_pushed) << "the retried pop takes A, back at the head";
  // Drain everything: B must never come out (it is held), and nothing comes out twice.
  std::set<std::uint64_t> handed_out{first};
  std::uint64_t block = 0;
  while (!f.pool.allocate(kBlock, block)) {
    EXPECT_NE(block, scene.kept) << "ABA: a block in use came off the free list";
    EXPECT_TRUE(handed_out.insert(block).second) << "handed out twice: " << block;
  }
  EXPECT_EQ(handed_out.size() + 1, f.pool.stats()[0].carved) << "all but B, none lost";
}

// Fault injected: fork() while another thread of the parent is paused inside a refill, between
// a pop's load and CAS. The child has no such thread; its own allocations must neither hang
// nor take what the paused pop is about to take.
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

TEST(BlockPool, ChildForkedWhileAParentThreadIsInsideARefillDoesNotHang) {
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
