// hash_bytes and FlatStringMap: the hash is keyed per process (SipHash for long keys, a
// folded multiply for short ones), so collisions found for one key (say, by whoever writes
// a log) do not carry over to the key of a run. Keys of up to 16 bytes sit in their slots,
// longer ones in the arena: both kinds must behave alike.
#include "flat_string_map.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <new>
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
  // Sizes around the switch from the short-key hash to SipHash (16 to 17 bytes), and keys
  // that pack into equal words and differ only in size ("ab" and "ab\0").
  const std::string sixteen = "0123456789abcdef";
  std::array<std::string, 10> keys = {"",
                                      std::string(1, '\0'),
                                      "req-17",
                                      "req-18",
                                      "ab",
                                      std::string("ab\0", 3),
                                      sixteen.substr(0, 15),
                                      sixteen,
                                      sixteen + "g",
                                      sixteen + "h"};
  for (std::size_t i = 0; i < keys.size(); ++i) {
    for (std::size_t j = i + 1; j < keys.size(); ++j) {
      EXPECT_NE(hash_bytes(keys[i], key), hash_bytes(keys[j], key)) << i << " " << j;
    }
  }
}

// What an attacker could precompute against a fixed hash: keys that all land in one bucket
// of a 1024-slot table. Under another key they should scatter like any other keys. Takes
// the keys make_key(0..n-1) that land in bucket 0 under `known`, expects over `min_crowd`,
// and checks how many of them share a bucket under `secret`.
template <class MakeKey>
void expect_known_collisions_scatter(int n, int min_crowd, MakeKey make_key) {
  const HashKey known{0x0123456789abcdef, 0xfedcba9876543210};
  const HashKey secret{0x1111111111111111, 0x2222222222222222};
  std::array<int, 1024> crowd{};
  int colliding = 0;
  for (int i = 0; i < n; ++i) {
    const std::string key = make_key(i);
    if ((hash_bytes(key, known) & 1023) != 0) continue;
    ++colliding;
    ++crowd[hash_bytes(key, secret) & 1023];
  }
  ASSERT_GT(colliding, min_crowd);
  int fullest = 0;
  for (int in_bucket : crowd) fullest = std::max(fullest, in_bucket);
  EXPECT_LE(fullest, 8) << "of " << colliding << " keys crowding one bucket under the known key";
}

TEST(HashBytes, BucketCollisionsDoNotCarryToAnotherKey) {
  expect_known_collisions_scatter(200'000, 100, [](int i) { return "ab12cd" + std::to_string(i); });
}

// Loggen-shaped waiting keys, 16 bytes: a 4-byte call id and 12 hex digits.
TEST(HashBytes, SixteenByteKeyCollisionsDoNotCarryToAnotherKey) {
  expect_known_collisions_scatter(400'000, 200, [](int i) {
    char hex[13];
    std::snprintf(hex, sizeof hex, "%012x", static_cast<unsigned>(i));
    return std::string("\x01\0\0\0", 4) + hex;
  });
}

// Under another secret a key hashes elsewhere, short keys and SipHash's long ones alike.
TEST(HashBytes, DependsOnTheSecret) {
  const HashKey one{1, 2}, other{1, 3};
  for (const std::string key : {"", "abcd0123456789ab", "abcd0123456789abc"}) {
    EXPECT_NE(hash_bytes(key, one), hash_bytes(key, other)) << key;
  }
}

TEST(ShortKey, EveryByteAndSizeCounts) {
  const std::string bytes = "0123456789abcdef";
  for (std::size_t n = 0; n <= logscan::ShortKey::kMaxBytes; ++n) {
    const std::string key = bytes.substr(0, n);
    const logscan::ShortKey packed = logscan::ShortKey::pack(key);
    // Its words' bytes are the key, zero-padded.
    EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(&packed), n), key);
    for (std::size_t i = 0; i < n; ++i) {
      std::string changed = key;
      changed[i] ^= 0x40;
      EXPECT_FALSE(logscan::ShortKey::pack(changed) == packed) << n << " " << i;
    }
  }
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

using Map = logscan::FlatStringMap<int>;

// Every entry of `map`, by key.
std::map<std::string, int> contents(const Map& map) {
  std::map<std::string, int> out;
  map.for_each([&](std::string_view key, int value) { out.emplace(key, value); });
  return out;
}

// Keys at the inline limit and one byte past it, and ones equal but for their size.
TEST(FlatStringMap, InlineAndArenaKeysAtTheBoundary) {
  const std::string inline_max(Map::kInlineKeyBytes, 'k');
  const std::vector<std::string> keys = {"",
                                         std::string(1, '\0'),
                                         inline_max,
                                         inline_max + 'k',
                                         inline_max.substr(1),
                                         inline_max + "kk"};
  Map map;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    auto found = map.find_or_insert(keys[i], hash_bytes(keys[i]));
    ASSERT_TRUE(found.inserted) << keys[i].size();
    found.value = static_cast<int>(i);
  }
  std::map<std::string, int> expected;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const auto found = map.find_or_insert(keys[i], hash_bytes(keys[i]));
    EXPECT_FALSE(found.inserted) << keys[i].size();
    EXPECT_EQ(found.value, static_cast<int>(i));
    expected.emplace(keys[i], static_cast<int>(i));
  }
  EXPECT_EQ(contents(map), expected);
}

// One hash for all keys: a single probe run of inline and arena keys, wrapping past the
// table's end (40 entries take 128 slots), erased from the middle, so that backward shifts
// move both kinds, and enough arena bytes die to compact the arena.
TEST(FlatStringMap, EraseShiftsMixedKeys) {
  constexpr std::uint64_t kSameHash = 120;
  Map map;
  std::map<std::string, int> expected;
  for (int i = 0; i < 40; ++i) {
    const std::string key = i % 2 ? "short-" + std::to_string(i)
                                  : "a-key-longer-than-sixteen-bytes-" + std::to_string(i);
    map.find_or_insert(key, kSameHash).value = i;
    expected.emplace(key, i);
  }
  for (int i = 0; i < 40; ++i) {
    if (i % 4 == 3) continue;
    const std::string key = i % 2 ? "short-" + std::to_string(i)
                                  : "a-key-longer-than-sixteen-bytes-" + std::to_string(i);
    const auto found = map.find_or_insert(key, kSameHash);
    ASSERT_FALSE(found.inserted);
    map.erase(found.slot);
    expected.erase(key);
  }
  EXPECT_EQ(map.size(), expected.size());
  EXPECT_EQ(contents(map), expected);
  for (const auto& [key, value] : expected) {
    const auto found = map.find_or_insert(key, kSameHash);
    EXPECT_FALSE(found.inserted) << key;
    EXPECT_EQ(found.value, value);
  }
}

TEST(FlatStringMap, ClearKeepsCapacityAndActsAsNew) {
  Map map;
  for (int i = 0; i < 1000; ++i) {
    const std::string key = (i % 2 ? "k" : "a-key-past-the-inline-limit-") + std::to_string(i);
    map.find_or_insert(key, hash_bytes(key)).value = i;
  }
  const std::size_t capacity = map.capacity();
  map.clear();
  EXPECT_EQ(map.size(), 0u);
  EXPECT_EQ(map.capacity(), capacity);
  EXPECT_TRUE(contents(map).empty());
  for (int i = 0; i < 1000; ++i) {
    const std::string key = (i % 3 ? "k" : "a-key-past-the-inline-limit-") + std::to_string(i);
    auto found = map.find_or_insert(key, hash_bytes(key));
    ASSERT_TRUE(found.inserted) << key;
    EXPECT_EQ(found.value, 0);
    found.value = -i;
  }
  EXPECT_EQ(map.capacity(), capacity);  // refilled without growing
  EXPECT_EQ(map.size(), 1000u);
  const std::string key = "k1";
  EXPECT_EQ(map.find_or_insert(key, hash_bytes(key)).value, -1);
}

// Slots keep 32 bits of a hash: a table past kMaxSlots is refused up front.
TEST(FlatStringMap, RefusesMoreThanMaxSlots) {
  Map map;
  EXPECT_THROW(map.reserve(Map::kMaxSlots / 2 + 1), std::bad_alloc);
  EXPECT_EQ(map.capacity(), 0u);
}

}  // namespace
