// Shared by the MPMC ring tests (MpmcRing, ShardedMpmcRing): a self-checking message, a
// segment to put rings in, and the cross-process stress and producer-kill trials, written
// once against any ring with MpmcRing's interface.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <random>
#include <thread>
#include <vector>

#include "ringfork/arena.h"
#include "ringfork/ring_common.h"
#include "ringfork/segment.h"
#include "test_support.h"

namespace ringfork::testing {

using namespace std::chrono_literals;

struct Message {
  std::uint32_t producer;
  std::uint32_t reserved;
  std::uint64_t sequence;
  std::uint64_t check[5];

  static Message make(std::uint32_t producer, std::uint64_t sequence) {
    Message message{producer, 0, sequence, {}};
    for (int i = 0; i < 5; ++i) message.check[i] = (sequence + 1) * 0x9e3779b97f4a7c15ULL ^ (producer + i);
    return message;
  }
  bool intact() const {
    const Message reference = make(producer, sequence);
    return std::memcmp(this, &reference, sizeof(Message)) == 0;
  }
};

struct Fixture {
  explicit Fixture(std::size_t capacity = 256 << 20)
      : segment(Segment::create({.capacity = capacity})), arena(SharedArena::create(segment)) {}
  Segment segment;
  SharedArena arena;
};

// Per consumer and producer: how many, their sequence sum, and whether order held.
struct Tally {
  std::uint64_t count[8][8];
  std::uint64_t sum[8][8];
  std::uint64_t out_of_order[8];
  std::uint64_t torn[8];
};

// P producer and C consumer processes on the ring make_ring(arena) returns: every message
// arrives exactly once (counts and sequence sums per producer), whole, and in each
// producer's order as each consumer sees it.
template <class MakeRing>
void stress(MakeRing make_ring, int producers, int consumers, std::uint64_t per_producer) {
  Fixture f;
  auto ring = make_ring(f.arena);
  const std::uint64_t tally_offset = f.arena.allocate_or_throw(sizeof(Tally), 64, "tally");
  auto* tally = f.segment.at(Offset<Tally>{tally_offset});
  std::vector<pid_t> children;
  for (int c = 0; c < consumers; ++c) {
    children.push_back(fork_child([&, c] {
      std::uint64_t last_seen[8];
      std::fill(std::begin(last_seen), std::end(last_seen), ~std::uint64_t{0});
      Message batch[16];
      for (;;) {
        std::size_t taken = 0;
        const RingStatus status = ring.pop_batch(batch, &taken, Deadline::after(60s));
        if (status == RingStatus::kClosed) return 0;
        if (status != RingStatus::kOk) return 2;
        for (std::size_t i = 0; i < taken; ++i) {
          const Message& m = batch[i];
          if (m.producer >= 8 || !m.intact()) {
            ++tally->torn[c];
            continue;
          }
          // Per-producer FIFO as seen by one consumer: sequences only increase.
          if (last_seen[m.producer] != ~std::uint64_t{0} && m.sequence <= last_seen[m.producer]) {
            ++tally->out_of_order[c];
          }
          last_seen[m.producer] = m.sequence;
          ++tally->count[c][m.producer];
          tally->sum[c][m.producer] += m.sequence;
        }
      }
    }));
  }
  std::vector<pid_t> producer_pids;
  for (int p = 0; p < producers; ++p) {
    producer_pids.push_back(fork_child([&, p] {
      for (std::uint64_t s = 0; s < per_producer;) {
        if ((s & 7) == 0 && s + 4 <= per_producer) {
          Message group[4];
          for (int i = 0; i < 4; ++i) group[i] = Message::make(p, s + i);
          std::size_t pushed = 0;
          if (ring.try_push_batch(group, &pushed) == RingStatus::kOk) {
            s += 4;
            continue;
          }
        }
        if (ring.push(Message::make(p, s), Deadline::after(60s)) != RingStatus::kOk) return 2;
        ++s;
      }
      return 0;
    }));
  }
  for (pid_t pid : producer_pids) expect_clean_exit(pid, std::chrono::minutes(5));
  ring.close();
  for (pid_t pid : children) expect_clean_exit(pid, std::chrono::minutes(5));
  for (int p = 0; p < producers; ++p) {
    std::uint64_t count = 0, sum = 0;
    for (int c = 0; c < consumers; ++c) {
      count += tally->count[c][p];
      sum += tally->sum[c][p];
    }
    EXPECT_EQ(count, per_producer) << "producer " << p;
    EXPECT_EQ(sum, per_producer * (per_producer - 1) / 2) << "producer " << p;
  }
  for (int c = 0; c < consumers; ++c) {
    EXPECT_EQ(tally->torn[c], 0u);
    EXPECT_EQ(tally->out_of_order[c], 0u);
  }
  EXPECT_EQ(ring.counters().dead_producer_slots, 0u);
}

// Kill trials per test: the 200 in plain builds; a quarter under the sanitizers,
// whose cost per trial would otherwise take most of CI's time budget.
inline constexpr long kKillTrials = scaled(200, 4);

// SIGKILL one of two producer processes at a random point, kKillTrials times, on the ring
// make_ring(arena) returns (room for 16384 messages or more): no torn message, no gap or
// reorder in either producer's messages, the survivor's all arrive, and at most one hole (a
// position claimed and never published) is skipped.
template <class MakeRing>
void producer_killed_trials(MakeRing make_ring) {
  std::mt19937_64 random(4242);
  std::uint64_t holes = 0;
  for (long trial = 0; trial < kKillTrials; ++trial) {
    Fixture f(16 << 20);
    auto ring = make_ring(f.arena);
    constexpr std::uint64_t kSurvivorMessages = 2000;
    // The victim stops after 8000 messages (the ring holds 16384), so that a late kill
    // never leaves the survivor without room.
    const pid_t victim = fork_child([&] {
      for (std::uint64_t s = 0; s < 8000; ++s) {
        if (ring.try_push(Message::make(0, s)) != RingStatus::kOk) return 2;
      }
      for (;;) ::pause();
      return 0;
    });
    const pid_t survivor = fork_child([&] {
      for (std::uint64_t s = 0; s < kSurvivorMessages; ++s) {
        if (ring.push(Message::make(1, s), Deadline::after(30s)) != RingStatus::kOk) return 2;
      }
      return 0;
    });
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 2000));
    ::kill(victim, SIGKILL);
    wait_child(victim);
    expect_clean_exit(survivor);
    ring.close();
    std::uint64_t next[2] = {0, 0};
    Message m{};
    RingStatus status;
    while ((status = ring.pop(m, Deadline::after(30s))) == RingStatus::kOk) {
      ASSERT_TRUE(m.intact()) << "torn message in trial " << trial;
      ASSERT_LT(m.producer, 2u);
      ASSERT_EQ(m.sequence, next[m.producer]) << "gap or reorder, producer " << m.producer;
      ++next[m.producer];
    }
    ASSERT_EQ(status, RingStatus::kClosed) << "trial " << trial;
    EXPECT_EQ(next[1], kSurvivorMessages);
    const RingCounters counters = ring.counters();
    EXPECT_EQ(counters.gets, counters.puts);
    EXPECT_LE(counters.dead_producer_slots, 1u);
    holes += counters.dead_producer_slots;
  }
  std::printf("[ info ] kills that landed between claim and publish: %llu of %ld\n",
              static_cast<unsigned long long>(holes), kKillTrials);
}

// SIGKILL one of two consumer processes at a random point, kKillTrials times, on the ring
// make_ring(arena) returns (a small one, so that the producer waits on the consumers). The producer
// never wedges on the slot the victim was copying (it is freed once the victim is dead),
// the survivor never hangs, and no message is delivered twice or torn.
template <class MakeRing>
void consumer_killed_trials(MakeRing make_ring) {
  std::mt19937_64 random(777);
  std::uint64_t freed = 0;
  for (long trial = 0; trial < kKillTrials; ++trial) {
    Fixture f(16 << 20);
    auto ring = make_ring(f.arena);
    constexpr std::uint64_t kMessages = 20000;
    const std::uint64_t seen_offset = f.arena.allocate_or_throw(kMessages, 64, "seen flags");
    auto* seen = f.segment.at(Offset<std::atomic<std::uint8_t>>{seen_offset}, kMessages);
    auto consume = [&] {
      Message m{};
      while (ring.pop(m, Deadline::after(30s)) == RingStatus::kOk) {
        if (!m.intact() || m.sequence >= kMessages) return 3;
        if (seen[m.sequence].exchange(1) != 0) return 4;  // delivered twice
      }
      return 0;
    };
    const pid_t victim = fork_child(consume);
    const pid_t survivor = fork_child(consume);
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 1000));
    ::kill(victim, SIGKILL);
    wait_child(victim);
    for (std::uint64_t s = 0; s < kMessages; ++s) {
      ASSERT_EQ(ring.push(Message::make(0, s), Deadline::after(30s)), RingStatus::kOk)
          << "producer wedged, trial " << trial;
    }
    ring.close();
    expect_clean_exit(survivor);
    std::uint64_t delivered = 0;
    for (std::uint64_t s = 0; s < kMessages; ++s) delivered += seen[s].load();
    // At most one message dies with its consumer (taken but not recorded).
    EXPECT_GE(delivered + 1, kMessages) << "trial " << trial;
    freed += ring.counters().dead_consumer_slots;
  }
  std::printf("[ info ] kills that landed between take and release: %llu of %ld\n",
              static_cast<unsigned long long>(freed), kKillTrials);
}

}  // namespace ringfork::testing
