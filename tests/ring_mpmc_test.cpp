// MpmcRing: FIFO and limits in one process, P x C cross-process stress with exact-once
// accounting, and producers or consumers SIGKILLed at random points.
#include "ringfork/ring_mpmc.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <signal.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "mpmc_test_support.h"
#include "test_support.h"

namespace ringfork {
namespace {

using namespace std::chrono_literals;
using testing::expect_clean_exit;
using testing::Fixture;
using testing::fork_child;
using testing::Message;
using testing::consumer_killed_trials;
using testing::producer_killed_trials;
using testing::stress;
using testing::wait_child;

TEST(MpmcRing, FifoLimitAndStatusesInOneProcess) {
  Fixture f;
  auto ring = MpmcRing<std::uint64_t>::create(f.arena, {.capacity = 8, .limit = 5, .chunk_slots = 4});
  EXPECT_EQ(ring.capacity(), 8u);
  std::uint64_t value = 0;
  EXPECT_EQ(ring.try_pop(value), RingStatus::kEmpty);
  for (int lap = 0; lap < 3; ++lap) {
    for (std::uint64_t i = 0; i < 5; ++i) ASSERT_EQ(ring.try_push(lap * 10 + i), RingStatus::kOk);
    EXPECT_EQ(ring.try_push(99), RingStatus::kFull) << "limit 5";
    EXPECT_EQ(ring.size(), 5u);
    for (std::uint64_t i = 0; i < 5; ++i) {
      ASSERT_EQ(ring.try_pop(value), RingStatus::kOk);
      EXPECT_EQ(value, lap * 10 + i);
    }
  }
  EXPECT_EQ(ring.counters().puts, 15u);
}

TEST(MpmcRing, BatchIsAllOrNothing) {
  Fixture f;
  auto ring = MpmcRing<std::uint64_t>::create(f.arena, {.capacity = 8});
  std::vector<std::uint64_t> values{1, 2, 3, 4, 5, 6};
  std::size_t pushed = 0;
  EXPECT_EQ(ring.try_push_batch(values, &pushed), RingStatus::kOk);
  EXPECT_EQ(pushed, 6u);
  EXPECT_EQ(ring.try_push_batch(values, &pushed), RingStatus::kFull);
  EXPECT_EQ(pushed, 0u);
  std::vector<std::uint64_t> out(10);
  std::size_t taken = 0;
  EXPECT_EQ(ring.try_pop_batch(out, &taken), RingStatus::kOk);
  EXPECT_EQ(taken, 6u);
  EXPECT_EQ(out[5], 6u);
}

TEST(MpmcRing, CloseDrainsThenReportsClosed) {
  Fixture f;
  auto ring = MpmcRing<std::uint64_t>::create(f.arena, {.capacity = 16});
  ASSERT_EQ(ring.try_push(7), RingStatus::kOk);
  ring.close();
  EXPECT_EQ(ring.try_push(8), RingStatus::kClosed);
  std::uint64_t value = 0;
  EXPECT_EQ(ring.pop(value, Deadline::after(1s)), RingStatus::kOk);
  EXPECT_EQ(value, 7u);
  EXPECT_EQ(ring.pop(value, Deadline::after(10s)), RingStatus::kClosed);
}

// A producer that SIGKILLs itself inside its claim of a slot: a hole no one will fill.
pid_t fork_producer_dying_in_its_claim(MpmcRing<std::uint64_t>& ring) {
  return fork_child([&] {
    (void)ring.try_push_with([](std::uint64_t&) noexcept { ::raise(SIGKILL); });
    return 1;  // not reached
  });
}

// A producer killed between its claim and its publish leaves a hole at head. Blocking pops
// always got past it; a consumer that only polls (try_pop, a Queue's get_nowait) must too.
TEST(MpmcRing, PollingConsumerGetsPastADeadProducersHole) {
  Fixture f;
  auto ring = MpmcRing<std::uint64_t>::create(f.arena, {.capacity = 16});
  const pid_t producer = fork_producer_dying_in_its_claim(ring);
  const int status = wait_child(producer);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  ASSERT_EQ(ring.try_push(42), RingStatus::kOk);  // a live producer's message behind the hole
  std::uint64_t value = 0;
  RingStatus got = RingStatus::kEmpty;
  const Deadline deadline = Deadline::after(10s);  // the check runs every kLivenessInterval
  while (got == RingStatus::kEmpty && !deadline.expired()) {
    got = ring.try_pop(value);
    if (got == RingStatus::kEmpty) std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(got, RingStatus::kOk) << "try_pop never got past the hole";
  EXPECT_EQ(value, 42u);
  EXPECT_EQ(ring.counters().dead_producer_slots, 1u);
}

// As above, but the dead producer stays a zombie (its parent has not reaped it, as a parent
// reading results before join() has not): kill(pid, 0) succeeds on a zombie, yet it is
// dead, and its hole must be skipped all the same.
TEST(MpmcRing, ConsumerGetsPastTheHoleOfAnUnreapedDeadProducer) {
  Fixture f;
  auto ring = MpmcRing<std::uint64_t>::create(f.arena, {.capacity = 16});
  const pid_t producer = fork_producer_dying_in_its_claim(ring);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(producer), &info, WEXITED | WNOWAIT), 0);
  ASSERT_EQ(info.si_status, SIGKILL);
  ASSERT_EQ(ring.try_push(42), RingStatus::kOk);
  std::uint64_t value = 0;
  EXPECT_EQ(ring.pop(value, Deadline::after(10s)), RingStatus::kOk)
      << "the zombie's claim pinned the ring";
  EXPECT_EQ(value, 42u);
  EXPECT_EQ(ring.counters().dead_producer_slots, 1u);
  wait_child(producer);
}

// A thread's cached claim record must not outlive its ring: after a segment is unmapped and
// a new ring is made at the same address, another thread of this process may own record 0
// there. Sharing it, one consumer ending its claim would end the other's, and producers
// would overwrite a slot still being read.
TEST(MpmcRing, ThreadsNeverShareAClaimRecordOfARingMadeWhereAnotherWas) {
  const void* first_base = nullptr;
  std::uint64_t first_offset = 0;
  {
    Fixture first(64 << 20);
    auto ring = MpmcRing<std::uint64_t>::create(first.arena, {.capacity = 2});
    ASSERT_EQ(ring.try_push(1), RingStatus::kOk);
    std::uint64_t value = 0;
    ASSERT_EQ(ring.try_pop(value), RingStatus::kOk);  // caches consumer record 0
    first_base = first.segment.base();
    first_offset = ring.offset();
  }
  Fixture f(64 << 20);
  auto ring = MpmcRing<std::uint64_t>::create(f.arena, {.capacity = 2});
  if (f.segment.base() != first_base || ring.offset() != first_offset) {
    GTEST_SKIP() << "the new segment was not mapped where the old one was";
  }
  ASSERT_EQ(ring.try_push(100), RingStatus::kOk);
  ASSERT_EQ(ring.try_push(101), RingStatus::kOk);  // full
  std::atomic<bool> reading{false}, may_finish{false};
  std::uint64_t seen_first = 0, seen_last = 0;
  std::thread slow_reader([&] {  // takes consumer record 0 of the new ring
    EXPECT_EQ(ring.pop_with(
                  [&](const std::uint64_t& slot) noexcept {
                    seen_first = slot;
                    reading = true;
                    while (!may_finish) std::this_thread::sleep_for(1ms);
                    seen_last = slot;
                  },
                  Deadline::after(10s)),
              RingStatus::kOk);
  });
  while (!reading) std::this_thread::sleep_for(1ms);
  std::uint64_t value = 0;
  ASSERT_EQ(ring.try_pop(value), RingStatus::kOk);
  EXPECT_EQ(value, 101u);
  const RingStatus push = ring.try_push(102);  // position 0 is still being read
  may_finish = true;
  slow_reader.join();
  EXPECT_EQ(push, RingStatus::kFull) << "a producer was let into a slot a consumer was reading";
  EXPECT_EQ(seen_first, seen_last) << "torn read";
}

TEST(MpmcRing, ChunksAreMadeOnlyWhenReached) {
  Fixture f;
  const std::size_t before = f.arena.used_bytes();
  auto ring = MpmcRing<std::uint64_t>::create(f.arena, {.capacity = 1 << 20, .chunk_slots = 1024});
  const std::size_t after_create = f.arena.used_bytes();
  EXPECT_LT(after_create - before, 1u << 20) << "a million slots must not be made up front";
  for (int i = 0; i < 1500; ++i) ASSERT_EQ(ring.try_push(i), RingStatus::kOk);
  EXPECT_GE(f.arena.used_bytes() - after_create, 2 * 1024 * sizeof(MpmcSlot<std::uint64_t>));
  EXPECT_LT(f.arena.used_bytes() - after_create, 3 * 1024 * sizeof(MpmcSlot<std::uint64_t>) + 8192);
}

TEST(MpmcRing, PopTimesOut) {
  Fixture f;
  auto ring = MpmcRing<std::uint64_t>::create(f.arena, {.capacity = 4});
  std::uint64_t value = 0;
  const std::int64_t start = Deadline::monotonic_ns();
  EXPECT_EQ(ring.pop(value, Deadline::after(50ms)), RingStatus::kTimedOut);
  EXPECT_GE(Deadline::monotonic_ns() - start, 50'000'000);
}

TEST(MpmcRing, InPlaceWritesAndReadsRunOnlyWhenASlotIsClaimed) {
  Fixture f;
  auto ring = MpmcRing<Message>::create(f.arena, {.capacity = 4, .limit = 2});
  int writes = 0;
  int reads = 0;
  const auto write = [&](std::uint64_t sequence) {
    return [&, sequence](Message& slot) noexcept {
      ++writes;
      slot = Message::make(7, sequence);
    };
  };
  Message seen{};
  const auto read = [&](const Message& slot) noexcept {
    ++reads;
    seen = slot;
  };
  EXPECT_EQ(ring.try_pop_with(read), RingStatus::kEmpty);
  EXPECT_EQ(ring.pop_with(read, Deadline::after(5ms)), RingStatus::kTimedOut);
  EXPECT_EQ(reads, 0);
  for (std::uint64_t lap = 0; lap < 3; ++lap) {
    ASSERT_EQ(ring.try_push_with(write(2 * lap)), RingStatus::kOk);
    ASSERT_EQ(ring.push_with(write(2 * lap + 1), Deadline::after(1s)), RingStatus::kOk);
    EXPECT_EQ(ring.try_push_with(write(99)), RingStatus::kFull) << "limit 2";
    EXPECT_EQ(ring.push_with(write(99), Deadline::after(5ms)), RingStatus::kTimedOut);
    for (std::uint64_t i = 0; i < 2; ++i) {
      ASSERT_EQ(i == 0 ? ring.try_pop_with(read) : ring.pop_with(read, Deadline::after(1s)),
                RingStatus::kOk);
      EXPECT_TRUE(seen.intact());
      EXPECT_EQ(seen.sequence, 2 * lap + i);
    }
  }
  EXPECT_EQ(writes, 6) << "a write that found no room must not run";
  EXPECT_EQ(reads, 6);
  ring.close();
  EXPECT_EQ(ring.try_push_with(write(100)), RingStatus::kClosed);
  EXPECT_EQ(ring.pop_with(read, Deadline::after(1s)), RingStatus::kClosed);
  EXPECT_EQ(writes, 6);
}

// A consumer thread that pops one message and stays inside its read until finish(): its
// claim stays open below head meanwhile.
class ConsumerStillReading {
 public:
  explicit ConsumerStillReading(MpmcRing<Message>& ring)
      : thread_([this, &ring] {
          ring.try_pop_with([this](const Message& slot) noexcept {
            reading_.store(true);
            while (!finish_.load()) std::this_thread::yield();
            seen_ = slot;  // a producer must not have overwritten it meanwhile
          });
        }) {
    while (!reading_.load()) std::this_thread::yield();
  }
  // Lets the read end; returns what it read.
  Message finish() {
    finish_.store(true);
    thread_.join();
    return seen_;
  }

 private:
  std::atomic<bool> reading_{false}, finish_{false};
  Message seen_{};
  std::thread thread_;
};

// Only producers write slots: a consumer still reading the slot a producer would fill next
// holds that producer back (kFull, and a blocking push waits), though head has moved on; the
// push goes through once the read ends. Threads, so the TSan build checks the hand-over.
TEST(MpmcRing, ThreadsProducerWaitsForAConsumerStillReading) {
  Fixture f;
  auto ring = MpmcRing<Message>::create(f.arena, {.capacity = 2});
  ASSERT_EQ(ring.try_push(Message::make(1, 0)), RingStatus::kOk);
  ASSERT_EQ(ring.try_push(Message::make(1, 1)), RingStatus::kOk);
  ConsumerStillReading consumer(ring);
  EXPECT_EQ(ring.size(), 1u) << "head moved past the message being read";
  EXPECT_EQ(ring.try_push(Message::make(2, 0)), RingStatus::kFull);
  EXPECT_EQ(ring.push(Message::make(2, 0), Deadline::after(20ms)), RingStatus::kTimedOut);
  std::thread producer([&] {
    EXPECT_EQ(ring.push(Message::make(2, 0), Deadline::after(10s)), RingStatus::kOk);
  });
  std::this_thread::sleep_for(10ms);
  const Message seen = consumer.finish();
  producer.join();
  EXPECT_TRUE(seen.intact());
  EXPECT_EQ(seen.producer, 1u);
  EXPECT_EQ(seen.sequence, 0u);
  Message m{};
  ASSERT_EQ(ring.try_pop(m), RingStatus::kOk);
  EXPECT_EQ(m.sequence, 1u);
  ASSERT_EQ(ring.try_pop(m), RingStatus::kOk);
  EXPECT_EQ(m.producer, 2u);
  EXPECT_EQ(ring.counters().dead_consumer_slots, 0u);
}

// A producer waiting for room is woken by the consumer that frees it, however the two race:
// a small ring and a consumer process as fast as the producer, so that the consumer often
// empties the ring between a failed push and the producer's wait. The producer used to read
// the gate it waits on after its failed attempt, which could already show the room: it then
// slept until the next liveness check (20 ms): 40-106 times in these 50,000 messages,
// in three runs against that code.
TEST(MpmcRing, ProducerWaitingForRoomIsWokenByTheConsumer) {
  Fixture f(16 << 20);
  auto ring = MpmcRing<Message>::create(f.arena, {.capacity = 32});
  const std::uint64_t messages = testing::scaled(50'000, 5);
  const pid_t consumer = fork_child([&] {
    Message m{};
    for (std::uint64_t s = 0; s < messages; ++s) {
      if (ring.pop(m, Deadline::after(60s)) != RingStatus::kOk) return 1;
      if (!m.intact() || m.sequence != s) return 2;
    }
    return 0;
  });
  for (std::uint64_t s = 0; s < messages; ++s) {
    ASSERT_EQ(ring.push(Message::make(0, s), Deadline::after(60s)), RingStatus::kOk);
  }
  expect_clean_exit(consumer);
  const RingCounters counters = ring.counters();
  std::printf("[ info ] %llu full waits, %llu stalled, %llu wakes\n",
              static_cast<unsigned long long>(counters.full_waits),
              static_cast<unsigned long long>(counters.stalled_full_waits),
              static_cast<unsigned long long>(counters.wakes));
  EXPECT_GT(counters.full_waits, 0u) << "the ring never filled: the race was not exercised";
  // A consumer descheduled for a whole liveness interval (a loaded machine) stalls a wait
  // legitimately, rarely.
  EXPECT_LE(counters.stalled_full_waits, 3u);
}

// A handle made while a consumer is still reading below head (a queue handed to a new
// process at that moment) must not take head as its gate: one more push would land on the
// slot being read.
TEST(MpmcRing, ThreadsHandleAttachedWhileAConsumerReadsRespectsItsClaim) {
  Fixture f;
  auto ring = MpmcRing<Message>::create(f.arena, {.capacity = 2});
  ASSERT_EQ(ring.try_push(Message::make(1, 0)), RingStatus::kOk);
  ASSERT_EQ(ring.try_push(Message::make(1, 1)), RingStatus::kOk);
  ConsumerStillReading consumer(ring);
  auto late = MpmcRing<Message>::attach(f.arena, ring.offset());
  EXPECT_EQ(late.try_push(Message::make(2, 0)), RingStatus::kFull)
      << "the new handle overwrote a slot a consumer is still reading";
  const Message seen = consumer.finish();
  EXPECT_TRUE(seen.intact());
  EXPECT_EQ(seen.producer, 1u);
  EXPECT_EQ(seen.sequence, 0u);
  ASSERT_EQ(late.try_push(Message::make(2, 0)), RingStatus::kOk);
  Message m{};
  ASSERT_EQ(late.try_pop(m), RingStatus::kOk);
  EXPECT_EQ(m.sequence, 1u);
  ASSERT_EQ(late.try_pop(m), RingStatus::kOk);
  EXPECT_EQ(m.producer, 2u);
}

MpmcRing<Message> stress_ring(SharedArena& arena) {
  return MpmcRing<Message>::create(arena, {.capacity = 4096});
}
TEST(MpmcRingStress, OneByOne) { stress(stress_ring, 1, 1, 2'000'000); }
TEST(MpmcRingStress, TwoByTwo) { stress(stress_ring, 2, 2, 1'000'000); }
TEST(MpmcRingStress, FourByFour) { stress(stress_ring, 4, 4, 250'000); }
TEST(MpmcRingStress, EightByOne) { stress(stress_ring, 8, 1, 125'000); }

TEST(MpmcRing, ThreadedTwoByTwo) {
  Fixture f;
  auto ring = MpmcRing<Message>::create(f.arena, {.capacity = 256});
  constexpr std::uint64_t kPerProducer = 50'000;
  std::atomic<std::uint64_t> count{0}, sum{0}, torn{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < 2; ++c) {
    threads.emplace_back([&] {
      Message m{};
      while (ring.pop(m, Deadline::after(30s)) == RingStatus::kOk) {
        if (!m.intact()) ++torn;
        ++count;
        sum += m.sequence;
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < 2; ++p) {
    producers.emplace_back([&, p] {
      for (std::uint64_t s = 0; s < kPerProducer; ++s) {
        ASSERT_EQ(ring.push(Message::make(p, s), Deadline::after(30s)), RingStatus::kOk);
      }
    });
  }
  for (auto& t : producers) t.join();
  ring.close();
  for (auto& t : threads) t.join();
  EXPECT_EQ(count.load(), 2 * kPerProducer);
  EXPECT_EQ(sum.load(), 2 * (kPerProducer * (kPerProducer - 1) / 2));
  EXPECT_EQ(torn.load(), 0u);
}

// Fault injection: SIGKILL one of two producers at a random point, 200 times. The consumer
// never hangs (a claimed-but-unpublished hole is skipped once its owner is dead), nothing
// torn is delivered, the survivor's messages all arrive, and the victim's arrive as a
// gap-free prefix: everything it published before the kill is still readable.
TEST(MpmcRingFaults, ProducerKilledAtRandom) {
  producer_killed_trials([](SharedArena& arena) {
    return MpmcRing<Message>::create(arena, {.capacity = 1 << 14, .chunk_slots = 256});
  });
}

TEST(MpmcRingFaults, ConsumerKilledAtRandom) {
  consumer_killed_trials(
      [](SharedArena& arena) { return MpmcRing<Message>::create(arena, {.capacity = 64}); });
}

}  // namespace
}  // namespace ringfork
