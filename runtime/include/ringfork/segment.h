// Segment: a shared-memory region, backed by a memfd (or a named /dev/shm file), that every
// other ringfork structure lives in.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include "ringfork/offset.h"

namespace ringfork {

enum class Backing : std::uint32_t {
  kHugeTlb = 1,          // explicit 2 MiB huge pages (needs /proc/sys/vm/nr_hugepages > 0)
  kTransparentHuge = 2,  // shmem THP via madvise (needs shmem_enabled != never/deny)
  kSmallPages = 3,       // plain 4 KiB pages
};
const char* to_string(Backing backing) noexcept;

struct SegmentOptions {
  // Address space reserved up front; memory is committed (fallocate) only as it is used.
  std::size_t capacity = std::size_t{1} << 30;
  // Backing to insist on: creation fails with std::system_error if it cannot be had.
  // Without it, hugetlb -> THP -> 4 KiB are tried in order and backing() says which won.
  std::optional<Backing> require_backing;
  // Empty: anonymous memfd, shared with children by fork or with others by passing the fd.
  // Otherwise a name under /dev/shm (mode 0600) that unrelated processes may attach to; it
  // is removed when the last live user detaches. Named segments cannot use hugetlb.
  std::string name;
};

// Layout of the first bytes of every segment; checked by every attach.
struct SegmentHeader {
  static constexpr std::uint64_t kMagic = 0x4b524f46474e4952;  // "RINGFORK", little-endian
  static constexpr std::uint32_t kVersion = 1;
  static constexpr int kMaxNamedUsers = 64;

  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t header_bytes;
  std::uint64_t capacity;
  std::uint32_t backing;
  std::uint32_t commit_granule_shift;
  // A hint of how much is committed; each process trusts only its own fstat of the file.
  alignas(64) std::atomic<std::uint64_t> committed_hint;
  // Named segments: pids of the live users, 0 = free. Dead pids are swept on detach.
  alignas(64) std::atomic<std::int32_t> named_users[kMaxNamedUsers];
};
static_assert(std::is_standard_layout_v<SegmentHeader>, "read by other processes");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared atomics must be lock-free");

// Counts segment unmappings in this process, so caches of pointers into segments (such as
// the per-thread claim records) can tell that one may have gone.
std::uint64_t segment_unmap_generation() noexcept;

// Thread-safety: a Segment object may be used from many threads; commit() is thread- and
// process-safe. Move-only; the destructor unmaps and closes (and for a named segment whose
// last live user this was, removes the name). A forked child inherits the mapping at the
// same address and may use the parent's Segment object as is.
// Throws std::system_error (errno) on set-up failures, std::invalid_argument on bad options
// or a header that fails validation.
class Segment {
 public:
  static Segment create(const SegmentOptions& options = {});
  // Attaches the segment behind `fd` (the fd is duplicated; the caller keeps its own).
  static Segment attach_fd(int fd);
  static Segment attach_name(std::string_view name);
  // Removes a named segment's name now; attached users keep their mappings.
  static void unlink(std::string_view name);
  // The /dev/shm path a named segment uses (for tests and diagnostics).
  static std::string shm_path(std::string_view name);

  Segment(Segment&& other) noexcept;
  Segment& operator=(Segment&& other) noexcept;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  Backing backing() const noexcept { return backing_; }
  std::size_t capacity() const noexcept { return capacity_; }
  int fd() const noexcept { return fd_; }
  std::byte* base() const noexcept { return base_; }
  const std::string& name() const noexcept { return name_; }
  SegmentHeader& header() const noexcept { return *reinterpret_cast<SegmentHeader*>(base_); }
  // First byte after the header page; where the arena lays out shared objects.
  static constexpr std::size_t kDataOffset = 4096;

  // Makes bytes [0, end) usable. Never throws and never SIGBUSes later: running out of
  // memory or huge pages is an error here (ENOSPC/ENOMEM), exceeding capacity is ENOSPC.
  std::error_code commit(std::size_t end) noexcept;
  // Bytes committed as far as this process has verified (fstat), always <= capacity.
  std::size_t committed() const noexcept {
    return verified_committed_.load(std::memory_order_acquire);
  }

  // Bounds- and alignment-checked access to `count` objects at `offset`. try_at returns
  // nullptr for an offset that does not lie wholly inside committed memory; at() throws
  // std::out_of_range. Use these for every offset read from shared memory.
  template <class T>
  T* try_at(Offset<T> offset, std::size_t count = 1) const noexcept {
    // A count read from shared memory may be anything: count * sizeof(T) must not wrap to a
    // small size that passes the bounds check.
    if (count > std::numeric_limits<std::size_t>::max() / sizeof(T)) return nullptr;
    return static_cast<T*>(try_bytes(offset.value, count * sizeof(T), alignof(T)));
  }
  template <class T>
  T* at(Offset<T> offset, std::size_t count = 1) const {
    T* object = try_at(offset, count);
    if (object == nullptr) throw std::out_of_range(out_of_range_message(offset.value, sizeof(T)));
    return object;
  }
  void* try_bytes(std::uint64_t offset, std::size_t length, std::size_t alignment) const noexcept;
  template <class T>
  Offset<T> offset_of(const T* object) const noexcept {
    return Offset<T>{static_cast<std::uint64_t>(reinterpret_cast<const std::byte*>(object) - base_)};
  }
  bool contains(const void* address, std::size_t length) const noexcept;
  // Maps the committed pages under [address, address + length) into this process's page
  // tables in one system call (MADV_POPULATE_WRITE), instead of one page fault per 4 KiB page
  // on first touch: for memory this process is about to stream through, such as a ring's new
  // slot chunk. Best effort: a kernel without it (before 5.14) leaves the pages to fault in.
  void populate(const void* address, std::size_t length) const noexcept;

 private:
  Segment() = default;
  void map_and_validate(int fd, bool created, std::string name);
  bool refresh_committed() const noexcept;
  void release() noexcept;
  std::string out_of_range_message(std::uint64_t offset, std::size_t length) const;

  int fd_ = -1;
  std::byte* base_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t mapped_bytes_ = 0;
  Backing backing_ = Backing::kSmallPages;
  std::size_t commit_granule_ = 0;
  std::string name_;
  mutable std::atomic<std::size_t> verified_committed_{0};
};

}  // namespace ringfork
