// hash_bytes and FlatStringMap: the hash is SipHash, keyed per process, so collisions found
// for one key (say, by whoever writes a log) do not carry over to the key of a run.
#include "flat_string_map.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>

namespace {

using logscan::hash_bytes;
using logscan::HashKey;

// Key 00 01 .. 0f of the SipHash paper's test vectors, as two little-endian words.
constexpr HashKey kPaperKey{0x0706050403020100, 0x0f0e0d0c0b0a0908};

std::string bytes_up_to(std::size_t n) {
  std::string message;
  for (std::size_t i = 0; i < n; ++i) message += static_cast<char>(i);
  return message;
}

TEST(SipHash, MatchesReferenceVectors) {
  // SipHash-2-4 over the messages 00, 00 01, ..., of the reference implementation's
  // vectors.h (and the paper's Appendix A for 15 bytes): every tail length 0..7, and a
  // whole word before a tail.
  const auto siphash24 = [](std::size_t n) {
    return logscan::siphash<2, 4>(bytes_up_to(n), kPaperKey);
  };
  EXPECT_EQ(siphash24(0), 0x726fdb47dd0e0e31u);
  EXPECT_EQ(siphash24(1), 0x74f839c593dc67fdu);
  EXPECT_EQ(siphash24(15), 0xa129ca6149be45e5u);
}

TEST(HashBytes, DependsOnEveryByteAndTheLength) {
  const HashKey key{1, 2};
  std::array<std::string, 4> keys = {"", std::string(1, '\0'), "req-17", "req-18"};
  for (std::size_t i = 0; i < keys.size(); ++i) {
    for (std::size_t j = i + 1; j < keys.size(); ++j) {
      EXPECT_NE(hash_bytes(keys[i], key), hash_bytes(keys[j], key)) << i << " " << j;
    }
  }
}

// What an attacker could precompute against a fixed hash: req_ids that all land in one
// bucket of a 1024-slot table. Under another key they scatter like any other req_ids.
TEST(HashBytes, BucketCollisionsDoNotCarryToAnotherKey) {
  const HashKey known{0x0123456789abcdef, 0xfedcba9876543210};
  const HashKey secret{0x1111111111111111, 0x2222222222222222};
  std::array<int, 1024> crowd{};
  int colliding = 0;
  for (int i = 0; i < 200'000; ++i) {
    const std::string req_id = "ab12cd" + std::to_string(i);
    if ((hash_bytes(req_id, known) & 1023) != 0) continue;
    ++colliding;
    ++crowd[hash_bytes(req_id, secret) & 1023];
  }
  ASSERT_GT(colliding, 100);
  int fullest = 0;
  for (int n : crowd) fullest = std::max(fullest, n);
  EXPECT_LE(fullest, 8) << "of " << colliding << " req_ids crowding one bucket under the known key";
}

TEST(HashBytes, ProcessKeyIsDrawn) {
  const HashKey& key = logscan::process_hash_key();
  EXPECT_TRUE(key.k0 != 0 || key.k1 != 0);
  EXPECT_EQ(&key, &logscan::process_hash_key());  // one key for the whole process
}

TEST(FlatStringMap, FindsWhatItInserted) {
  logscan::FlatStringMap<int> map;
  for (int i = 0; i < 1000; ++i) {
    const std::string key = "k" + std::to_string(i);
    auto found = map.find_or_insert(key, hash_bytes(key));
    ASSERT_TRUE(found.inserted);
    found.value = i;
  }
  for (int i = 0; i < 1000; ++i) {
    const std::string key = "k" + std::to_string(i);
    const auto found = map.find_or_insert(key, hash_bytes(key));
    EXPECT_FALSE(found.inserted);
    EXPECT_EQ(found.value, i);
  }
  EXPECT_EQ(map.size(), 1000u);
}

}  // namespace
