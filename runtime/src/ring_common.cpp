#include "ringfork/ring_common.h"

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

std::string ring_mismatch_message(const char* kind, std::uint64_t offset, const char* detail) {
  return std::string("no ") + kind + " at segment offset " + std::to_string(offset) + ": " +
         detail;
}

}  // namespace ringfork
