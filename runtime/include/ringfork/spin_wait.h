// Spin briefly, then park on an EventCount: the one blocking pattern every ringfork wait uses.
#pragma once

#include <sched.h>

#include "ringfork/cache_line.h"
#include "ringfork/deadline.h"
#include "ringfork/eventcount.h"

namespace ringfork {

struct SpinPolicy {
  // Polls with a pause hint before yielding the core: a peer on another core usually answers
  // within a few microseconds, which is far cheaper than a futex round trip.
  int spin_iterations = 2000;
  // Yields after spinning: on an oversubscribed machine the peer may need our core.
  int yield_iterations = 4;
};

enum class WaitOutcome { kReady, kTimedOut };

// Waits until `ready()` returns true or `deadline` passes. `ready` must be idempotent and
// cheap; it is called with the waiter announced, so the notifier must call notify after
// making it true.
template <class Ready>
WaitOutcome spin_then_park(EventCount& event, Ready&& ready, Deadline deadline,
                           SpinPolicy policy = {}) {
  for (int i = 0; i < policy.spin_iterations; ++i) {
    if (ready()) return WaitOutcome::kReady;
    cpu_relax();
  }
  for (int i = 0; i < policy.yield_iterations; ++i) {
    if (ready()) return WaitOutcome::kReady;
    sched_yield();
  }
  return event.park(ready, deadline) ? WaitOutcome::kReady : WaitOutcome::kTimedOut;
}

}  // namespace ringfork
