#include "ringfork/arena.h"

#include <cstring>
#include <new>
#include <string>

namespace ringfork {
namespace {

constexpr std::uint64_t kArenaOffset = Segment::kDataOffset;

std::uint64_t align_up(std::uint64_t value, std::uint64_t alignment) {
  return (value + alignment - 1) & ~(alignment - 1);
}

}  // namespace

SharedArena SharedArena::create(Segment& segment) {
  auto* header = segment.try_at(Offset<ArenaHeader>{kArenaOffset});
  if (header == nullptr) {
    throw std::invalid_argument("segment too small to hold an arena header");
  }
  auto* arena = new (header) ArenaHeader{};
  arena->magic = ArenaHeader::kMagic;
  arena->version = ArenaHeader::kVersion;
  arena->header_bytes = sizeof(ArenaHeader);
  // release: a process that attaches and reads `top` sees the initialised header.
  arena->top.store(align_up(kArenaOffset + sizeof(ArenaHeader), 4096), std::memory_order_release);
  return SharedArena(segment, arena);
}

SharedArena SharedArena::attach(Segment& segment) {
  auto* header = segment.try_at(Offset<ArenaHeader>{kArenaOffset});
  if (header == nullptr || header->magic != ArenaHeader::kMagic) {
    throw std::invalid_argument("segment holds no ringfork arena (bad magic)");
  }
  if (header->version != ArenaHeader::kVersion || header->header_bytes != sizeof(ArenaHeader)) {
    throw std::invalid_argument("arena version " + std::to_string(header->version) +
                                " is not supported by this build");
  }
  return SharedArena(segment, header);
}

std::error_code SharedArena::allocate(std::size_t bytes, std::size_t alignment,
                                      std::uint64_t& offset) noexcept {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > 4096) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  const std::size_t capacity = segment_->capacity();
  // relaxed: `top` only hands out address ranges; the memory's contents are published by
  // whoever stores the resulting offset (with release).
  std::uint64_t top = header_->top.load(std::memory_order_relaxed);
  for (;;) {
    // An untrusted `top` beyond capacity reads as "full", never as a wild offset.
    if (top > capacity) return std::make_error_code(std::errc::no_space_on_device);
    const std::uint64_t start = align_up(top, alignment);
    if (bytes > capacity || start > capacity - bytes) {
      return std::make_error_code(std::errc::no_space_on_device);
    }
    const std::uint64_t end = start + bytes;
    // Commit before claiming: a failed commit then leaves `top` untouched.
    if (std::error_code error = segment_->commit(end)) return error;
    if (header_->top.compare_exchange_weak(top, end, std::memory_order_relaxed)) {
      offset = start;
      return {};
    }
  }
}

std::uint64_t SharedArena::allocate_or_throw(std::size_t bytes, std::size_t alignment,
                                             std::string_view what) {
  std::uint64_t offset = 0;
  if (std::error_code error = allocate(bytes, alignment, offset)) {
    // A hugetlb segment runs out of reserved huge pages long before its capacity: say which
    // limit was hit, or the advice would be to raise a capacity that is not the problem.
    const bool huge_pages_ran_out =
        segment_->backing() == Backing::kHugeTlb &&
        (error == std::errc::no_space_on_device || error == std::errc::not_enough_memory);
    throw std::system_error(
        error, "allocating " + std::to_string(bytes) + " bytes for " + std::string(what) +
                   " in a segment of " + std::to_string(segment_->capacity()) + " bytes (" +
                   (huge_pages_ran_out
                        ? "the reserved huge pages ran out: raise /proc/sys/vm/nr_hugepages, "
                          "or make the segment with SegmentOptions.require_backing of "
                          "transparent huge or small pages"
                        : "raise SegmentOptions.capacity") +
                   ")");
  }
  return offset;
}

void SharedArena::publish_root(std::string_view name, std::uint64_t offset) {
  if (name.empty() || name.size() >= ArenaHeader::kRootNameBytes) {
    throw std::invalid_argument("root name must be 1..47 bytes: '" + std::string(name) + "'");
  }
  if (find_root(name) != 0) {
    throw std::invalid_argument("root '" + std::string(name) + "' is already published");
  }
  for (auto& root : header_->roots) {
    std::uint32_t expected = 0;
    if (!root.state.compare_exchange_strong(expected, 1, std::memory_order_acquire)) continue;
    root.offset = offset;
    std::memset(root.name, 0, sizeof(root.name));
    std::memcpy(root.name, name.data(), name.size());
    // release: readers that see state 2 see the name and offset.
    root.state.store(2, std::memory_order_release);
    return;
  }
  throw std::length_error("arena root directory is full (" +
                          std::to_string(ArenaHeader::kMaxRoots) + " entries)");
}

std::uint64_t SharedArena::find_root(std::string_view name) const noexcept {
  for (const auto& root : header_->roots) {
    if (root.state.load(std::memory_order_acquire) != 2) continue;
    const std::size_t length = strnlen(root.name, sizeof(root.name));
    if (std::string_view(root.name, length) == name) return root.offset;
  }
  return 0;
}

std::size_t SharedArena::used_bytes() const noexcept {
  return header_->top.load(std::memory_order_relaxed);
}

}  // namespace ringfork
