// Queue<T>: the multiprocessing.Queue contract (put/get, timeouts, close, qsize/empty/full),
// every size from 0 bytes to past the largest block, the unbounded queue whose producer
// exits before anyone reads, the memory cap, and P x C cross-process stress.
#include "ringfork/queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <random>
#include <limits>
#include <thread>

#include "test_support.h"

namespace ringfork {
namespace {

using namespace std::chrono_literals;
using testing::expect_clean_exit;
using testing::fork_child;
using testing::wait_child;

constexpr std::size_t kMiB = std::size_t{1} << 20;

struct Fixture {
  explicit Fixture(std::size_t capacity = 512 * kMiB, std::size_t pool_bytes = 256 * kMiB)
      : segment(Segment::create({.capacity = capacity})),
        arena(SharedArena::create(segment)),
        pool(BlockPool::create(arena, {.max_bytes = pool_bytes})) {}
  Segment segment;
  SharedArena arena;
  BlockPool pool;
};

// Message bytes derived from (producer, sequence, length): any corruption, truncation or
// mix-up fails verify().
Bytes make_payload(std::uint32_t producer, std::uint64_t sequence, std::size_t length) {
  Bytes bytes(length + 16);
  std::memcpy(bytes.data(), &sequence, 8);
  std::memcpy(bytes.data() + 8, &producer, 4);
  std::uint64_t state = sequence * 0x9e3779b97f4a7c15ULL + producer + length;
  for (std::size_t i = 16; i < bytes.size(); i += 8) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    std::memcpy(bytes.data() + i, &state, std::min<std::size_t>(8, bytes.size() - i));
  }
  return bytes;
}

bool verify_payload(const Bytes& bytes, std::uint32_t& producer, std::uint64_t& sequence) {
  if (bytes.size() < 16) return false;
  std::memcpy(&sequence, bytes.data(), 8);
  std::memcpy(&producer, bytes.data() + 8, 4);
  return bytes == make_payload(producer, sequence, bytes.size() - 16);
}

TEST(Queue, RoundTripsEveryKindOfValue) {
  Fixture f;
  struct Point {
    double x, y;
    std::int32_t id;
  };
  auto points = Queue<Point>::create(f.arena, f.pool);
  points.put({1.5, -2.0, 7});
  const Point p = points.get(1s);
  EXPECT_EQ(p.x, 1.5);
  EXPECT_EQ(p.id, 7);

  auto strings = Queue<std::string>::create(f.arena, f.pool);
  strings.put("");
  strings.put(std::string(1000, 'x'));
  EXPECT_EQ(strings.get(), "");
  EXPECT_EQ(strings.get(), std::string(1000, 'x'));

  auto bytes = Queue<Bytes>::create(f.arena, f.pool);
  for (std::size_t length : {0ul, 1ul, 103ul, 104ul, 105ul, 4096ul, 65537ul, 3 * kMiB}) {
    bytes.put(make_payload(1, length, length));
    const Bytes got = bytes.get(5s);
    std::uint32_t producer = 0;
    std::uint64_t sequence = 0;
    ASSERT_TRUE(verify_payload(got, producer, sequence)) << "length " << length;
    EXPECT_EQ(sequence, length);
  }
  EXPECT_TRUE(bytes.empty());
}

// Short messages are copied from the ring slot straight into a vector that has the room, and
// through a copy of the descriptor into one that must grow: both must give the same bytes.
TEST(Queue, GetIntoAVectorOfAnyCapacity) {
  Fixture f;
  auto queue = Queue<Bytes>::create(f.arena, f.pool, {.maxsize = 8});
  ByteQueue& bytes = queue.bytes();
  for (std::size_t length : {0ul, 1ul, 64ul, 103ul, 104ul, 105ul, 5000ul}) {
    std::vector<std::byte> message(length);
    for (std::size_t i = 0; i < length; ++i) message[i] = std::byte(i * 7 + length);
    for (std::size_t capacity : {0ul, length / 2, length, 2 * length + 1}) {
      for (bool nowait : {false, true}) {
        std::vector<std::byte> out;
        out.reserve(capacity);
        out.assign(capacity, std::byte{0xee});  // stale contents must not survive
        bytes.put(message);
        if (nowait) {
          ASSERT_EQ(bytes.get_nowait(out), RingStatus::kOk);
        } else {
          bytes.get(out, Deadline::after(1s));
        }
        EXPECT_EQ(out, message) << "length " << length << ", capacity " << capacity;
      }
    }
  }
  EXPECT_TRUE(bytes.empty());
  for (const auto& stats : f.pool.stats()) EXPECT_EQ(stats.in_use, 0u) << "block leaked";
}

TEST(Queue, MessageLargerThanTheLargestBlockTravelsAsAChain) {
  Fixture f(1024 * kMiB, 512 * kMiB);
  auto queue = Queue<Bytes>::create(f.arena, f.pool);
  const std::size_t length = 64 * kMiB + 12345;  // more than the 64 MiB class
  queue.put(make_payload(3, 9, length));
  std::uint32_t producer = 0;
  std::uint64_t sequence = 0;
  const Bytes got = queue.get(10s);
  ASSERT_TRUE(verify_payload(got, producer, sequence));
  EXPECT_EQ(got.size(), length + 16);
  for (const auto& stats : f.pool.stats()) EXPECT_EQ(stats.in_use, 0u) << "block leaked";
}

TEST(Queue, TimeoutsRaiseFullAndEmpty) {
  Fixture f;
  auto queue = Queue<int>::create(f.arena, f.pool, {.maxsize = 2});
  EXPECT_THROW(queue.get(20ms), Empty);
  int value = 0;
  EXPECT_EQ(queue.get_nowait(value), RingStatus::kEmpty);
  queue.put(1);
  EXPECT_EQ(queue.put_nowait(2), RingStatus::kOk);
  EXPECT_TRUE(queue.full());
  EXPECT_EQ(queue.qsize(), 2u);
  EXPECT_EQ(queue.put_nowait(3), RingStatus::kFull);
  const std::int64_t start = Deadline::monotonic_ns();
  EXPECT_THROW(queue.put(3, 30ms), Full);
  EXPECT_GE(Deadline::monotonic_ns() - start, 30'000'000);
  EXPECT_EQ(queue.get(), 1);
  EXPECT_FALSE(queue.full());
}

// Timeouts too long for a nanosecond count (about 292 years, and infinity) wait like no
// timeout; they used to overflow the conversion and time out at once. NaN is refused.
TEST(Queue, HugeAndInfiniteTimeoutsWaitAndNaNIsRefused) {
  Fixture f;
  auto queue = Queue<int>::create(f.arena, f.pool, {.maxsize = 1});
  for (const double seconds : {1e12, std::numeric_limits<double>::infinity()}) {
    std::thread late([&] {
      std::this_thread::sleep_for(50ms);
      queue.put(7);
    });
    int got = 0;
    EXPECT_NO_THROW(got = queue.get(Timeout{seconds})) << seconds << " s timed out at once";
    late.join();
    if (got == 0) got = queue.get(1s);  // the late put, so the next round starts empty
    EXPECT_EQ(got, 7);
  }
  EXPECT_THROW(queue.get(Timeout{std::numeric_limits<double>::quiet_NaN()}),
               std::invalid_argument);
  queue.put(1);
  EXPECT_THROW(queue.put(2, Timeout{std::numeric_limits<double>::quiet_NaN()}),
               std::invalid_argument);
  EXPECT_EQ(queue.qsize(), 1u);
}

TEST(Queue, CloseLetsConsumersDrainThenRaises) {
  Fixture f;
  auto queue = Queue<std::string>::create(f.arena, f.pool);
  queue.put("last words");
  queue.close();
  EXPECT_TRUE(queue.closed());
  EXPECT_THROW(queue.put("too late"), QueueClosed);
  EXPECT_EQ(queue.put_nowait("too late"), RingStatus::kClosed);
  EXPECT_EQ(queue.get(1s), "last words");
  EXPECT_THROW(queue.get(10s), QueueClosed) << "must not wait for the timeout";
}

TEST(Queue, PutManyAndGetMany) {
  Fixture f;
  auto queue = Queue<std::uint64_t>::create(f.arena, f.pool);
  std::vector<std::uint64_t> values(100);
  std::iota(values.begin(), values.end(), 0);
  queue.put_many(values);
  const std::vector<std::uint64_t> got = queue.get_many(64);
  ASSERT_EQ(got.size(), 64u);
  EXPECT_EQ(got[63], 63u);
  EXPECT_EQ(queue.get_many(64).size(), 36u);
}

TEST(Queue, GetManyOfNoneTakesNothing) {
  Fixture f;
  auto queue = Queue<int>::create(f.arena, f.pool);
  queue.put(1);
  EXPECT_TRUE(queue.get_many(0, 0.1s).empty());
  EXPECT_EQ(queue.qsize(), 1u) << "get_many(0) took a message";
  std::vector<Bytes> messages{Bytes(3)};
  EXPECT_EQ(queue.bytes().get_many(messages, 0, Deadline::after(100ms)), 0u);
  EXPECT_TRUE(messages.empty());
  EXPECT_EQ(queue.qsize(), 1u);
}

// A message that does not decode (bytes put by another type's handle) in the middle of a
// get_many: the values taken before it are returned, and the next get throws the error.
TEST(Queue, GetManyKeepsWhatItTookBeforeAMessageThatDoesNotDecode) {
  Fixture f;
  auto queue = Queue<std::uint64_t>::create(f.arena, f.pool);
  queue.put(10);
  queue.put(11);
  const std::byte junk[3] = {};
  queue.bytes().put(junk);
  queue.put(12);
  EXPECT_EQ(queue.get_many(10, 1s), (std::vector<std::uint64_t>{10, 11}));
  EXPECT_THROW(queue.get(1s), std::runtime_error) << "the decode error, deferred";
  EXPECT_EQ(queue.get(1s), 12u);
}

// ByteQueue::get_many whose first get times out, or finds the queue closed, leaves no
// message behind that was never put.
TEST(Queue, ByteGetManyThatFailsLeavesNoMessage) {
  Fixture f;
  auto queue = ByteQueue::create(f.arena, f.pool);
  std::vector<Bytes> messages;
  EXPECT_THROW(queue.get_many(messages, 8, Deadline::after(10ms)), Empty);
  EXPECT_TRUE(messages.empty());
  queue.close();
  EXPECT_THROW(queue.get_many(messages, 8, Deadline::after(10ms)), QueueClosed);
  EXPECT_TRUE(messages.empty());
}

// An unbounded queue's memory follows its backlog: read as fast as it is written it keeps
// one ring; a backlog links larger rings, which every handle finds, in order.
TEST(Queue, UnboundedQueueLinksLargerRingsOnlyAsItsBacklogGrows) {
  Fixture f;
  auto queue = Queue<std::uint64_t>::create(f.arena, f.pool);
  constexpr std::uint64_t kPassed = 200'000;
  for (std::uint64_t i = 0; i < kPassed; ++i) {
    queue.put(i);
    ASSERT_EQ(queue.get(1s), i);
  }
  EXPECT_EQ(queue.bytes().ring_count(), 1u) << "a backlog of one needs no second ring";
  constexpr std::uint64_t kBacklog = 5000;  // 1024 + 2048 + part of 4096
  for (std::uint64_t i = 0; i < kBacklog; ++i) queue.put(i);
  EXPECT_EQ(queue.bytes().ring_count(), 3u);
  auto other = Queue<std::uint64_t>::attach(f.arena, f.pool, queue.offset());
  EXPECT_EQ(other.qsize(), kBacklog);
  for (std::uint64_t i = 0; i < kBacklog; ++i) ASSERT_EQ(other.get(1s), i);
  EXPECT_TRUE(queue.empty());
  const RingCounters counters = queue.counters();
  EXPECT_EQ(counters.puts, kPassed + kBacklog);
  EXPECT_EQ(counters.gets, kPassed + kBacklog);
  queue.put(7);  // the newest ring serves from now on
  EXPECT_EQ(queue.get(1s), 7u);
  EXPECT_EQ(queue.bytes().ring_count(), 3u);
}

TEST(Queue, CloseReachesEveryLinkedRing) {
  Fixture f;
  auto queue = Queue<std::uint64_t>::create(f.arena, f.pool);
  for (std::uint64_t i = 0; i < 3000; ++i) queue.put(i);
  ASSERT_GT(queue.bytes().ring_count(), 1u);
  queue.close();
  EXPECT_THROW(queue.put(1), QueueClosed);
  EXPECT_EQ(queue.put_nowait(1), RingStatus::kClosed);
  for (std::uint64_t i = 0; i < 3000; ++i) ASSERT_EQ(queue.get(1s), i);
  EXPECT_THROW(queue.get(10s), QueueClosed) << "must not wait for the timeout";
}

// A grower that found ring k full before close() may link ring k + 1 after close() returned
// (here: linked by hand, as such a grower would). A put must still fail as closed, not land
// in the new ring after consumers saw the queue closed and drained.
TEST(Queue, NoPutLandsInARingLinkedAfterClose) {
  Fixture f;
  const std::uint64_t control_offset =
      f.arena.allocate_or_throw(sizeof(RingChainControl), kFalseSharingRange, "test chain");
  auto* control = new (f.segment.at(Offset<RingChainControl>{control_offset})) RingChainControl{};
  RingChain<std::uint64_t>::create(f.arena, *control, 1 << 20, true);
  auto chain = RingChain<std::uint64_t>::attach(f.arena, *control);
  for (std::uint64_t i = 0; i < RingChain<std::uint64_t>::kFirstUnboundedCapacity; ++i) {
    ASSERT_EQ(chain.try_push(i), RingStatus::kOk);
  }
  chain.close();
  std::uint64_t value = 0;
  for (std::uint64_t i = 0; i < RingChain<std::uint64_t>::kFirstUnboundedCapacity; ++i) {
    ASSERT_EQ(chain.try_pop(value), RingStatus::kOk);
  }
  ASSERT_EQ(chain.try_pop(value), RingStatus::kClosed);
  auto late_ring = MpmcRing<std::uint64_t>::create(
      f.arena, {.capacity = 2 * RingChain<std::uint64_t>::kFirstUnboundedCapacity});
  control->ring_offsets[1].store(late_ring.offset());
  EXPECT_EQ(chain.try_push(99), RingStatus::kClosed) << "a put succeeded after close()";
}

// max_backlog caps the newest ring; older ones drain first, so fewer than twice as many are
// ever held, and the cap lifts once they are read.
TEST(Queue, BacklogCapHoldsAcrossLinkedRings) {
  Fixture f;
  constexpr std::size_t kCap = 3000;
  auto queue = Queue<std::uint64_t>::create(f.arena, f.pool, {.max_backlog = kCap});
  std::uint64_t held = 0;
  while (queue.put_nowait(held) == RingStatus::kOk) ++held;
  EXPECT_EQ(queue.put_nowait(held), RingStatus::kNoMemory);
  EXPECT_THROW(queue.put(held), std::system_error);
  EXPECT_GE(held, kCap);
  EXPECT_LT(held, 2 * kCap);
  for (std::uint64_t i = 0; i < held; ++i) ASSERT_EQ(queue.get(1s), i);
  for (std::uint64_t i = 0; i < kCap; ++i) ASSERT_EQ(queue.put_nowait(i), RingStatus::kOk);
}

// Four producer threads race to link rings while two consumers read (the TSan variant):
// every message arrives once, each producer's in order.
TEST(Queue, ThreadsGrowOneUnboundedQueue) {
  Fixture f;
  auto queue = Queue<std::uint64_t>::create(f.arena, f.pool);
  constexpr std::uint64_t kProducers = 4, kPerProducer = 20'000;
  std::atomic<std::uint64_t> put_count{0}, count{0}, sum{0}, disorder{0};
  std::vector<std::thread> consumers;
  for (int c = 0; c < 2; ++c) {
    consumers.emplace_back([&] {
      // Start once a backlog exists, so that the producers grow the queue while we read.
      while (put_count.load() < 3000) std::this_thread::yield();
      std::uint64_t last[kProducers];
      std::fill(std::begin(last), std::end(last), ~std::uint64_t{0});
      for (;;) {
        std::uint64_t value = 0;
        try {
          value = queue.get(30s);
        } catch (const QueueClosed&) {
          return;
        }
        const std::uint64_t producer = value >> 32, sequence = value & 0xffffffff;
        if (producer >= kProducers) {
          ++disorder;
          continue;
        }
        if (last[producer] != ~std::uint64_t{0} && sequence <= last[producer]) ++disorder;
        last[producer] = sequence;
        ++count;
        sum += value;
      }
    });
  }
  std::vector<std::thread> producers;
  for (std::uint64_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (std::uint64_t i = 0; i < kPerProducer; ++i) {
        queue.put(p << 32 | i);
        ++put_count;
      }
    });
  }
  for (auto& t : producers) t.join();
  queue.close();
  for (auto& t : consumers) t.join();
  std::uint64_t expected_sum = 0;
  for (std::uint64_t p = 0; p < kProducers; ++p) {
    for (std::uint64_t i = 0; i < kPerProducer; ++i) expected_sum += p << 32 | i;
  }
  EXPECT_EQ(count.load(), kProducers * kPerProducer);
  EXPECT_EQ(sum.load(), expected_sum);
  EXPECT_EQ(disorder.load(), 0u);
  EXPECT_GT(queue.bytes().ring_count(), 1u);
}

TEST(Queue, MemoryCapIsAClearError) {
  Fixture f(256 * kMiB, 8 * kMiB);
  auto queue = Queue<Bytes>::create(f.arena, f.pool);
  Bytes chunk(kMiB, std::byte{1});
  try {
    for (int i = 0; i < 100; ++i) queue.put(chunk);
    ADD_FAILURE() << "an 8 MiB pool took 100 MiB";
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code(), std::errc::not_enough_memory);
    EXPECT_NE(std::string(error.what()).find("memory cap"), std::string::npos) << error.what();
  }
  const std::size_t held = queue.qsize();
  EXPECT_GT(held, 0u);
  EXPECT_EQ(queue.put_nowait(chunk), RingStatus::kNoMemory);
  for (std::size_t i = 0; i < held; ++i) EXPECT_EQ(queue.get(1s), chunk);
  queue.put(chunk);  // room again once read
  EXPECT_EQ(queue.get(1s), chunk);

  auto tiny = Queue<int>::create(f.arena, f.pool, {.max_backlog = 4});
  for (int i = 0; i < 4; ++i) tiny.put(i);
  EXPECT_THROW(tiny.put(4), std::system_error) << "backlog cap of an unbounded queue";
}

// A ring serves at most ClaimRegistry::kMaxRecords live threads: the next one's put and get
// fail with an error that names that limit, not the memory cap.
TEST(Queue, ThreadsPastTheRingsParticipantLimitGetAnErrorNamingIt) {
  Fixture f;
  auto queue = Queue<std::uint64_t>::create(f.arena, f.pool);
  std::atomic<int> ready{0};
  std::atomic<bool> finish{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < ClaimRegistry::kMaxRecords; ++i) {
    threads.emplace_back([&, i] {
      queue.put(static_cast<std::uint64_t>(i));
      std::uint64_t value = 0;
      (void)queue.get_nowait(value);
      ++ready;
      while (!finish) std::this_thread::sleep_for(1ms);
    });
  }
  while (ready < ClaimRegistry::kMaxRecords) std::this_thread::sleep_for(1ms);
  std::string put_error, get_error;
  try {
    queue.put(99);
  } catch (const std::system_error& error) {
    put_error = error.what();
  }
  try {
    (void)queue.get(10ms);
  } catch (const std::system_error& error) {
    get_error = error.what();
  }
  finish = true;
  for (std::thread& thread : threads) thread.join();
  const std::string limit = std::to_string(ClaimRegistry::kMaxRecords) + " live threads";
  EXPECT_NE(put_error.find(limit), std::string::npos) << put_error;
  EXPECT_NE(get_error.find(limit), std::string::npos) << get_error;
  EXPECT_EQ(get_error.find("memory cap"), std::string::npos) << get_error;
}

TEST(Queue, CorruptLengthFromAPeerIsRejected) {
  Fixture f;
  auto typed = Queue<std::uint64_t>::create(f.arena, f.pool);
  auto raw = ByteQueue::attach(f.arena, f.pool, typed.offset());
  const std::byte three[3] = {};
  raw.put(three);
  EXPECT_THROW(typed.get(1s), std::runtime_error) << "3 bytes are not a uint64";
  EXPECT_THROW(ByteQueue::attach(f.arena, f.pool, typed.offset() + 64), std::invalid_argument);
}

// The first seed's failure, pinned: a child puts 1 GB in 1 KB messages with nobody reading
// and exits; its exit does not wait for a reader, and everything is read afterwards.
TEST(Queue, UnboundedProducerExitsBeforeAnyoneReads) {
  constexpr std::size_t kMessages = testing::scaled(1 << 20, 4);  // 1 KiB each: 1 GiB
  Fixture f(std::size_t{3} << 30, std::size_t{2} << 30);
  auto queue = Queue<Bytes>::create(f.arena, f.pool);
  const pid_t child = fork_child([&] {
    Bytes message(1024);
    for (std::uint64_t i = 0; i < kMessages; ++i) {
      std::memcpy(message.data(), &i, 8);
      std::memset(message.data() + 8, static_cast<int>(i & 0xff), message.size() - 8);
      queue.put(message);
    }
    return 0;
  });
  expect_clean_exit(child, std::chrono::minutes(5));
  EXPECT_EQ(queue.qsize(), kMessages);
  Bytes got;
  for (std::uint64_t i = 0; i < kMessages; ++i) {
    got = queue.get(10s);
    std::uint64_t sequence = 0;
    ASSERT_EQ(got.size(), 1024u);
    std::memcpy(&sequence, got.data(), 8);
    ASSERT_EQ(sequence, i);
    ASSERT_EQ(got[1023], static_cast<std::byte>(i & 0xff));
  }
  EXPECT_TRUE(queue.empty());
  for (const auto& stats : f.pool.stats()) EXPECT_EQ(stats.in_use, 0u);
}

// One Queue object shared by two producer and two consumer threads (the TSan variant).
TEST(Queue, ThreadsShareOneHandle) {
  Fixture f;
  auto queue = Queue<std::string>::create(f.arena, f.pool, {.maxsize = 64});
  constexpr int kPerProducer = 20'000;
  std::atomic<std::uint64_t> count{0}, length_sum{0}, bad{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < 2; ++c) {
    threads.emplace_back([&] {
      for (;;) {
        std::string value;
        try {
          value = queue.get(30s);
        } catch (const QueueClosed&) {
          return;
        }
        if (value.size() < 3 || value != std::string(value.size(), value[0])) ++bad;
        ++count;
        length_sum += value.size();
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < 2; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        queue.put(std::string(3 + i % 300, static_cast<char>('a' + p)), 30s);
      }
    });
  }
  for (auto& t : producers) t.join();
  queue.close();
  for (auto& t : threads) t.join();
  std::uint64_t expected_length = 0;
  for (int i = 0; i < kPerProducer; ++i) expected_length += 2 * (3 + i % 300);
  EXPECT_EQ(count.load(), 2u * kPerProducer);
  EXPECT_EQ(length_sum.load(), expected_length);
  EXPECT_EQ(bad.load(), 0u);
}

std::size_t random_length(std::mt19937_64& random) {
  const std::uint64_t roll = random() % 10000;
  if (roll < 9000) return random() % 200;       // mostly small, inline or just past it
  if (roll < 9950) return random() % 65536;     // medium, one block
  return random() % kMiB;                       // up to 1 MiB
}

struct StressTally {
  std::atomic<std::uint64_t> count[8];
  std::atomic<std::uint64_t> sequence_sum[8];
  std::atomic<std::uint64_t> bad;
};

// maxsize 0: unbounded, so producers that outrun the consumers link rings while they run.
void stress(int producers, int consumers, std::uint64_t per_producer, int giant_messages,
            std::size_t maxsize = 4096) {
  Fixture f(std::size_t{2} << 30, std::size_t{1} << 30);
  auto queue = Queue<Bytes>::create(f.arena, f.pool, {.maxsize = maxsize});
  const std::uint64_t tally_offset = f.arena.allocate_or_throw(sizeof(StressTally), 64, "tally");
  auto* tally = f.segment.at(Offset<StressTally>{tally_offset});
  std::vector<pid_t> pids;
  for (int c = 0; c < consumers; ++c) {
    pids.push_back(fork_child([&] {
      std::uint64_t last[8];
      std::fill(std::begin(last), std::end(last), ~std::uint64_t{0});
      Bytes message;
      for (;;) {
        const RingStatus status = queue.bytes().get_nowait(message);
        if (status == RingStatus::kClosed) return 0;
        if (status != RingStatus::kOk) {
          try {
            queue.bytes().get(message, Deadline::after(60s));
          } catch (const QueueClosed&) {
            return 0;
          }
        }
        std::uint32_t producer = 0;
        std::uint64_t sequence = 0;
        if (!verify_payload(message, producer, sequence) || producer >= 8 ||
            (last[producer] != ~std::uint64_t{0} && sequence <= last[producer])) {
          tally->bad.fetch_add(1);
          continue;
        }
        last[producer] = sequence;
        tally->count[producer].fetch_add(1);
        tally->sequence_sum[producer].fetch_add(sequence);
      }
    }));
  }
  for (int p = 0; p < producers; ++p) {
    pids.push_back(fork_child([&, p] {
      std::mt19937_64 random(p * 7919 + 1);
      for (std::uint64_t s = 0; s < per_producer; ++s) {
        std::size_t length = random_length(random);
        if (p == 0 && static_cast<int>(s) < giant_messages) length = 64 * kMiB;
        queue.put(make_payload(p, s, length), 60s);
      }
      return 0;
    }));
  }
  for (std::size_t i = consumers; i < pids.size(); ++i) expect_clean_exit(pids[i], std::chrono::minutes(5));
  queue.close();
  for (int c = 0; c < consumers; ++c) expect_clean_exit(pids[c], std::chrono::minutes(5));
  EXPECT_EQ(tally->bad.load(), 0u);
  for (int p = 0; p < producers; ++p) {
    EXPECT_EQ(tally->count[p].load(), per_producer) << "producer " << p;
    EXPECT_EQ(tally->sequence_sum[p].load(), per_producer * (per_producer - 1) / 2);
  }
  for (const auto& stats : f.pool.stats()) EXPECT_EQ(stats.in_use, 0u) << stats.block_bytes;
}

TEST(QueueStress, OneByOneMixedSizes) { stress(1, 1, testing::scaled(200'000, 4), 2); }
TEST(QueueStress, TwoByTwoMixedSizes) { stress(2, 2, testing::scaled(100'000, 4), 1); }
TEST(QueueStress, FourByFourMixedSizes) { stress(4, 4, testing::scaled(50'000, 4), 0); }
TEST(QueueStress, EightByOneMixedSizes) { stress(8, 1, testing::scaled(25'000, 4), 0); }
TEST(QueueStress, FourByTwoUnboundedMixedSizes) { stress(4, 2, testing::scaled(20'000, 4), 0, 0); }

}  // namespace
}  // namespace ringfork
