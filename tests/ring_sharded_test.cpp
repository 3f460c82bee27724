// ShardedMpmcRing: producers take lanes of their own, consumers find every lane; P x C
// cross-process stress with exact-once accounting (more producers than lanes included),
// producers SIGKILLed at random points, close, and a consumer woken by a push on any lane.
#include "ringfork/ring_sharded.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "mpmc_test_support.h"
#include "test_support.h"

namespace ringfork {
namespace {

using namespace std::chrono_literals;
using namespace testing;  // the MPMC fixtures and the fork helpers

using Ring = ShardedMpmcRing<Message>;

TEST(ShardedMpmcRing, ProducerProcessesTakeLanesOfTheirOwnAndKeepTheirOrder) {
  Fixture f;
  auto ring = Ring::create(f.arena, {.lanes = 3, .lane = {.capacity = 2048}});
  constexpr std::uint64_t kEach = 1000;
  std::vector<pid_t> producers;
  for (std::uint32_t p = 0; p < 3; ++p) {
    producers.push_back(fork_child([&, p] {
      for (std::uint64_t s = 0; s < kEach; ++s) {
        if (ring.try_push(Message::make(p, s)) != RingStatus::kOk) return 2;
      }
      return 0;
    }));
  }
  for (pid_t pid : producers) expect_clean_exit(pid);
  for (std::size_t lane = 0; lane < ring.lane_count(); ++lane) {
    EXPECT_EQ(ring.lane(lane).size(), kEach) << "lane " << lane << " was shared or unused";
  }
  std::uint64_t next[3] = {0, 0, 0};
  Message m{};
  while (ring.try_pop(m) == RingStatus::kOk) {
    ASSERT_TRUE(m.intact());
    ASSERT_LT(m.producer, 3u);
    ASSERT_EQ(m.sequence, next[m.producer]) << "producer " << m.producer << " out of order";
    ++next[m.producer];
  }
  for (std::uint64_t n : next) EXPECT_EQ(n, kEach);
  EXPECT_EQ(ring.try_pop(m), RingStatus::kEmpty);
  ring.close();
  EXPECT_EQ(ring.try_push(Message::make(0, 0)), RingStatus::kClosed);
  EXPECT_EQ(ring.pop(m, Deadline::after(1s)), RingStatus::kClosed);
}

TEST(ShardedMpmcRing, CloseDrainsEveryLaneThenReportsClosed) {
  Fixture f;
  auto ring = Ring::create(f.arena, {.lanes = 2, .lane = {.capacity = 16}});
  auto second = Ring::attach(f.arena, ring.offset());  // its own lane
  ASSERT_EQ(ring.try_push(Message::make(0, 0)), RingStatus::kOk);
  ASSERT_EQ(second.try_push(Message::make(1, 0)), RingStatus::kOk);
  EXPECT_EQ(ring.lane(0).size(), 1u);
  EXPECT_EQ(ring.lane(1).size(), 1u);
  ring.close();
  EXPECT_TRUE(second.closed());
  Message batch[4];
  std::size_t taken = 0;
  std::size_t total = 0;
  while (second.pop_batch(batch, &taken, Deadline::after(1s)) == RingStatus::kOk) total += taken;
  EXPECT_EQ(total, 2u);
  EXPECT_EQ(ring.pop(batch[0], Deadline::after(1s)), RingStatus::kClosed);
}

TEST(ShardedMpmcRing, BadGeometryAndForeignOffsetsAreRefused) {
  Fixture f;
  EXPECT_THROW(Ring::create(f.arena, {.lanes = 0}), std::invalid_argument);
  EXPECT_THROW(Ring::create(f.arena, {.lanes = ShardedMpmcControl::kMaxLanes + 1}),
               std::invalid_argument);
  auto plain = MpmcRing<Message>::create(f.arena, {.capacity = 16});
  EXPECT_THROW(Ring::attach(f.arena, plain.offset()), std::invalid_argument);
}

// A consumer asleep on the shared eventcount wakes for a push on any lane; the full ring and
// the empty ring time out. Threads, so the TSan build checks the hand-over.
TEST(ShardedMpmcRing, ThreadsConsumerWakesForAPushOnAnotherLane) {
  Fixture f;
  auto ring = Ring::create(f.arena, {.lanes = 2, .lane = {.capacity = 4}});
  auto other = Ring::attach(f.arena, ring.offset());
  ASSERT_EQ(ring.try_push(Message::make(0, 0)), RingStatus::kOk);  // takes lane 0
  Message m{};
  ASSERT_EQ(ring.try_pop(m), RingStatus::kOk);
  EXPECT_EQ(ring.pop(m, Deadline::after(20ms)), RingStatus::kTimedOut);
  std::atomic<bool> got{false};
  std::thread consumer([&] {
    Message taken{};
    EXPECT_EQ(ring.pop(taken, Deadline::after(10s)), RingStatus::kOk);
    EXPECT_TRUE(taken.intact());
    EXPECT_EQ(taken.producer, 1u);
    got.store(true);
  });
  std::this_thread::sleep_for(30ms);
  ASSERT_EQ(other.try_push(Message::make(1, 0)), RingStatus::kOk);  // takes lane 1
  consumer.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(ring.lane(1).counters().puts, 1u);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(other.try_push(Message::make(1, i + 1)), RingStatus::kOk);
  EXPECT_EQ(other.push(Message::make(1, 5), Deadline::after(20ms)), RingStatus::kTimedOut);
}

// Two producer threads, each with its own handle (so its own lane), and two consumers: every
// message once, whole, and each producer's in order. Threads, for the TSan build.
TEST(ShardedMpmcRing, ThreadsTwoByTwo) {
  Fixture f;
  auto ring = Ring::create(f.arena, {.lanes = 2, .lane = {.capacity = 256}});
  constexpr std::uint64_t kPerProducer = 50'000;
  std::atomic<std::uint64_t> count{0}, sum{0}, bad{0};
  std::vector<std::thread> consumers;
  for (int c = 0; c < 2; ++c) {
    consumers.emplace_back([&] {
      std::uint64_t next[2] = {0, 0};
      Message m{};
      while (ring.pop(m, Deadline::after(30s)) == RingStatus::kOk) {
        if (!m.intact() || m.producer > 1 || m.sequence < next[m.producer]) ++bad;
        if (m.producer <= 1) next[m.producer] = m.sequence + 1;
        ++count;
        sum += m.sequence;
      }
    });
  }
  std::vector<std::thread> producers;
  for (std::uint32_t p = 0; p < 2; ++p) {
    producers.emplace_back([&, p] {
      auto mine = Ring::attach(f.arena, ring.offset());
      for (std::uint64_t s = 0; s < kPerProducer; ++s) {
        ASSERT_EQ(mine.push(Message::make(p, s), Deadline::after(30s)), RingStatus::kOk);
      }
    });
  }
  for (std::thread& t : producers) t.join();
  ring.close();
  for (std::thread& t : consumers) t.join();
  EXPECT_EQ(count.load(), 2 * kPerProducer);
  EXPECT_EQ(sum.load(), kPerProducer * (kPerProducer - 1));
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_EQ(ring.lane(0).counters().puts, kPerProducer) << "the producers shared a lane";
}

// Threads racing to make a handle's first push agree on one lane: a thread whose messages
// went to two lanes could see them taken out of order.
TEST(ShardedMpmcRing, ThreadsOfOneHandleTakeOneLane) {
  for (int round = 0; round < 50; ++round) {
    Fixture f(8 << 20);
    auto ring = Ring::create(f.arena, {.lanes = 4, .lane = {.capacity = 64}});
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (std::uint32_t t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < 4) {
        }
        for (std::uint64_t s = 0; s < 4; ++s) {
          EXPECT_EQ(ring.try_push(Message::make(t, s)), RingStatus::kOk);
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    std::size_t used = 0;
    for (std::size_t lane = 0; lane < ring.lane_count(); ++lane) used += ring.lane(lane).size() > 0;
    ASSERT_EQ(used, 1u) << "one handle's threads pushed to several lanes, round " << round;
    EXPECT_EQ(ring.size(), 16u);
  }
}

Ring stress_ring(SharedArena& arena, std::size_t lanes) {
  return Ring::create(arena, {.lanes = lanes, .lane = {.capacity = 4096}});
}
TEST(ShardedMpmcRingStress, TwoByTwo) {
  testing::stress([](SharedArena& a) { return stress_ring(a, 2); }, 2, 2, 1'000'000);
}
TEST(ShardedMpmcRingStress, FourByFour) {
  testing::stress([](SharedArena& a) { return stress_ring(a, 4); }, 4, 4, 250'000);
}
// Eight producers on four lanes: two share each.
TEST(ShardedMpmcRingStress, EightProducersOnFourLanesByOne) {
  testing::stress([](SharedArena& a) { return stress_ring(a, 4); }, 8, 1, 125'000);
}

TEST(ShardedMpmcRingFaults, ProducerKilledAtRandom) {
  testing::producer_killed_trials([](SharedArena& arena) {
    return Ring::create(arena, {.lanes = 2, .lane = {.capacity = 1 << 14, .chunk_slots = 256}});
  });
}

TEST(ShardedMpmcRingFaults, ConsumerKilledAtRandom) {
  consumer_killed_trials([](SharedArena& arena) {
    return Ring::create(arena, {.lanes = 2, .lane = {.capacity = 64}});
  });
}

}  // namespace
}  // namespace ringfork
