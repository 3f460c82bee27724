// Offsets into a segment: how shared structures refer to each other.
#pragma once

#include <cstdint>
#include <type_traits>

namespace ringfork {

// A segment may be mapped at a different address in every process, so shared memory holds
// offsets from the segment's base, never pointers. Offset<T> carries the pointee type so
// that Segment::at<T>() can bounds- and alignment-check it before handing out a pointer.
// Zero is "null": offset 0 is the segment header, which no shared object aliases.
template <class T>
struct Offset {
  std::uint64_t value = 0;

  constexpr bool is_null() const noexcept { return value == 0; }
  constexpr explicit operator bool() const noexcept { return value != 0; }
  friend constexpr bool operator==(Offset, Offset) = default;
};

static_assert(std::is_trivially_copyable_v<Offset<int>> && sizeof(Offset<int>) == 8,
              "offsets are stored in shared memory");

}  // namespace ringfork
