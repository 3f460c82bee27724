// BlockPool shared by forked processes and by threads: no block handed out twice, none
// leaked, per-thread caches returned when their thread exits, blocks freed by another thread.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
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

// Caches are per thread: blocks a thread freed sit in its cache until it exits, and then go
// back to the shared lists, where any thread or process finds them.
TEST(BlockPool, ExitingThreadReturnsItsCachedBlocks) {
  // One chunk of 64-byte blocks is the whole budget: the pool cannot carve more.
  PoolFixture f({.block_sizes = {64}, .max_bytes = 256 << 10}, 16 << 20);
  std::size_t carved = 0;
  std::thread worker([&] {
    std::vector<std::uint64_t> held;
    std::uint64_t block = 0;
    while (!f.pool.allocate(64, block)) held.push_back(block);
    carved = held.size();
    for (std::uint64_t b : held) f.pool.free(b);  // the last ones stay in this thread's cache
  });
  worker.join();
  ASSERT_GT(carved, 64u);
  std::set<std::uint64_t> again;
  std::uint64_t block = 0;
  while (!f.pool.allocate(64, block)) ASSERT_TRUE(again.insert(block).second) << block;
  EXPECT_EQ(again.size(), carved) << "blocks cached by the exited thread are lost";
  for (std::uint64_t b : again) f.pool.free(b);
}

// Blocks handed from producer threads to consumer threads (through a mutex-guarded queue, the
// caller's synchronisation) and freed there: they enter the consumer's cache and are handed
// out again by it, never to two holders at once.
TEST(BlockPool, BlocksFreedByAnotherThreadAreNeverHandedOutTwice) {
  constexpr int kPairs = 2;
  constexpr int kBlocksPerProducer = 50'000;
  PoolFixture f({.block_sizes = {64, 1024}, .max_bytes = 8 << 20}, 32 << 20);
  const std::size_t granules = f.segment.capacity() / 64;
  std::vector<std::atomic<std::uint8_t>> owned(granules);
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<std::pair<std::uint64_t, std::size_t>> handed;
  int producers_left = kPairs;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kPairs; ++t) {
    threads.emplace_back([&, t] {  // producer
      XorShift random{0x2545f4914f6cdd1dull * static_cast<std::uint64_t>(t + 1)};
      for (int i = 0; i < kBlocksPerProducer; ++i) {
        const std::size_t bytes = (random.next() & 7) == 0 ? 1024 : 64;
        std::uint64_t block = 0;
        if (f.pool.allocate(bytes, block)) {
          failures.fetch_add(1);
          break;
        }
        if (owned[block / 64].exchange(1, std::memory_order_acq_rel) != 0) failures.fetch_add(1);
        stamp(f, block, bytes, 7);
        std::lock_guard lock(mutex);
        handed.emplace_back(block, bytes);
        ready.notify_all();
      }
      std::lock_guard lock(mutex);
      --producers_left;
      ready.notify_all();
    });
    threads.emplace_back([&] {  // consumer
      for (;;) {
        std::unique_lock lock(mutex);
        ready.wait(lock, [&] { return !handed.empty() || producers_left == 0; });
        if (handed.empty()) return;
        const auto [block, bytes] = handed.front();
        handed.pop_front();
        lock.unlock();
        if (!stamp_intact(f, block, bytes, 7)) failures.fetch_add(1);
        if (owned[block / 64].exchange(0, std::memory_order_acq_rel) != 1) failures.fetch_add(1);
        f.pool.free(block);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(f.total_in_use(), 0u);
}

}  // namespace
}  // namespace ringfork
