#include "ringfork/ring_common.h"

#include <fcntl.h>

#include <cstdio>
#include <cstring>

namespace ringfork {

const char* to_string(RingStatus status) noexcept {
  switch (status) {
    case RingStatus::kOk:
      return "ok";
    case RingStatus::kEmpty:
      return "empty";
    case RingStatus::kFull:
      return "full";
    case RingStatus::kClosed:
      return "closed";
    case RingStatus::kTimedOut:
      return "timed out";
    case RingStatus::kNoMemory:
      return "out of shared memory";
  }
  return "unknown";
}

bool process_alive(std::int32_t pid) noexcept {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno != ENOENT;  // ENOENT: it went meanwhile; no procfs: trust kill()
  char stat[256];
  const ssize_t got = ::read(fd, stat, sizeof stat);
  ::close(fd);
  if (got <= 0) return true;
  // "pid (comm) S ...": comm may hold anything, so the state is found after the last ')'.
  const auto* comm_end =
      static_cast<const char*>(::memrchr(stat, ')', static_cast<std::size_t>(got)));
  if (comm_end == nullptr || comm_end + 2 >= stat + got) return true;
  const char state = comm_end[2];
  return state != 'Z' && state != 'X' && state != 'x';
}

std::string ring_mismatch_message(const char* kind, std::uint64_t offset, const char* detail) {
  return std::string("no ") + kind + " at segment offset " + std::to_string(offset) + ": " +
         detail;
}

}  // namespace ringfork
