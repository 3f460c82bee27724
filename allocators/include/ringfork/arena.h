// SharedArena: lays out a segment by aligned bump allocation of long-lived shared objects
// (rings, queues, pool control blocks), and keeps a small directory of named roots so that a
// process attaching by fd or name can find them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <system_error>

#include "ringfork/offset.h"
#include "ringfork/segment.h"

namespace ringfork {

struct ArenaHeader {
  static constexpr std::uint64_t kMagic = 0x414e455241524652;  // "RFARENA"
  static constexpr std::uint32_t kVersion = 1;
  static constexpr int kMaxRoots = 32;
  static constexpr std::size_t kRootNameBytes = 48;

  struct Root {
    // 0 = empty, 1 = being written, 2 = published.
    std::atomic<std::uint32_t> state;
    std::uint32_t reserved;
    std::uint64_t offset;
    char name[kRootNameBytes];
  };

  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t header_bytes;
  alignas(64) std::atomic<std::uint64_t> top;  // next free byte offset in the segment
  alignas(64) Root roots[kMaxRoots];
};
static_assert(std::is_standard_layout_v<ArenaHeader>, "read by other processes");

// Thread- and process-safe: allocate() is a CAS on the shared top. Memory is never freed
// (objects live as long as the segment); short-lived blocks belong in the BlockPool.
// allocate() reports exhaustion as an error code, never SIGBUS; create/attach throw.
class SharedArena {
 public:
  // Lays a new arena over a fresh segment (right after the segment header).
  static SharedArena create(Segment& segment);
  // Finds the arena of a segment made by create(); throws std::invalid_argument if absent.
  static SharedArena attach(Segment& segment);

  // Returns the offset of `bytes` fresh zeroed bytes aligned to `alignment` (a power of two
  // <= 4096), or an error: ENOSPC when the segment's capacity is used up, ENOMEM/ENOSPC when
  // the kernel cannot commit memory.
  std::error_code allocate(std::size_t bytes, std::size_t alignment, std::uint64_t& offset) noexcept;

  // Like allocate(), but throws std::system_error naming what was being allocated.
  std::uint64_t allocate_or_throw(std::size_t bytes, std::size_t alignment, std::string_view what);

  // Publishes `offset` under `name` (<= 47 bytes); throws if the name exists or the directory
  // is full. find_root returns 0 when absent.
  void publish_root(std::string_view name, std::uint64_t offset);
  std::uint64_t find_root(std::string_view name) const noexcept;

  Segment& segment() const noexcept { return *segment_; }
  std::size_t used_bytes() const noexcept;

 private:
  SharedArena(Segment& segment, ArenaHeader* header) : segment_(&segment), header_(header) {}
  Segment* segment_;
  ArenaHeader* header_;
};

}  // namespace ringfork
