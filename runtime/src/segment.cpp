#include "ringfork/segment.h"

#include <fcntl.h>
#include <linux/memfd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <new>
#include <utility>
#include <vector>

namespace ringfork {
namespace {

constexpr std::size_t kGranule = std::size_t{2} << 20;  // 2 MiB: the huge page size
constexpr std::size_t kMaxCapacity = std::size_t{1} << 40;

std::system_error errno_error(int error, const std::string& what) {
  return std::system_error(error, std::generic_category(), what);
}

std::size_t round_up(std::size_t value, std::size_t granule) {
  return (value + granule - 1) / granule * granule;
}

int fallocate_retrying(int fd, off_t offset, off_t length) {
  for (;;) {
    if (::fallocate(fd, 0, offset, length) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

// Shared-memory THP is governed by its own knob; "advise" needs our madvise, "always" and
// "within_size" apply anyway, "never" and "deny" refuse.
bool shmem_thp_permitted() {
  std::ifstream policy("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  std::string text;
  std::getline(policy, text);
  return text.find("[always]") != std::string::npos ||
         text.find("[within_size]") != std::string::npos ||
         text.find("[advise]") != std::string::npos ||
         text.find("[force]") != std::string::npos;
}

std::atomic<std::uint64_t> unmap_generation{0};

bool pid_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

void validate_name(std::string_view name) {
  if (name.empty() || name.size() > 200) {
    throw std::invalid_argument("segment name must be 1..200 characters, got " +
                                std::to_string(name.size()));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      throw std::invalid_argument("segment name '" + std::string(name) +
                                  "' may use only letters, digits, '.', '_' and '-'");
    }
  }
}

std::string shm_object_name(std::string_view name) { return "/ringfork." + std::string(name); }

// Opens the file of a new segment with the given backing; returns -1 and sets errno if that
// backing is unavailable here.
int open_backing_file(Backing backing, const std::string& name) {
  if (backing == Backing::kTransparentHuge && !shmem_thp_permitted()) {
    errno = ENOTSUP;
    return -1;
  }
  if (!name.empty()) {
    return ::shm_open(shm_object_name(name).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  }
  unsigned flags = MFD_CLOEXEC;
  if (backing == Backing::kHugeTlb) flags |= MFD_HUGETLB | MFD_HUGE_2MB;
  return ::memfd_create("ringfork", flags);
}

// Reserves `bytes` of address space aligned to 2 MiB (so THP and hugetlb can map whole huge
// pages) and maps the file over it.
std::byte* map_aligned(int fd, std::size_t bytes) {
  void* reservation = ::mmap(nullptr, bytes + kGranule, PROT_NONE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reservation == MAP_FAILED) throw errno_error(errno, "reserving segment address space");
  auto* start = static_cast<std::byte*>(reservation);
  auto* aligned = reinterpret_cast<std::byte*>(
      round_up(reinterpret_cast<std::uintptr_t>(start), kGranule));
  void* mapped = ::mmap(aligned, bytes, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_FIXED | MAP_NORESERVE, fd, 0);
  if (mapped == MAP_FAILED) {
    const int error = errno;
    ::munmap(reservation, bytes + kGranule);
    throw errno_error(error, "mapping segment");
  }
  if (aligned > start) ::munmap(start, static_cast<std::size_t>(aligned - start));
  std::byte* tail = aligned + bytes;
  std::byte* reservation_end = start + bytes + kGranule;
  if (reservation_end > tail) ::munmap(tail, static_cast<std::size_t>(reservation_end - tail));
  return aligned;
}

}  // namespace

std::uint64_t segment_unmap_generation() noexcept {
  return unmap_generation.load(std::memory_order_acquire);
}

const char* to_string(Backing backing) noexcept {
  switch (backing) {
    case Backing::kHugeTlb:
      return "hugetlb-2MiB";
    case Backing::kTransparentHuge:
      return "thp";
    case Backing::kSmallPages:
      return "4KiB";
  }
  return "unknown";
}

std::string Segment::shm_path(std::string_view name) {
  return "/dev/shm" + shm_object_name(name);
}

Segment Segment::create(const SegmentOptions& options) {
  if (options.capacity < kGranule || options.capacity > kMaxCapacity) {
    throw std::invalid_argument("SegmentOptions.capacity must be between 2 MiB and 1 TiB, got " +
                                std::to_string(options.capacity));
  }
  if (!options.name.empty()) validate_name(options.name);
  if (!options.name.empty() && options.require_backing == Backing::kHugeTlb) {
    throw std::invalid_argument(
        "a named segment lives in /dev/shm (tmpfs) and cannot use hugetlb; leave "
        "SegmentOptions.name empty and pass the fd instead");
  }
  const std::size_t capacity = round_up(options.capacity, kGranule);

  std::vector<Backing> candidates;
  if (options.require_backing) {
    candidates.push_back(*options.require_backing);
  } else {
    if (options.name.empty()) candidates.push_back(Backing::kHugeTlb);
    candidates.push_back(Backing::kTransparentHuge);
    candidates.push_back(Backing::kSmallPages);
  }

  int last_error = 0;
  for (Backing backing : candidates) {
    const int fd = open_backing_file(backing, options.name);
    if (fd < 0) {
      last_error = errno;
      if (errno == EEXIST) {
        throw errno_error(errno, "segment name '" + options.name + "' is already in use");
      }
      continue;
    }
    // The header's granule must exist before anyone maps it: hugetlb without free pages
    // fails here (ENOSPC) rather than with SIGBUS on first touch.
    last_error = fallocate_retrying(fd, 0, static_cast<off_t>(kGranule));
    if (last_error != 0) {
      ::close(fd);
      if (!options.name.empty()) ::shm_unlink(shm_object_name(options.name).c_str());
      continue;
    }
    Segment segment;
    segment.fd_ = fd;
    segment.name_ = options.name;
    segment.capacity_ = capacity;
    segment.commit_granule_ = kGranule;
    segment.backing_ = backing;
    try {
      segment.base_ = map_aligned(fd, capacity);
    } catch (...) {
      if (!options.name.empty()) ::shm_unlink(shm_object_name(options.name).c_str());
      throw;
    }
    segment.mapped_bytes_ = capacity;
    if (backing == Backing::kTransparentHuge &&
        ::madvise(segment.base_, capacity, MADV_HUGEPAGE) != 0) {
      // The kernel policy allowed THP but this mapping refuses it: report what we really got.
      segment.backing_ = Backing::kSmallPages;
    }
    segment.verified_committed_.store(kGranule, std::memory_order_release);
    auto* header = new (segment.base_) SegmentHeader{};
    header->magic = SegmentHeader::kMagic;
    header->version = SegmentHeader::kVersion;
    header->header_bytes = sizeof(SegmentHeader);
    header->capacity = capacity;
    header->backing = static_cast<std::uint32_t>(segment.backing_);
    header->commit_granule_shift = 21;
    header->committed_hint.store(kGranule, std::memory_order_relaxed);
    if (!options.name.empty()) {
      header->named_users[0].store(::getpid(), std::memory_order_release);
    }
    return segment;
  }
  if (options.require_backing) {
    throw errno_error(last_error, std::string("segment backing ") +
                                      to_string(*options.require_backing) +
                                      " is unavailable here" +
                                      (*options.require_backing == Backing::kHugeTlb
                                           ? " (reserve pages: echo N > /proc/sys/vm/nr_hugepages)"
                                           : ""));
  }
  throw errno_error(last_error, "creating a shared-memory segment");
}

Segment Segment::attach_fd(int fd) {
  const int own_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own_fd < 0) throw errno_error(errno, "duplicating segment fd " + std::to_string(fd));
  Segment segment;
  segment.fd_ = own_fd;
  segment.map_and_validate(own_fd, false, "");
  return segment;
}

Segment Segment::attach_name(std::string_view name) {
  validate_name(name);
  const int fd = ::shm_open(shm_object_name(name).c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) throw errno_error(errno, "opening named segment '" + std::string(name) + "'");
  Segment segment;
  segment.fd_ = fd;
  segment.map_and_validate(fd, false, std::string(name));
  SegmentHeader& header = segment.header();
  const std::int32_t self = ::getpid();
  for (int attempt = 0; attempt < 2; ++attempt) {
    for (auto& slot : header.named_users) {
      std::int32_t seen = slot.load(std::memory_order_acquire);
      if (seen == 0 || (attempt == 1 && !pid_alive(seen))) {
        // acq_rel: the slot is a claim other detachers read before deciding to unlink.
        if (slot.compare_exchange_strong(seen, self, std::memory_order_acq_rel)) return segment;
      }
    }
  }
  throw errno_error(EUSERS, "named segment '" + std::string(name) + "' has " +
                                std::to_string(SegmentHeader::kMaxNamedUsers) + " live users");
}

void Segment::unlink(std::string_view name) {
  validate_name(name);
  if (::shm_unlink(shm_object_name(name).c_str()) != 0 && errno != ENOENT) {
    throw errno_error(errno, "unlinking named segment '" + std::string(name) + "'");
  }
}

void Segment::map_and_validate(int fd, bool created, std::string name) {
  (void)created;
  struct stat status {};
  if (::fstat(fd, &status) != 0) throw errno_error(errno, "fstat of segment fd");
  const auto file_bytes = static_cast<std::size_t>(status.st_size);
  if (file_bytes < kGranule || file_bytes % kGranule != 0) {
    throw std::invalid_argument("not a ringfork segment: file size " + std::to_string(file_bytes) +
                                " is not a positive multiple of 2 MiB");
  }
  // Read the header through a short read-only mapping (hugetlbfs files cannot be read()).
  void* probe = ::mmap(nullptr, kGranule, PROT_READ, MAP_SHARED, fd, 0);
  if (probe == MAP_FAILED) throw errno_error(errno, "mapping segment header");
  SegmentHeader copy;
  std::memcpy(static_cast<void*>(&copy), probe, sizeof(copy));
  ::munmap(probe, kGranule);
  if (copy.magic != SegmentHeader::kMagic) {
    throw std::invalid_argument("not a ringfork segment: bad magic");
  }
  if (copy.version != SegmentHeader::kVersion) {
    throw std::invalid_argument("segment version " + std::to_string(copy.version) +
                                " is not supported (this build reads version " +
                                std::to_string(SegmentHeader::kVersion) + ")");
  }
  if (copy.header_bytes != sizeof(SegmentHeader) || copy.capacity < file_bytes ||
      copy.capacity % kGranule != 0 || copy.capacity > kMaxCapacity ||
      copy.commit_granule_shift != 21) {
    throw std::invalid_argument("corrupt segment header: capacity " +
                                std::to_string(copy.capacity) + " for a file of " +
                                std::to_string(file_bytes) + " bytes");
  }
  if (copy.backing < 1 || copy.backing > 3) {
    throw std::invalid_argument("corrupt segment header: backing " + std::to_string(copy.backing));
  }
  base_ = map_aligned(fd, copy.capacity);
  mapped_bytes_ = copy.capacity;
  capacity_ = copy.capacity;
  backing_ = static_cast<Backing>(copy.backing);
  commit_granule_ = kGranule;
  name_ = std::move(name);
  if (backing_ == Backing::kTransparentHuge) ::madvise(base_, capacity_, MADV_HUGEPAGE);
  verified_committed_.store(file_bytes, std::memory_order_release);
}

std::error_code Segment::commit(std::size_t end) noexcept {
  if (end > capacity_) return std::make_error_code(std::errc::no_space_on_device);
  std::size_t verified = verified_committed_.load(std::memory_order_acquire);
  if (end <= verified) return {};
  const std::size_t target = round_up(end, commit_granule_);
  // fallocate is idempotent on allocated ranges, so racing committers in several processes
  // simply all succeed; the file size only grows.
  const int error = fallocate_retrying(fd_, static_cast<off_t>(verified),
                                       static_cast<off_t>(target - verified));
  if (error != 0) return {error, std::generic_category()};
  while (verified < target && !verified_committed_.compare_exchange_weak(
                                  verified, target, std::memory_order_acq_rel)) {
  }
  std::uint64_t hint = header().committed_hint.load(std::memory_order_relaxed);
  while (hint < target && !header().committed_hint.compare_exchange_weak(
                              hint, target, std::memory_order_relaxed)) {
  }
  return {};
}

bool Segment::refresh_committed() const noexcept {
  struct stat status {};
  if (::fstat(fd_, &status) != 0) return false;
  std::size_t file_bytes = static_cast<std::size_t>(status.st_size);
  if (file_bytes > capacity_) file_bytes = capacity_;
  std::size_t verified = verified_committed_.load(std::memory_order_acquire);
  while (verified < file_bytes && !verified_committed_.compare_exchange_weak(
                                      verified, file_bytes, std::memory_order_acq_rel)) {
  }
  return true;
}

void* Segment::try_bytes(std::uint64_t offset, std::size_t length,
                         std::size_t alignment) const noexcept {
  // Alignments are powers of two (as alignof gives), so a mask replaces a 64-bit division on
  // this path, which every handle attach and slot-chunk lookup takes.
  if (alignment != 0 && (!std::has_single_bit(alignment) || (offset & (alignment - 1)) != 0)) {
    return nullptr;
  }
  if (length > capacity_ || offset > capacity_ - length) return nullptr;
  if (offset + length > verified_committed_.load(std::memory_order_acquire)) {
    // Another process may have committed more since we last looked: ask the kernel, never
    // the (untrusted) header.
    refresh_committed();
    if (offset + length > verified_committed_.load(std::memory_order_acquire)) return nullptr;
  }
  return base_ + offset;
}

void Segment::populate(const void* address, std::size_t length) const noexcept {
#ifdef MADV_POPULATE_WRITE
  if (!contains(address, length)) return;
  // madvise wants a page-aligned start; the pages around the range are committed too (the
  // commit granule is at least a page).
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(address) & ~(page - 1);
  const auto end = reinterpret_cast<std::uintptr_t>(address) + length;
  (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
#else
  (void)address;
  (void)length;
#endif
}

bool Segment::contains(const void* address, std::size_t length) const noexcept {
  const auto* bytes = static_cast<const std::byte*>(address);
  return bytes >= base_ && length <= capacity_ &&
         static_cast<std::size_t>(bytes - base_) <= capacity_ - length;
}

std::string Segment::out_of_range_message(std::uint64_t offset, std::size_t length) const {
  return "offset " + std::to_string(offset) + " (+" + std::to_string(length) +
         " bytes) lies outside the segment's committed " + std::to_string(committed()) +
         " bytes";
}

Segment::Segment(Segment&& other) noexcept { *this = std::move(other); }

Segment& Segment::operator=(Segment&& other) noexcept {
  if (this == &other) return *this;
  release();
  fd_ = std::exchange(other.fd_, -1);
  base_ = std::exchange(other.base_, nullptr);
  capacity_ = std::exchange(other.capacity_, 0);
  mapped_bytes_ = std::exchange(other.mapped_bytes_, 0);
  backing_ = other.backing_;
  commit_granule_ = other.commit_granule_;
  name_ = std::move(other.name_);
  other.name_.clear();
  verified_committed_.store(other.verified_committed_.load(std::memory_order_acquire),
                            std::memory_order_release);
  return *this;
}

Segment::~Segment() { release(); }

void Segment::release() noexcept {
  if (base_ != nullptr && !name_.empty()) {
    SegmentHeader& shared = header();
    const std::int32_t self = ::getpid();
    bool anyone_alive = false;
    for (auto& slot : shared.named_users) {
      std::int32_t pid = slot.load(std::memory_order_acquire);
      if (pid == 0) continue;
      if (pid == self || !pid_alive(pid)) {
        slot.compare_exchange_strong(pid, 0, std::memory_order_acq_rel);
      } else {
        anyone_alive = true;
      }
    }
    if (!anyone_alive) ::shm_unlink(shm_object_name(name_).c_str());
  }
  if (base_ != nullptr) {
    // release: a cache that sees the new generation stops trusting its pointers first.
    unmap_generation.fetch_add(1, std::memory_order_release);
    ::munmap(base_, mapped_bytes_);
  }
  if (fd_ >= 0) ::close(fd_);
  base_ = nullptr;
  fd_ = -1;
}

}  // namespace ringfork
