// FlatStringMap: an open-addressing hash map from byte strings to values, for the lookups
// a scan does once per record (a call's stats, a req_id's waiting partner). Keys are hashed
// with hash_bytes(), keyed per process, since they come from untrusted logs.
//
// std::unordered_map<std::string, V> costs a node and, past 15 bytes, a string allocation
// per insert, and a pointer chase per lookup. Here keys are copied into one arena string
// and slots sit in one array (linear probing, at most half full), so a lookup is a hash,
// a probe or two and one compare, and inserts allocate only while the arrays grow. Erased
// keys leave dead bytes in the arena; once they outweigh the live ones (and the slots),
// the arena is rebuilt from the live keys.
//
// A plain value: one thread at a time. References to values are invalidated by any insert
// or erase. Throws only std::bad_alloc.
#pragma once

#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "huge_page_allocator.h"

namespace logscan {

// The secret of hash_bytes(): 128 bits, as SipHash takes.
struct HashKey {
  std::uint64_t k0 = 0;
  std::uint64_t k1 = 0;
};

// SipHash with `C` compression and `D` finalisation rounds (Aumasson and Bernstein), 8 bytes
// a step. hash_bytes() uses SipHash-1-3 (Rust's HashMap default); 2-4 is the paper's
// reference variant, for its test vector.
template <int C, int D>
std::uint64_t siphash(std::string_view bytes, const HashKey& key) noexcept {
  std::uint64_t v0 = key.k0 ^ 0x736f6d6570736575, v1 = key.k1 ^ 0x646f72616e646f6d;
  std::uint64_t v2 = key.k0 ^ 0x6c7967656e657261, v3 = key.k1 ^ 0x7465646279746573;
  const auto round = [&] {
    v0 += v1;
    v1 = std::rotl(v1, 13) ^ v0;
    v0 = std::rotl(v0, 32);
    v2 += v3;
    v3 = std::rotl(v3, 16) ^ v2;
    v0 += v3;
    v3 = std::rotl(v3, 21) ^ v0;
    v2 += v1;
    v1 = std::rotl(v1, 17) ^ v2;
    v2 = std::rotl(v2, 32);
  };
  const auto compress = [&](std::uint64_t m) {
    v3 ^= m;
    for (int i = 0; i < C; ++i) round();
    v0 ^= m;
  };
  const auto load = [](const char* p, auto width) {
    decltype(width) word;
    std::memcpy(&word, p, sizeof word);
    return static_cast<std::uint64_t>(word);
  };
  const char* p = bytes.data();
  const std::size_t size = bytes.size();
  std::size_t n = size;
  for (; n >= 8; p += 8, n -= 8) compress(load(p, std::uint64_t{}));
  // The last 0..7 bytes as a little-endian word, in fixed-size loads (overlapping each other
  // where n is not 4 or 1..3 apart): a memcpy of a variable length would be a library call.
  std::uint64_t tail = 0;
  if (n >= 4) {
    tail = load(p, std::uint32_t{}) | load(p + n - 4, std::uint32_t{}) << (8 * (n - 4));
  } else if (n > 0) {
    tail = std::uint64_t{static_cast<unsigned char>(p[0])} |
           std::uint64_t{static_cast<unsigned char>(p[n / 2])} << (8 * (n / 2)) |
           std::uint64_t{static_cast<unsigned char>(p[n - 1])} << (8 * (n - 1));
  }
  compress(tail | std::uint64_t{size} << 56);
  v2 ^= 0xff;
  for (int i = 0; i < D; ++i) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

// This process's key, drawn from getrandom(2) on first use. Hashes never leave the process
// (decode() hashes keys again), so each process may have its own.
inline const HashKey& process_hash_key() noexcept {
  static const HashKey key = [] {
    HashKey k;
    std::byte* out = reinterpret_cast<std::byte*>(&k);
    std::size_t got = 0;
    while (got < sizeof k) {
      const ssize_t n = ::getrandom(out + got, sizeof k - got, 0);
      if (n > 0) {
        got += static_cast<std::size_t>(n);
      } else if (errno != EINTR) {
        break;
      }
    }
    if (got < sizeof k) {
      // No getrandom (a seccomp filter, an old kernel): clock, pid and addresses, which an
      // attacker without access to the machine cannot predict either.
      const auto now =
          static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
      k.k0 ^= now ^ reinterpret_cast<std::uintptr_t>(&k);
      k.k1 ^= static_cast<std::uint64_t>(::getpid()) << 32 ^
              reinterpret_cast<std::uintptr_t>(&process_hash_key);
    }
    return k;
  }();
  return key;
}

// A 64-bit hash of `bytes`; never 0 (FlatStringMap's mark of an empty slot). Keyed with a
// secret drawn per process: req_ids and call names come from the logs, and an unkeyed hash
// would let a crafted log send every req_id to one probe run (quadratic scanning). SipHash
// gives no way to find collisions without the key.
inline std::uint64_t hash_bytes(std::string_view bytes,
                                const HashKey& key = process_hash_key()) noexcept {
  const std::uint64_t h = siphash<1, 3>(bytes, key);
  return h ? h : 1;
}

template <class V>
class FlatStringMap {
 public:
  std::size_t size() const { return size_; }

  struct Found {
    V& value;
    std::size_t slot;  // for erase()
    bool inserted;     // the key was absent: value is V{}
  };

  // The entry under `key`, whose hash_bytes() is `hash`; inserted if absent.
  Found find_or_insert(std::string_view key, std::uint64_t hash) {
    if (2 * (size_ + 1) > slots_.size()) rehash(std::max<std::size_t>(16, 2 * slots_.size()));
    std::size_t i = hash & mask();
    for (;; i = (i + 1) & mask()) {
      Slot& s = slots_[i];
      if (s.hash == 0) break;
      if (s.hash == hash && key_of(s) == key) return {s.value, i, false};
    }
    Slot& s = slots_[i];
    s.hash = hash;
    s.key_offset = arena_.size();
    s.key_size = key.size();
    s.value = V{};
    arena_.append(key);
    ++size_;
    return {s.value, i, true};
  }

  // Makes room for `entries` in all without a rehash (e.g. before inserting many).
  void reserve(std::size_t entries) {
    if (2 * entries > slots_.size()) rehash(std::max<std::size_t>(16, std::bit_ceil(2 * entries)));
  }

  // Removes the entry at `slot` (from find_or_insert, with no insert or erase since).
  void erase(std::size_t slot) {
    // Backward-shift deletion: later slots of the same probe run move up into the hole,
    // so lookups never need tombstones.
    std::size_t hole = slot;
    dead_bytes_ += slots_[hole].key_size;
    for (std::size_t j = (hole + 1) & mask(); slots_[j].hash != 0; j = (j + 1) & mask()) {
      const std::size_t home = slots_[j].hash & mask();
      // Slot j may fill the hole unless its home lies in (hole, j], cyclically.
      const bool home_after_hole =
          hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
      if (!home_after_hole) {
        slots_[hole] = std::move(slots_[j]);
        hole = j;
      }
    }
    slots_[hole] = Slot{};
    --size_;
    // Compacting walks every slot, so wait for at least a byte per slot to be dead: the
    // walk then costs O(1) per erase however empty the table has become.
    if (dead_bytes_ > arena_.size() / 2 && dead_bytes_ >= slots_.size()) compact_arena();
  }

  // Calls f(key, value) for every entry, in no particular order.
  template <class F>
  void for_each(F&& f) {
    for (Slot& s : slots_) {
      if (s.hash != 0) f(key_of(s), s.value);
    }
  }
  template <class F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_) {
      if (s.hash != 0) f(key_of(s), s.value);
    }
  }

 private:
  struct Slot {
    std::uint64_t hash = 0;  // 0: empty
    std::size_t key_offset = 0;
    std::size_t key_size = 0;
    V value{};
  };

  std::size_t mask() const { return slots_.size() - 1; }
  std::string_view key_of(const Slot& s) const {
    return std::string_view(arena_).substr(s.key_offset, s.key_size);
  }

  void compact_arena() {
    std::string live;
    live.reserve(arena_.size() - dead_bytes_);
    for (Slot& s : slots_) {
      if (s.hash == 0) continue;
      const std::size_t offset = live.size();
      live.append(key_of(s));
      s.key_offset = offset;
    }
    arena_.swap(live);
    dead_bytes_ = 0;
  }

  // Moves every entry into `capacity` slots (a power of two) and an arena of live keys.
  void rehash(std::size_t capacity) {
    SlotVector old_slots(capacity);
    old_slots.swap(slots_);
    std::string old_arena;
    old_arena.swap(arena_);
    arena_.reserve(old_arena.size() - dead_bytes_);
    dead_bytes_ = 0;
    for (Slot& s : old_slots) {
      if (s.hash == 0) continue;
      std::size_t i = s.hash & mask();
      while (slots_[i].hash != 0) i = (i + 1) & mask();
      const std::string_view key = std::string_view(old_arena).substr(s.key_offset, s.key_size);
      s.key_offset = arena_.size();
      arena_.append(key);
      slots_[i] = std::move(s);
    }
  }

  // A table of a million records is tens of MB: in huge pages, its growth costs a few page
  // faults instead of thousands.
  using SlotVector = std::vector<Slot, HugePageAllocator<Slot>>;
  SlotVector slots_;   // size 0 or a power of two
  std::string arena_;  // the keys, back to back
  std::size_t size_ = 0;
  std::size_t dead_bytes_ = 0;  // arena bytes of erased keys
};

}  // namespace logscan
