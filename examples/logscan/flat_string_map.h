// FlatStringMap: an open-addressing hash map from byte strings to values, for the lookups
// a scan does once per record (a call's stats, a req_id's waiting partner). Keys are hashed
// with hash_bytes() (keyed_hash.h), keyed per process, since they come from untrusted logs.
//
// std::unordered_map<std::string, V> costs a node and, past 15 bytes, a string allocation
// per insert, and a pointer chase per lookup. Here slots sit in one array (linear probing,
// at most half full), and a key of up to 16 bytes (a call id and loggen's 12-byte req_ids)
// sits in its slot, so a lookup is a hash, a probe or two and a compare of two words, with
// no second cache miss. Longer keys are copied into one arena string. Erased arena keys
// leave dead bytes; once they outweigh the live ones (and the slots), the arena is rebuilt
// from the live keys.
//
// Limit: kMaxSlots slots (2^31 entries), since a slot keeps 32 bits of its key's hash.
//
// A plain value: one thread at a time. References to values are invalidated by any insert
// or erase. Throws only std::bad_alloc (also past kMaxSlots).
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "huge_page_allocator.h"
#include "keyed_hash.h"

namespace logscan {

template <class V>
class FlatStringMap {
 public:
  static constexpr std::size_t kInlineKeyBytes = ShortKey::kMaxBytes;  // longer: in the arena
  static constexpr std::size_t kMaxSlots = std::size_t{1} << 32;

  std::size_t size() const { return size_; }
  std::size_t capacity() const { return slots_.size(); }  // slots, twice the entries that fit

  struct Found {
    V& value;
    std::size_t slot;  // for erase()
    bool inserted;     // the key was absent: value is V{}
  };

  // The entry under `key`, whose hash_bytes() is `hash`; inserted if absent.
  Found find_or_insert(std::string_view key, std::uint64_t hash) {
    if (2 * (size_ + 1) > slots_.size()) rehash(std::max<std::size_t>(16, 2 * slots_.size()));
    const auto home = static_cast<std::uint32_t>(hash);
    const bool short_key = key.size() <= kInlineKeyBytes;
    const std::uint32_t form = short_key ? inline_form(key.size()) : kInArena;
    const ShortKey words = short_key ? ShortKey::pack(key) : ShortKey{};
    std::size_t i = home & mask();
    for (;; i = (i + 1) & mask()) {
      Slot& s = slots_[i];
      if (s.form == kEmpty) break;
      if (s.home == home && s.form == form && (short_key ? s.key == words : arena_key(s) == key)) {
        return {s.value, i, false};
      }
    }
    Slot& s = slots_[i];
    s.home = home;
    s.form = form;
    if (short_key) {
      s.key = words;
    } else {
      s.key = {arena_.size(), key.size()};
      arena_.append(key);
    }
    s.value = V{};
    ++size_;
    return {s.value, i, true};
  }

  // Asks the CPU to fetch the slot where a lookup of `hash` starts: a batch of lookups can
  // wait for their cache misses together rather than one after another.
  void prefetch(std::uint64_t hash) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[hash & mask()]);
  }

  // Makes room for `entries` in all without a rehash (e.g. before inserting many).
  void reserve(std::size_t entries) {
    if (entries > kMaxSlots / 2) throw std::bad_alloc();
    if (2 * entries > slots_.size()) rehash(std::max<std::size_t>(16, std::bit_ceil(2 * entries)));
  }

  // Removes every entry and keeps the slots and the arena's memory: refilling to the same
  // size then allocates and rehashes nothing.
  void clear() {
    std::fill(slots_.begin(), slots_.end(), Slot{});
    arena_.clear();
    size_ = 0;
    dead_bytes_ = 0;
  }

  // Removes the entry at `slot` (from find_or_insert, with no insert or erase since).
  void erase(std::size_t slot) {
    // Backward-shift deletion: later slots of the same probe run move up into the hole,
    // so lookups never need tombstones.
    std::size_t hole = slot;
    if (slots_[hole].form == kInArena) dead_bytes_ += slots_[hole].key.hi;
    for (std::size_t j = (hole + 1) & mask(); slots_[j].form != kEmpty; j = (j + 1) & mask()) {
      const std::size_t home = slots_[j].home & mask();
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
      if (s.form != kEmpty) f(key_of(s), s.value);
    }
  }
  template <class F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_) {
      if (s.form != kEmpty) f(key_of(s), s.value);
    }
  }

 private:
  // Slot::form: empty, a key of 0..16 bytes inline (1 + its size), or a key in the arena.
  static constexpr std::uint32_t kEmpty = 0;
  static constexpr std::uint32_t kInArena = kInlineKeyBytes + 2;
  static constexpr std::uint32_t inline_form(std::size_t size) {
    return static_cast<std::uint32_t>(1 + size);
  }

  struct Slot {
    std::uint32_t home = 0;  // the hash's low 32 bits, where its probe run starts
    std::uint32_t form = kEmpty;
    ShortKey key;  // inline: the key's bytes; in the arena: {offset, size}
    V value{};
  };

  std::size_t mask() const { return slots_.size() - 1; }
  std::string_view arena_key(const Slot& s) const {
    return std::string_view(arena_).substr(s.key.lo, s.key.hi);
  }
  std::string_view key_of(const Slot& s) const {
    if (s.form == kInArena) return arena_key(s);
    return std::string_view(reinterpret_cast<const char*>(&s.key), s.form - 1);
  }

  void compact_arena() {
    std::string live;
    live.reserve(arena_.size() - dead_bytes_);
    for (Slot& s : slots_) {
      if (s.form != kInArena) continue;
      const std::size_t offset = live.size();
      live.append(arena_key(s));
      s.key.lo = offset;
    }
    arena_.swap(live);
    dead_bytes_ = 0;
  }

  // Moves every entry into `capacity` slots (a power of two) and an arena of live keys.
  void rehash(std::size_t capacity) {
    if (capacity > kMaxSlots) throw std::bad_alloc();
    SlotVector old_slots(capacity);
    old_slots.swap(slots_);
    std::string old_arena;
    old_arena.swap(arena_);
    arena_.reserve(old_arena.size() - dead_bytes_);
    dead_bytes_ = 0;
    for (Slot& s : old_slots) {
      if (s.form == kEmpty) continue;
      std::size_t i = s.home & mask();
      while (slots_[i].form != kEmpty) i = (i + 1) & mask();
      if (s.form == kInArena) {
        const std::string_view key = std::string_view(old_arena).substr(s.key.lo, s.key.hi);
        s.key.lo = arena_.size();
        arena_.append(key);
      }
      slots_[i] = std::move(s);
    }
  }

  // A table of a million records is tens of MB: in huge pages, its growth costs a few page
  // faults instead of thousands.
  using SlotVector = std::vector<Slot, HugePageAllocator<Slot>>;
  SlotVector slots_;   // size 0 or a power of two
  std::string arena_;  // the keys longer than kInlineKeyBytes, back to back
  std::size_t size_ = 0;
  std::size_t dead_bytes_ = 0;  // arena bytes of erased keys
};

}  // namespace logscan
