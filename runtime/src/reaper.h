// Runtime::Reaper: the thread that forks and reaps directly started children (internal).
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ringfork/runtime.h"

namespace ringfork {

// A spawn_direct call waiting for the reaper thread to fork its child.
struct Runtime::DirectOrder {
  int (*body)(void*);
  void* context;
  std::uint32_t entry;
  pid_t pid = 0;
  int error = 0;  // errno of the step `failed_step` names
  const char* failed_step = nullptr;
  bool done = false;
};

struct Runtime::Reaper {
  struct Child {
    int pidfd;
    pid_t pid;
    std::uint32_t entry;
  };

  pid_t owner = 0;  // the process whose thread this is; a forked copy elsewhere is inert
  std::mutex mutex;
  std::condition_variable order_done;
  std::vector<Child> children;  // guarded by mutex
  std::deque<DirectOrder*> orders;  // guarded by mutex
  bool stopping = false;        // guarded by mutex
  int wakeup = -1;              // eventfd: "orders or stop"
  std::thread thread;

  void wake() noexcept;
  // Stops and joins the thread once every child is reaped.
  void shut_down() noexcept;
};

}  // namespace ringfork
