// Two processes hand a token back and forth through a shared segment, waking each other with
// the eventcount (spin briefly, then futex): the wake-up path every ringfork queue uses.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <new>

#include "ringfork/arena.h"
#include "ringfork/spin_wait.h"

namespace {

struct Court {
  ringfork::EventCount ball_to_child;
  alignas(ringfork::kFalseSharingRange) ringfork::EventCount ball_to_parent;
  alignas(ringfork::kFalseSharingRange) std::atomic<std::uint64_t> child_rounds{0};
  alignas(ringfork::kFalseSharingRange) std::atomic<std::uint64_t> parent_rounds{0};
};

}  // namespace

int main() {
  using namespace ringfork;
  constexpr std::uint64_t kRounds = 200'000;
  Segment segment = Segment::create({.capacity = 8 << 20});
  SharedArena arena = SharedArena::create(segment);
  const std::uint64_t offset = arena.allocate_or_throw(sizeof(Court), alignof(Court), "court");
  auto* court = new (segment.at(Offset<Court>{offset})) Court{};
  std::printf("segment: %zu MiB reserved, backing %s\n", segment.capacity() >> 20,
              to_string(segment.backing()));

  const std::int64_t start = Deadline::monotonic_ns();
  const pid_t child = ::fork();
  if (child == 0) {
    for (std::uint64_t round = 1; round <= kRounds; ++round) {
      spin_then_park(court->ball_to_child,
                     [&] { return court->parent_rounds.load(std::memory_order_acquire) >= round; },
                     Deadline::after(std::chrono::seconds(10)));
      court->child_rounds.store(round, std::memory_order_release);
      court->ball_to_parent.notify_all();
    }
    ::_exit(0);
  }
  for (std::uint64_t round = 1; round <= kRounds; ++round) {
    court->parent_rounds.store(round, std::memory_order_release);
    court->ball_to_child.notify_all();
    if (spin_then_park(court->ball_to_parent,
                       [&] { return court->child_rounds.load(std::memory_order_acquire) >= round; },
                       Deadline::after(std::chrono::seconds(10))) != WaitOutcome::kReady) {
      std::fprintf(stderr, "round %llu: the child did not answer within 10 s\n",
                   static_cast<unsigned long long>(round));
      return 1;
    }
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  const double seconds = static_cast<double>(Deadline::monotonic_ns() - start) / 1e9;
  std::printf("%llu round trips between two processes in %.3f s: %.0f ns each; %llu futex wakes\n",
              static_cast<unsigned long long>(kRounds), seconds, seconds * 1e9 / kRounds,
              static_cast<unsigned long long>(court->ball_to_child.wake_syscalls() +
                                              court->ball_to_parent.wake_syscalls()));
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
