// FlatStringMap: an open-addressing hash map from byte strings to values, for the lookups
// a scan does once per record (a call's stats, a req_id's waiting partner).
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

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace logscan {

// A 64-bit hash of `bytes`, 8 bytes a step; never 0 (FlatStringMap's mark of an empty
// slot). Not keyed: the inputs are logs, not an adversary choosing collisions.
inline std::uint64_t hash_bytes(std::string_view bytes) noexcept {
  constexpr std::uint64_t kMul = 0x9E3779B97F4A7C15;
  const auto load = [](const char* p, auto width) {
    decltype(width) word;
    std::memcpy(&word, p, sizeof word);
    return static_cast<std::uint64_t>(word);
  };
  const char* p = bytes.data();
  const std::size_t size = bytes.size();
  std::uint64_t h = size * kMul;
  std::size_t n = size;
  for (; n > 8; p += 8, n -= 8) h = std::rotl((h ^ load(p, std::uint64_t{})) * kMul, 31);
  // The last 1..8 bytes in fixed-size loads (overlapping what came before when the key is
  // long enough): a memcpy of a variable length would be a library call.
  std::uint64_t tail = 0;
  if (size >= 8) {
    tail = load(bytes.data() + size - 8, std::uint64_t{});
  } else if (n >= 4) {
    tail = load(p, std::uint32_t{}) | load(p + n - 4, std::uint32_t{}) << 32;
  } else if (n > 0) {
    tail = static_cast<unsigned char>(p[0]) | static_cast<unsigned char>(p[n / 2]) << 8 |
           static_cast<unsigned char>(p[n - 1]) << 16;
  }
  h = std::rotl((h ^ tail) * kMul, 31);
  // murmur3's finaliser: every input bit reaches the low bits the table indexes by.
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCD;
  h ^= h >> 33;
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
    std::vector<Slot> old_slots(capacity);
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

  std::vector<Slot> slots_;  // size 0 or a power of two
  std::string arena_;        // the keys, back to back
  std::size_t size_ = 0;
  std::size_t dead_bytes_ = 0;  // arena bytes of erased keys
};

}  // namespace logscan
