// Queue fault injection: producers and consumers SIGKILLed at random points (200 trials
// each; 50 in sanitized builds). No torn message is delivered, survivors neither hang nor crash, everything put
// before a kill and not yet taken stays readable, and the dead process's blocks come back.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "ringfork/queue.h"
#include "test_support.h"

namespace ringfork {
namespace {

using namespace std::chrono_literals;
using testing::expect_clean_exit;
using testing::fork_child;
using testing::wait_child;

// Sequence in the first 8 bytes, then a pattern derived from it; lengths vary so that inline
// and block payloads are both in flight when the kill lands.
Bytes message_for(std::uint64_t sequence) {
  const std::size_t length = 8 + (sequence * 2654435761u) % 3000;
  Bytes bytes(length);
  std::memcpy(bytes.data(), &sequence, 8);
  for (std::size_t i = 8; i < length; ++i) bytes[i] = static_cast<std::byte>((sequence + i) * 31);
  return bytes;
}

bool intact(const Bytes& bytes, std::uint64_t& sequence) {
  if (bytes.size() < 8) return false;
  std::memcpy(&sequence, bytes.data(), 8);
  return bytes == message_for(sequence);
}

std::uint64_t blocks_in_use(const BlockPool& pool) {
  std::uint64_t in_use = 0;
  for (const auto& stats : pool.stats()) in_use += stats.in_use;
  return in_use;
}

TEST(QueueFaults, ProducerKilledAtRandomPoints) {
  std::mt19937_64 random(99);
  std::uint64_t leaked = 0;
  for (int trial = 0; trial < testing::scaled(200, 4); ++trial) {
    Segment segment = Segment::create({.capacity = 256 << 20});
    SharedArena arena = SharedArena::create(segment);
    BlockPool pool = BlockPool::create(arena, {.max_bytes = 128 << 20});
    auto queue = Queue<Bytes>::create(arena, pool);
    const pid_t victim = fork_child([&] {
      for (std::uint64_t s = 0; s < 20000; ++s) queue.put(message_for(s));
      for (;;) ::pause();
      return 0;
    });
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 4000));
    ::kill(victim, SIGKILL);
    wait_child(victim);
    pool.reclaim(victim);
    queue.close();
    std::uint64_t expected = 0;
    Bytes got;
    for (;;) {
      try {
        got = queue.get(30s);
      } catch (const QueueClosed&) {
        break;
      }
      std::uint64_t sequence = 0;
      ASSERT_TRUE(intact(got, sequence)) << "torn message, trial " << trial;
      ASSERT_EQ(sequence, expected) << "lost or reordered, trial " << trial;
      ++expected;
    }
    EXPECT_EQ(queue.counters().gets, queue.counters().puts);
    // Every block is back, but for at most the one handed to the queue in the instant
    // between hand-over and publication (documented in byte_queue.h).
    const std::uint64_t left = blocks_in_use(pool);
    EXPECT_LE(left, 1u) << "trial " << trial;
    leaked += left;
  }
  std::printf("[ info ] blocks lost to kills between hand-over and publish: %llu in 200\n",
              static_cast<unsigned long long>(leaked));
}

// A producer SIGKILLed while its put waits for room in a bounded queue: its message's blocks
// were still its own (they are handed to the queue only inside a slot's claim), so
// reclaim(pid) returns them. They used to be the queue's already, and leaked for good.
TEST(QueueFaults, ProducerKilledWhileWaitingForRoomLeaksNoBlock) {
  Segment segment = Segment::create({.capacity = 256 << 20});
  SharedArena arena = SharedArena::create(segment);
  BlockPool pool = BlockPool::create(arena, {.max_bytes = 128 << 20});
  auto queue = Queue<Bytes>::create(arena, pool, {.maxsize = 1});
  queue.put(message_for(0));
  const pid_t victim = fork_child([&] {
    queue.put(Bytes(1 << 20, std::byte{7}));  // waits: the queue holds its one message
    return 0;
  });
  const Deadline waited = Deadline::after(30s);
  while (queue.counters().full_waits == 0 && !waited.expired()) std::this_thread::sleep_for(1ms);
  ASSERT_GE(queue.counters().full_waits, 1u) << "the child never waited for room";
  std::this_thread::sleep_for(20ms);  // well into its wait
  ::kill(victim, SIGKILL);
  wait_child(victim);
  pool.reclaim(victim);
  std::uint64_t sequence = 1;
  EXPECT_TRUE(intact(queue.get(1s), sequence));
  EXPECT_EQ(sequence, 0u);
  EXPECT_TRUE(queue.empty()) << "the killed put was published";
  EXPECT_EQ(blocks_in_use(pool), 0u) << "the killed producer's message leaked";
}

TEST(QueueFaults, ConsumerKilledAtRandomPoints) {
  std::mt19937_64 random(7);
  for (int trial = 0; trial < testing::scaled(200, 4); ++trial) {
    constexpr std::uint64_t kMessages = 3000;
    Segment segment = Segment::create({.capacity = 256 << 20});
    SharedArena arena = SharedArena::create(segment);
    BlockPool pool = BlockPool::create(arena, {.max_bytes = 128 << 20});
    auto queue = Queue<Bytes>::create(arena, pool, {.maxsize = 64});
    const std::uint64_t seen_offset = arena.allocate_or_throw(kMessages, 64, "seen flags");
    auto* seen = segment.at(Offset<std::atomic<std::uint8_t>>{seen_offset}, kMessages);
    auto consume = [&] {
      for (;;) {
        Bytes got;
        try {
          got = queue.get(30s);
        } catch (const QueueClosed&) {
          return 0;
        }
        std::uint64_t sequence = 0;
        if (!intact(got, sequence) || sequence >= kMessages) return 3;
        if (seen[sequence].exchange(1) != 0) return 4;
      }
    };
    const pid_t victim = fork_child(consume);
    const pid_t survivor = fork_child(consume);
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 1500));
    ::kill(victim, SIGKILL);
    wait_child(victim);
    pool.reclaim(victim);
    for (std::uint64_t s = 0; s < kMessages; ++s) {
      ASSERT_NO_THROW(queue.put(message_for(s), 30s)) << "producer wedged, trial " << trial;
    }
    queue.close();
    expect_clean_exit(survivor);
    std::uint64_t delivered = 0;
    for (std::uint64_t s = 0; s < kMessages; ++s) delivered += seen[s].load();
    EXPECT_GE(delivered + 1, kMessages) << "more than the victim's one message lost";
  }
}

}  // namespace
}  // namespace ringfork
