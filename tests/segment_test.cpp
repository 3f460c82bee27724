// Segment: creation and backing fallback, attach by fork/fd/name, header validation,
// commit-on-use exhaustion, bounds-checked offsets, and /dev/shm hygiene after SIGKILL.
#include "ringfork/segment.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "ringfork/arena.h"
#include "ringfork/fd_passing.h"
#include "test_support.h"

namespace ringfork {
namespace {

using testing::expect_clean_exit;
using testing::fork_child;
using testing::wait_child;

constexpr std::size_t kMiB = std::size_t{1} << 20;

long read_long(const char* path) {
  std::ifstream in(path);
  long value = -1;
  in >> value;
  return value;
}

bool write_long(const char* path, long value) {
  std::ofstream out(path);
  out << value;
  out.flush();
  return static_cast<bool>(out);
}

constexpr const char* kNrHugepages = "/proc/sys/vm/nr_hugepages";
constexpr const char* kFreeHugepages = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";

// Reserves huge pages for one test and restores the machine's setting afterwards.
class HugePageReservation {
 public:
  explicit HugePageReservation(long pages) : original_(read_long(kNrHugepages)) {
    if (original_ >= 0) write_long(kNrHugepages, pages);
  }
  ~HugePageReservation() {
    if (original_ >= 0) write_long(kNrHugepages, original_);
  }
  long free_pages() const { return read_long(kFreeHugepages); }
  // Why a test needing `pages` free huge pages cannot run here, or "" when it can.
  std::string why_fewer_than(long pages) const {
    if (::geteuid() != 0) return "SKIPPED LOUDLY: reserving huge pages needs root";
    if (free_pages() >= pages) return "";
    return "SKIPPED LOUDLY: the kernel granted only " + std::to_string(free_pages()) +
           " free 2 MiB pages";
  }

 private:
  long original_;
};

std::string unique_name(const char* stem) {
  return std::string(stem) + "-" + std::to_string(::getpid());
}

TEST(Segment, CreateReportsTheBackingItObtained) {
  Segment segment = Segment::create({.capacity = 64 * kMiB});
  const Backing backing = segment.backing();
  if (read_long(kFreeHugepages) <= 0) {
    EXPECT_NE(backing, Backing::kHugeTlb) << "hugetlb reported without free huge pages";
  }
  EXPECT_EQ(segment.header().backing, static_cast<std::uint32_t>(backing));
  EXPECT_EQ(segment.capacity(), 64 * kMiB);
  std::printf("[ info ] default backing on this machine: %s\n", to_string(backing));
}

TEST(Segment, ForcedSmallPagesFallbackWorks) {
  Segment segment = Segment::create({.capacity = 8 * kMiB, .require_backing = Backing::kSmallPages});
  EXPECT_EQ(segment.backing(), Backing::kSmallPages);
  ASSERT_FALSE(segment.commit(8 * kMiB));
  std::memset(segment.base() + Segment::kDataOffset, 0xab, 8 * kMiB - Segment::kDataOffset);
  EXPECT_EQ(static_cast<unsigned char>(segment.base()[8 * kMiB - 1]), 0xab);
}

TEST(Segment, RequiredThpFollowsKernelPolicy) {
  std::ifstream policy_file("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  std::string policy;
  std::getline(policy_file, policy);
  const bool permitted = policy.find("[never]") == std::string::npos &&
                         policy.find("[deny]") == std::string::npos && !policy.empty();
  if (permitted) {
    Segment segment =
        Segment::create({.capacity = 8 * kMiB, .require_backing = Backing::kTransparentHuge});
    EXPECT_EQ(segment.backing(), Backing::kTransparentHuge);
  } else {
    EXPECT_THROW(
        Segment::create({.capacity = 8 * kMiB, .require_backing = Backing::kTransparentHuge}),
        std::system_error)
        << "shmem THP policy is '" << policy << "'";
  }
}

TEST(Segment, HugeTlbBackingWhenPagesAreReserved) {
  HugePageReservation reservation(8);
  if (const std::string why = reservation.why_fewer_than(4); !why.empty()) GTEST_SKIP() << why;
  {
    Segment segment = Segment::create({.capacity = 64 * kMiB});
    EXPECT_EQ(segment.backing(), Backing::kHugeTlb) << "default must prefer hugetlb";
  }
  Segment segment = Segment::create({.capacity = 64 * kMiB, .require_backing = Backing::kHugeTlb});
  ASSERT_EQ(segment.backing(), Backing::kHugeTlb);
  // Commit 2 MiB at a time and touch each page: the pool holds 8 pages and the segment 32,
  // so a commit must fail (an error, never a SIGBUS at first touch) before capacity.
  std::error_code exhausted;
  std::size_t committed = 2 * kMiB;
  while (committed < 64 * kMiB) {
    exhausted = segment.commit(committed + 2 * kMiB);
    if (exhausted) break;
    std::memset(segment.base() + committed, 0x5a, 2 * kMiB);
    committed += 2 * kMiB;
  }
  EXPECT_TRUE(exhausted) << "committing past the reserved huge pages must fail";
  EXPECT_TRUE(exhausted == std::errc::no_space_on_device ||
              exhausted == std::errc::not_enough_memory)
      << exhausted.message();
  EXPECT_LE(committed, 16 * kMiB + 2 * kMiB) << "more huge pages than were reserved";
}

// An arena on hugetlb runs out of reserved huge pages long before the segment's capacity:
// the error says so, instead of advising a larger capacity.
TEST(Segment, ArenaThatRunsOutOfHugePagesSaysSo) {
  HugePageReservation reservation(4);
  if (const std::string why = reservation.why_fewer_than(2); !why.empty()) GTEST_SKIP() << why;
  Segment segment = Segment::create({.capacity = 64 * kMiB, .require_backing = Backing::kHugeTlb});
  SharedArena arena = SharedArena::create(segment);
  try {
    arena.allocate_or_throw(32 * kMiB, 64, "a test block");
    ADD_FAILURE() << "32 MiB allocated from 4 reserved huge pages";
  } catch (const std::system_error& error) {
    const std::string what = error.what();
    EXPECT_NE(what.find("nr_hugepages"), std::string::npos) << what;
    EXPECT_EQ(what.find("raise SegmentOptions.capacity"), std::string::npos) << what;
  }
}

TEST(Segment, RequiredHugeTlbWithoutPagesThrows) {
  if (::geteuid() != 0) GTEST_SKIP() << "SKIPPED LOUDLY: emptying the huge page pool needs root";
  HugePageReservation reservation(0);
  if (reservation.free_pages() != 0) GTEST_SKIP() << "SKIPPED LOUDLY: huge pages still in use";
  try {
    Segment::create({.capacity = 8 * kMiB, .require_backing = Backing::kHugeTlb});
    ADD_FAILURE() << "expected std::system_error";
  } catch (const std::system_error& error) {
    EXPECT_NE(std::string(error.what()).find("nr_hugepages"), std::string::npos) << error.what();
  }
  // Without the demand, creation quietly falls back and says so.
  Segment fallback = Segment::create({.capacity = 8 * kMiB});
  EXPECT_NE(fallback.backing(), Backing::kHugeTlb);
}

TEST(Segment, CommitBeyondCapacityIsAnErrorNotSigbus) {
  Segment segment = Segment::create({.capacity = 4 * kMiB, .require_backing = Backing::kSmallPages});
  EXPECT_FALSE(segment.commit(4 * kMiB));
  const std::error_code error = segment.commit(4 * kMiB + 1);
  EXPECT_EQ(error, std::errc::no_space_on_device);
  EXPECT_EQ(segment.committed(), 4 * kMiB);
}

TEST(Segment, BadOptionsAreInvalidArguments) {
  EXPECT_THROW(Segment::create({.capacity = 1024}), std::invalid_argument);
  EXPECT_THROW(Segment::create({.capacity = 8 * kMiB, .name = "has/slash"}), std::invalid_argument);
  EXPECT_THROW(Segment::create({.capacity = 8 * kMiB, .require_backing = Backing::kHugeTlb,
                                .name = "hugetlb-named"}),
               std::invalid_argument);
}

TEST(Segment, TryAtChecksBoundsAlignmentAndCommit) {
  Segment segment = Segment::create({.capacity = 8 * kMiB, .require_backing = Backing::kSmallPages});
  EXPECT_NE(segment.try_at(Offset<std::uint64_t>{4096}), nullptr);
  EXPECT_EQ(segment.try_at(Offset<std::uint64_t>{4097}), nullptr) << "misaligned";
  EXPECT_EQ(segment.try_at(Offset<std::uint64_t>{4100}), nullptr) << "misaligned by 4";
  EXPECT_NE(segment.try_bytes(4096 + 64, 8, 64), nullptr);
  EXPECT_EQ(segment.try_bytes(4096 + 32, 8, 64), nullptr) << "misaligned for 64";
  EXPECT_EQ(segment.try_bytes(4096 + 48, 8, 24), nullptr) << "not a power of two";
  EXPECT_NE(segment.try_bytes(4097, 8, 0), nullptr) << "0 = no alignment asked";
  EXPECT_EQ(segment.try_at(Offset<std::uint64_t>{3 * kMiB}), nullptr) << "not committed yet";
  EXPECT_EQ(segment.try_at(Offset<std::uint64_t>{8 * kMiB}), nullptr) << "past capacity";
  EXPECT_EQ(segment.try_at(Offset<char>{~std::uint64_t{0} - 4}, 16), nullptr) << "overflow";
  EXPECT_THROW(segment.at(Offset<std::uint64_t>{16 * kMiB}), std::out_of_range);

  // Memory committed by another process becomes reachable here (after an fstat).
  const pid_t child = fork_child([&] { return segment.commit(4 * kMiB) ? 1 : 0; });
  expect_clean_exit(child);
  EXPECT_NE(segment.try_at(Offset<std::uint64_t>{3 * kMiB}), nullptr);
}

TEST(Segment, ForkedChildSharesMemory) {
  Segment segment = Segment::create({.capacity = 8 * kMiB});
  auto* words = segment.at(Offset<std::uint64_t>{Segment::kDataOffset}, 2);
  words[0] = 0x1234;
  const pid_t child = fork_child([&] {
    if (words[0] != 0x1234) return 1;
    words[1] = 0x5678;
    return 0;
  });
  expect_clean_exit(child);
  EXPECT_EQ(words[1], 0x5678u);
}

TEST(Segment, FdPassedToUnrelatedProcessAttaches) {
  int sockets[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets), 0);
  // The child is forked before the segment exists, so it inherits nothing: it can reach the
  // segment only through the fd it receives, and maps it wherever its kernel chooses.
  const pid_t child = fork_child([&] {
    ::close(sockets[0]);
    const int fd = receive_fd(sockets[1]);
    Segment attached = Segment::attach_fd(fd);
    ::close(fd);
    auto* words = attached.at(Offset<std::uint64_t>{Segment::kDataOffset}, 2);
    if (words[0] != 0xfeedface) return 2;
    words[1] = 0xc0ffee;
    return attached.backing() == static_cast<Backing>(attached.header().backing) ? 0 : 3;
  });
  ::close(sockets[1]);
  Segment segment = Segment::create({.capacity = 8 * kMiB});
  segment.at(Offset<std::uint64_t>{Segment::kDataOffset})[0] = 0xfeedface;
  send_fd(sockets[0], segment.fd());
  expect_clean_exit(child);
  ::close(sockets[0]);
  EXPECT_EQ(segment.at(Offset<std::uint64_t>{Segment::kDataOffset}, 2)[1], 0xc0ffeeu);
}

class HeaderValidation : public ::testing::Test {
 protected:
  Segment segment_ = Segment::create({.capacity = 8 * kMiB});
  SegmentHeader& header_ = segment_.header();
};

TEST_F(HeaderValidation, RejectsWrongMagic) {
  header_.magic ^= 1;
  EXPECT_THROW(Segment::attach_fd(segment_.fd()), std::invalid_argument);
  header_.magic ^= 1;
  EXPECT_NO_THROW(Segment::attach_fd(segment_.fd()));
}

TEST_F(HeaderValidation, RejectsWrongVersion) {
  header_.version = SegmentHeader::kVersion + 1;
  EXPECT_THROW(Segment::attach_fd(segment_.fd()), std::invalid_argument);
}

TEST_F(HeaderValidation, RejectsCapacitySmallerThanFile) {
  ASSERT_FALSE(segment_.commit(6 * kMiB));
  header_.capacity = 4 * kMiB;
  EXPECT_THROW(Segment::attach_fd(segment_.fd()), std::invalid_argument);
}

TEST(SegmentAttach, RejectsAFileThatIsNotASegment) {
  const int fd = ::memfd_create("not-a-segment", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  EXPECT_THROW(Segment::attach_fd(fd), std::invalid_argument);
  ASSERT_EQ(::ftruncate(fd, 2 * kMiB), 0);  // right size, zero magic
  EXPECT_THROW(Segment::attach_fd(fd), std::invalid_argument);
  ::close(fd);
}

TEST(NamedSegment, UnrelatedProcessAttachesByName) {
  const std::string name = unique_name("named-attach");
  Segment segment = Segment::create({.capacity = 8 * kMiB, .name = name});
  EXPECT_TRUE(std::filesystem::exists(Segment::shm_path(name)));
  EXPECT_THROW(Segment::create({.capacity = 8 * kMiB, .name = name}), std::system_error);
  segment.at(Offset<std::uint32_t>{Segment::kDataOffset})[0] = 77;
  const pid_t child = fork_child([&] {
    Segment attached = Segment::attach_name(name);
    auto* word = attached.at(Offset<std::uint32_t>{Segment::kDataOffset});
    if (*word != 77) return 1;
    *word = 78;
    return 0;
  });
  expect_clean_exit(child);
  EXPECT_EQ(segment.at(Offset<std::uint32_t>{Segment::kDataOffset})[0], 78u);
  EXPECT_TRUE(std::filesystem::exists(Segment::shm_path(name))) << "creator still attached";
}

TEST(NamedSegment, NoLeftoverAfterChildKilledMidUse) {
  for (int trial = 0; trial < 20; ++trial) {
    const std::string name = unique_name("named-kill") + "-" + std::to_string(trial);
    {
      Segment segment = Segment::create({.capacity = 8 * kMiB, .name = name});
      auto* progress = segment.at(Offset<std::atomic<std::uint32_t>>{Segment::kDataOffset});
      const pid_t child = fork_child([&] {
        Segment attached = Segment::attach_name(name);
        auto* shared = attached.at(Offset<std::atomic<std::uint32_t>>{Segment::kDataOffset});
        for (;;) shared->fetch_add(1, std::memory_order_relaxed);
        return 0;
      });
      while (progress->load(std::memory_order_relaxed) < 1000) std::this_thread::yield();
      ::kill(child, SIGKILL);
      const int status = wait_child(child);
      EXPECT_TRUE(WIFSIGNALED(status));
    }
    EXPECT_FALSE(std::filesystem::exists(Segment::shm_path(name))) << name << " leaked";
  }
}

TEST(NamedSegment, LastSurvivorRemovesNameWhenCreatorWasKilled) {
  const std::string name = unique_name("named-survivor");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t creator = fork_child([&] {
    Segment segment = Segment::create({.capacity = 8 * kMiB, .name = name});
    char byte = 1;
    if (::write(ready[1], &byte, 1) != 1) return 1;
    for (;;) ::pause();
    return 0;
  });
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  {
    Segment attached = Segment::attach_name(name);
    ::kill(creator, SIGKILL);
    wait_child(creator);
  }
  EXPECT_FALSE(std::filesystem::exists(Segment::shm_path(name)));
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(NamedSegment, ExplicitUnlinkRemovesName) {
  const std::string name = unique_name("named-unlink");
  Segment segment = Segment::create({.capacity = 8 * kMiB, .name = name});
  Segment::unlink(name);
  EXPECT_FALSE(std::filesystem::exists(Segment::shm_path(name)));
  EXPECT_THROW(Segment::attach_name(name), std::system_error);
  EXPECT_NO_THROW(Segment::unlink(name)) << "unlinking twice is not an error";
}

}  // namespace
}  // namespace ringfork
