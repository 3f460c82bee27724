// SpscRing: FIFO, full/empty/close statuses, zero-copy reserve/commit and peek/release,
// cross-process stress with checksums, and a producer SIGKILLed mid-write.
#include "ringfork/ring_spsc.h"

#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <thread>

#include "test_support.h"

namespace ringfork {
namespace {

using namespace std::chrono_literals;
using testing::expect_clean_exit;
using testing::fork_child;
using testing::wait_child;

// A message whose every word is derived from its sequence number: a torn or misplaced one
// cannot pass verify().
struct Message {
  std::uint64_t sequence;
  std::uint64_t words[7];

  static Message make(std::uint64_t sequence) {
    Message message{sequence, {}};
    for (int i = 0; i < 7; ++i) message.words[i] = sequence * 0x9e3779b97f4a7c15ULL + i;
    return message;
  }
  bool verify(std::uint64_t expected) const {
    const Message reference = make(expected);
    return sequence == expected && std::memcmp(this, &reference, sizeof(Message)) == 0;
  }
};

struct Fixture {
  Segment segment = Segment::create({.capacity = 64 << 20});
  SharedArena arena = SharedArena::create(segment);
};

TEST(SpscRing, FifoFullEmptyAndCapacityRounding) {
  Fixture f;
  auto ring = SpscRing<std::uint64_t>::create(f.arena, 5);
  EXPECT_EQ(ring.capacity(), 8u);
  std::uint64_t value = 0;
  EXPECT_EQ(ring.try_pop(value), RingStatus::kEmpty);
  for (std::uint64_t i = 0; i < 8; ++i) ASSERT_EQ(ring.try_push(i), RingStatus::kOk);
  EXPECT_EQ(ring.try_push(99), RingStatus::kFull);
  EXPECT_EQ(ring.size(), 8u);
  for (std::uint64_t i = 0; i < 8; ++i) {
    ASSERT_EQ(ring.try_pop(value), RingStatus::kOk);
    EXPECT_EQ(value, i);
  }
  EXPECT_EQ(ring.try_pop(value), RingStatus::kEmpty);
  const RingCounters counters = ring.counters();
  EXPECT_EQ(counters.puts, 8u);
  EXPECT_EQ(counters.gets, 8u);
  EXPECT_EQ(counters.high_water, 8u);
}

TEST(SpscRing, CloseDrainsThenReportsClosed) {
  Fixture f;
  auto ring = SpscRing<std::uint64_t>::create(f.arena, 16);
  ASSERT_EQ(ring.try_push(1), RingStatus::kOk);
  ASSERT_EQ(ring.try_push(2), RingStatus::kOk);
  ring.close();
  EXPECT_EQ(ring.try_push(3), RingStatus::kClosed);
  std::uint64_t value = 0;
  EXPECT_EQ(ring.pop(value, Deadline::after(1s)), RingStatus::kOk);
  EXPECT_EQ(value, 1u);
  EXPECT_EQ(ring.try_pop(value), RingStatus::kOk);
  EXPECT_EQ(value, 2u);
  EXPECT_EQ(ring.try_pop(value), RingStatus::kClosed);
  EXPECT_EQ(ring.pop(value, Deadline::after(10s)), RingStatus::kClosed) << "must not block";
}

TEST(SpscRing, BlockingCallsHonourTheirDeadline) {
  Fixture f;
  auto ring = SpscRing<std::uint64_t>::create(f.arena, 2);
  std::uint64_t value = 0;
  const std::int64_t start = Deadline::monotonic_ns();
  EXPECT_EQ(ring.pop(value, Deadline::after(30ms)), RingStatus::kTimedOut);
  EXPECT_GE(Deadline::monotonic_ns() - start, 30'000'000);
  ASSERT_EQ(ring.try_push(1), RingStatus::kOk);
  ASSERT_EQ(ring.try_push(2), RingStatus::kOk);
  EXPECT_EQ(ring.push(3, Deadline::after(30ms)), RingStatus::kTimedOut);
  EXPECT_EQ(ring.counters().full_waits, 1u);
}

TEST(SpscRing, ReserveCommitAndPeekReleaseAreZeroCopy) {
  Fixture f;
  auto ring = SpscRing<std::uint32_t>::create(f.arena, 8);
  std::span<std::uint32_t> space = ring.reserve(6);
  ASSERT_EQ(space.size(), 6u);
  for (std::uint32_t i = 0; i < 6; ++i) space[i] = i * 10;
  std::uint32_t value = 0;
  EXPECT_EQ(ring.try_pop(value), RingStatus::kEmpty) << "nothing visible before commit";
  ring.commit(6);
  std::span<const std::uint32_t> ready = ring.peek(4);
  ASSERT_EQ(ready.size(), 4u);
  EXPECT_EQ(ready[3], 30u);
  EXPECT_EQ(ready.data(), space.data()) << "peek reads the very slots reserve wrote";
  ring.release(4);
  // The next reservation stops at the wrap: 2 slots to the end of the buffer.
  EXPECT_EQ(ring.reserve(5).size(), 2u);
}

TEST(SpscRing, BatchesMoveAsMuchAsFits) {
  Fixture f;
  auto ring = SpscRing<std::uint64_t>::create(f.arena, 8);
  std::vector<std::uint64_t> in(20);
  std::iota(in.begin(), in.end(), 100);
  EXPECT_EQ(ring.try_push_batch(in), 8u);
  std::vector<std::uint64_t> out(5);
  EXPECT_EQ(ring.try_pop_batch(out), 5u);
  EXPECT_EQ(out[4], 104u);
  EXPECT_EQ(ring.try_push_batch(std::span(in).subspan(8)), 5u) << "wraps across the end";
  std::vector<std::uint64_t> rest(16);
  EXPECT_EQ(ring.try_pop_batch(rest), 8u);
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(rest[i], 105 + i);
}

TEST(SpscRing, AttachRejectsWrongTypeOrOffset) {
  Fixture f;
  auto ring = SpscRing<std::uint64_t>::create(f.arena, 8);
  EXPECT_THROW(SpscRing<std::uint32_t>::attach(f.segment, ring.offset()), std::invalid_argument);
  EXPECT_THROW(SpscRing<std::uint64_t>::attach(f.segment, ring.offset() + 64),
               std::invalid_argument);
  EXPECT_THROW(SpscRing<std::uint64_t>::attach(f.segment, 1ull << 40), std::invalid_argument);
}

void run_cross_process(std::uint64_t messages, std::size_t batch) {
  Fixture f;
  auto ring = SpscRing<Message>::create(f.arena, 1024);
  const pid_t consumer = fork_child([&] {
    std::vector<Message> buffer(batch);
    std::uint64_t expected = 0;
    while (expected < messages) {
      std::size_t taken = 0;
      if (batch == 1) {
        if (ring.pop(buffer[0], Deadline::after(30s)) != RingStatus::kOk) return 2;
        taken = 1;
      } else {
        taken = ring.try_pop_batch(buffer);
        if (taken == 0) std::this_thread::yield();
      }
      for (std::size_t i = 0; i < taken; ++i) {
        if (!buffer[i].verify(expected++)) return 1;
      }
    }
    Message extra{};
    return ring.pop(extra, Deadline::after(30s)) == RingStatus::kClosed ? 0 : 3;
  });
  std::vector<Message> chunk(batch);
  for (std::uint64_t sent = 0; sent < messages;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(batch, messages - sent));
    for (std::size_t i = 0; i < n; ++i) chunk[i] = Message::make(sent + i);
    if (batch == 1) {
      ASSERT_EQ(ring.push(chunk[0], Deadline::after(30s)), RingStatus::kOk);
      sent += 1;
    } else {
      sent += ring.try_push_batch(std::span<const Message>(chunk.data(), n));
    }
  }
  ring.close();
  expect_clean_exit(consumer, std::chrono::minutes(5));
  EXPECT_EQ(ring.counters().gets, messages);
}

TEST(SpscRing, CrossProcessEveryMessageOnceInOrder) { run_cross_process(2'000'000, 1); }
TEST(SpscRing, CrossProcessBatchedEveryMessageOnceInOrder) { run_cross_process(5'000'000, 64); }

TEST(SpscRing, ThreadedEveryMessageOnceInOrder) {
  Fixture f;
  auto ring = SpscRing<Message>::create(f.arena, 256);
  constexpr std::uint64_t kMessages = 200'000;
  std::atomic<bool> ok{true};
  std::thread consumer([&] {
    Message message{};
    for (std::uint64_t i = 0; i < kMessages; ++i) {
      if (ring.pop(message, Deadline::after(30s)) != RingStatus::kOk || !message.verify(i)) {
        ok = false;
        return;
      }
    }
  });
  for (std::uint64_t i = 0; i < kMessages; ++i) {
    ASSERT_EQ(ring.push(Message::make(i), Deadline::after(30s)), RingStatus::kOk);
  }
  consumer.join();
  EXPECT_TRUE(ok.load());
}

// Fault injection: SIGKILL the producer at a random moment, 200 times. Whatever it
// published is intact and in order; nothing half-written is ever visible.
TEST(SpscRing, ProducerKilledMidWriteNeverTearsAMessage) {
  std::mt19937_64 random(12345);
  for (int trial = 0; trial < 200; ++trial) {
    Fixture f;
    auto ring = SpscRing<Message>::create(f.arena, 1 << 16);
    const pid_t producer = fork_child([&] {
      for (std::uint64_t i = 0;; ++i) {
        // reserve/commit: the message is written in place, so a kill can land mid-write.
        std::span<Message> space;
        while ((space = ring.reserve(1)).empty()) {
        }
        space[0].sequence = i;
        for (int w = 0; w < 7; ++w) space[0].words[w] = Message::make(i).words[w];
        ring.commit(1);
      }
      return 0;
    });
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 3000));
    ::kill(producer, SIGKILL);
    wait_child(producer);
    Message message{};
    std::uint64_t expected = 0;
    RingStatus status;
    while ((status = ring.try_pop(message)) == RingStatus::kOk) {
      ASSERT_TRUE(message.verify(expected)) << "trial " << trial << " message " << expected;
      ++expected;
    }
    EXPECT_EQ(status, RingStatus::kEmpty);
    EXPECT_EQ(expected, ring.counters().puts) << "every published message is readable";
  }
}

}  // namespace
}  // namespace ringfork
