// SpscByteRing: variable-length records in place, wrap-around, limits, close, cross-process
// stress with checksums, and a producer SIGKILLed mid-write.
#include "ringfork/byte_ring.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "test_support.h"

namespace ringfork {
namespace {

using namespace std::chrono_literals;
using testing::expect_clean_exit;
using testing::fork_child;
using testing::wait_child;

struct Fixture {
  Segment segment = Segment::create({.capacity = 64 << 20});
  SharedArena arena = SharedArena::create(segment);
};

std::vector<std::byte> record_for(std::uint64_t sequence, std::size_t length) {
  std::vector<std::byte> bytes(length);
  for (std::size_t i = 0; i < length; ++i) bytes[i] = static_cast<std::byte>(sequence * 131 + i);
  if (length >= 8) std::memcpy(bytes.data(), &sequence, 8);
  return bytes;
}

TEST(SpscByteRing, RecordsOfEveryLengthInOrderAcrossWraps) {
  Fixture f;
  auto ring = SpscByteRing::create(f.arena, 4096);
  EXPECT_EQ(ring.max_record(), 2048u - 8);
  std::mt19937_64 random(3);
  std::vector<std::vector<std::byte>> sent;
  std::vector<std::byte> got;
  std::size_t received = 0;
  for (std::uint64_t i = 0; i < 20000; ++i) {
    const std::size_t length = i % 97 == 0 ? 0 : random() % 600;
    sent.push_back(record_for(i, length));
    while (ring.try_push(sent.back()) == RingStatus::kFull) {
      ASSERT_EQ(ring.try_pop(got), RingStatus::kOk);
      ASSERT_EQ(got, sent[received]) << "record " << received;
      ++received;
    }
  }
  while (ring.try_pop(got) == RingStatus::kOk) {
    ASSERT_EQ(got, sent[received]);
    ++received;
  }
  EXPECT_EQ(received, sent.size());
  EXPECT_FALSE(ring.corrupt());
}

TEST(SpscByteRing, ReserveCommitAndPeekReleaseWorkInPlace) {
  Fixture f;
  auto ring = SpscByteRing::create(f.arena, 1024);
  std::span<std::byte> space = ring.reserve(100);
  ASSERT_EQ(space.size(), 100u);
  std::memset(space.data(), 0x5a, 60);
  EXPECT_TRUE(ring.peek().empty()) << "nothing visible before commit";
  ring.commit(60);  // shorter than reserved
  std::span<const std::byte> record = ring.peek();
  ASSERT_EQ(record.size(), 60u);
  EXPECT_EQ(record.data(), space.data());
  ring.release();
  EXPECT_TRUE(ring.peek().empty());
}

TEST(SpscByteRing, LimitsFullAndClose) {
  Fixture f;
  auto ring = SpscByteRing::create(f.arena, 256);
  std::vector<std::byte> too_big(ring.max_record() + 1);
  EXPECT_EQ(ring.try_push(too_big), RingStatus::kNoMemory);
  std::vector<std::byte> biggest(ring.max_record());
  ASSERT_EQ(ring.try_push(biggest), RingStatus::kOk);
  ASSERT_EQ(ring.try_push(biggest), RingStatus::kOk) << "two largest records fill the ring";
  EXPECT_EQ(ring.try_push(biggest), RingStatus::kFull);
  EXPECT_EQ(ring.push(biggest, Deadline::after(20ms)), RingStatus::kTimedOut);
  ring.close();
  EXPECT_EQ(ring.try_push(std::vector<std::byte>(1)), RingStatus::kClosed);
  std::vector<std::byte> got;
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(ring.pop(got, Deadline::after(1s)), RingStatus::kOk);
    EXPECT_EQ(got.size(), biggest.size());
  }
  EXPECT_EQ(ring.pop(got, Deadline::after(10s)), RingStatus::kClosed);
}

// A ring of 16 GiB would allow records of 8 GiB, but a header stores a length in 32 bits:
// the cap is 4 GiB - 2, and a record of exactly that length goes through whole. Only the
// header's page is touched, so the test commits next to no memory.
TEST(SpscByteRing, RecordLengthIsCappedBelow4GiBInAHugeRing) {
  constexpr std::size_t kCapacity = std::size_t{16} << 30;
  Segment segment = Segment::create({.capacity = kCapacity + (std::size_t{1} << 30)});
  SharedArena arena = SharedArena::create(segment);
  auto ring = SpscByteRing::create(arena, kCapacity);
  ASSERT_EQ(ring.capacity(), kCapacity);
  const std::size_t cap = SpscByteRing::kWrapMarker - 1;
  EXPECT_EQ(ring.max_record(), cap);
  EXPECT_TRUE(ring.reserve(cap + 1).empty()) << "the wrap marker's length";
  EXPECT_TRUE(ring.reserve(std::size_t{1} << 32).empty()) << "would wrap to 0 in 32 bits";
  std::span<std::byte> space = ring.reserve(cap);
  ASSERT_EQ(space.size(), cap);
  ring.commit(cap);
  std::span<const std::byte> record = ring.peek();
  EXPECT_EQ(record.size(), cap);
  EXPECT_EQ(record.data(), space.data());
  EXPECT_FALSE(ring.corrupt());
  ring.release();
  EXPECT_TRUE(ring.peek().empty());
}

TEST(SpscByteRing, CorruptHeaderIsNeverFollowed) {
  Fixture f;
  auto ring = SpscByteRing::create(f.arena, 1024);
  ASSERT_EQ(ring.try_push(record_for(1, 16)), RingStatus::kOk);
  // A buggy peer scribbles a huge length over the header.
  auto* control = f.segment.at(Offset<SpscByteRingControl>{ring.offset()});
  const std::uint32_t bogus = 900;
  std::memcpy(f.segment.base() + control->data_offset, &bogus, sizeof(bogus));
  EXPECT_TRUE(ring.peek().empty());
  EXPECT_TRUE(ring.corrupt());
}

TEST(SpscByteRing, CrossProcessEveryRecordOnceIntact) {
  Fixture f;
  auto ring = SpscByteRing::create(f.arena, 1 << 16);
  constexpr std::uint64_t kRecords = 500'000;
  const pid_t consumer = fork_child([&] {
    std::vector<std::byte> got;
    for (std::uint64_t i = 0; i < kRecords; ++i) {
      if (ring.pop(got, Deadline::after(30s)) != RingStatus::kOk) return 2;
      if (got != record_for(i, 8 + i % 300)) return 1;
    }
    return 0;
  });
  for (std::uint64_t i = 0; i < kRecords; ++i) {
    ASSERT_EQ(ring.push(record_for(i, 8 + i % 300), Deadline::after(30s)), RingStatus::kOk);
  }
  expect_clean_exit(consumer, std::chrono::minutes(5));
}

TEST(SpscByteRing, ThreadedEveryRecordOnceIntact) {
  Fixture f;
  auto ring = SpscByteRing::create(f.arena, 1 << 12);
  constexpr std::uint64_t kRecords = 100'000;
  std::atomic<bool> ok{true};
  std::thread consumer([&] {
    std::vector<std::byte> got;
    for (std::uint64_t i = 0; i < kRecords && ok; ++i) {
      if (ring.pop(got, Deadline::after(30s)) != RingStatus::kOk || got != record_for(i, i % 200)) {
        ok = false;
      }
    }
  });
  for (std::uint64_t i = 0; i < kRecords; ++i) {
    ASSERT_EQ(ring.push(record_for(i, i % 200), Deadline::after(30s)), RingStatus::kOk);
  }
  consumer.join();
  EXPECT_TRUE(ok.load());
}

// Fault injection: SIGKILL the producer at random moments (200 trials) while it writes in
// place; every record the consumer then sees is whole and in sequence.
TEST(SpscByteRing, ProducerKilledMidWriteNeverTearsARecord) {
  std::mt19937_64 random(11);
  for (int trial = 0; trial < 200; ++trial) {
    Fixture f;
    auto ring = SpscByteRing::create(f.arena, 1 << 20);
    const pid_t producer = fork_child([&] {
      for (std::uint64_t i = 0;; ++i) {
        const std::vector<std::byte> record = record_for(i, 8 + i % 500);
        std::span<std::byte> space;
        while ((space = ring.reserve(record.size())).empty()) {
        }
        for (std::size_t b = 0; b < record.size(); ++b) space[b] = record[b];  // slowly
        ring.commit(record.size());
      }
      return 0;
    });
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 3000));
    ::kill(producer, SIGKILL);
    wait_child(producer);
    std::vector<std::byte> got;
    std::uint64_t expected = 0;
    while (ring.try_pop(got) == RingStatus::kOk) {
      ASSERT_EQ(got, record_for(expected, 8 + expected % 500)) << "trial " << trial;
      ++expected;
    }
    EXPECT_FALSE(ring.corrupt());
  }
}

}  // namespace
}  // namespace ringfork
