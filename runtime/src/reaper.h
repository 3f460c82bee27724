// Runtime::Reaper: the state of the thread that reaps directly started children (internal).
#pragma once

#include <mutex>
#include <thread>
#include <vector>

#include "ringfork/runtime.h"

namespace ringfork {

struct Runtime::Reaper {
  struct Child {
    int pidfd;
    pid_t pid;
    std::uint32_t entry;
  };
  std::mutex mutex;
  std::vector<Child> children;  // guarded by mutex
  int wakeup = -1;              // eventfd: "the child list changed" or "stop"
  bool stopping = false;        // guarded by mutex
  std::thread thread;
};

}  // namespace ringfork
