// The direct start method: fork from the calling process, on the reaper thread, which then
// watches the children's pidfds and reaps them, so no child is ever left a zombie even if
// nobody joins it. Forking on that thread rather than the caller's matters because the
// child's PR_SET_PDEATHSIG fires when the thread that forked it ends: a child forked by a
// short-lived thread would be killed with it.
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "ringfork/runtime.h"
#include "reaper.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace ringfork {

namespace {

int exit_code_from(const siginfo_t& info) {
  return info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
}

}  // namespace

void Runtime::Reaper::wake() noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wakeup, &one, sizeof(one));
}

void Runtime::Reaper::shut_down() noexcept {
  {
    std::lock_guard lock(mutex);
    stopping = true;
  }
  wake();
  if (thread.joinable()) thread.join();
  ::close(wakeup);
}

// Runs on the reaper thread, outside its mutex: the child must not inherit it locked.
void Runtime::fork_child(Reaper& state, DirectOrder& order) noexcept {
  const pid_t parent = ::getpid();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(128 + SIGKILL);
    const int code = order.body(order.context);
    std::fflush(nullptr);
    ::_exit(code);
  }
  const int fork_error = errno;
  // A pidfd is how the child is watched: without one it must not be left unreaped.
  const int pidfd = pid < 0 ? -1 : static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  const int pidfd_error = errno;
  if (pid > 0 && pidfd < 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  std::lock_guard lock(state.mutex);
  if (pid < 0) {
    order.error = fork_error;
    order.failed_step = "fork";
  } else if (pidfd < 0) {
    order.error = pidfd_error;
    order.failed_step = "pidfd_open";
  } else {
    WorkerEntry& worker = control_->workers[order.entry];
    worker.pid.store(pid, std::memory_order_relaxed);
    // release: the pid is visible to whoever sees kRunning.
    worker.state.store(WorkerEntry::kRunning, std::memory_order_release);
    state.children.push_back({pidfd, pid, order.entry});
    order.pid = pid;
  }
  order.done = true;
}

void Runtime::run_reaper(Reaper& state) noexcept {
  std::vector<pollfd> fds;
  std::vector<Reaper::Child> watched;
  std::deque<DirectOrder*> orders;
  for (;;) {
    {
      std::lock_guard lock(state.mutex);
      if (state.stopping && state.children.empty() && state.orders.empty()) return;
      orders.swap(state.orders);
    }
    if (!orders.empty()) {
      for (DirectOrder* order : orders) fork_child(state, *order);
      orders.clear();
      std::lock_guard lock(state.mutex);
      state.order_done.notify_all();
    }
    {
      std::lock_guard lock(state.mutex);
      watched = state.children;
    }
    fds.assign(1, pollfd{state.wakeup, POLLIN, 0});
    for (const auto& child : watched) fds.push_back(pollfd{child.pidfd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      // Never abandon the children: a failing poll (ENOMEM) is retried, not the end.
      if (errno != EINTR) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (fds[0].revents != 0) {
      std::uint64_t drained = 0;
      [[maybe_unused]] const ssize_t n = ::read(state.wakeup, &drained, sizeof(drained));
    }
    for (std::size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      const Reaper::Child& child = watched[i - 1];
      siginfo_t info{};
      if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(child.pidfd), &info,
                   WEXITED) != 0) {
        continue;
      }
      pool_->reclaim(child.pid);
      record_exit(control_->workers[child.entry], exit_code_from(info));
      ::close(child.pidfd);
      std::lock_guard lock(state.mutex);
      std::erase_if(state.children, [&](const Reaper::Child& c) { return c.pid == child.pid; });
    }
  }
}

Runtime::Reaper& Runtime::reaper() {
  const pid_t self = ::getpid();
  Reaper* current = reaper_.load(std::memory_order_acquire);
  if (current != nullptr && current->owner == self) return *current;
  // None yet, or one inherited from the process this one was forked from: its thread does
  // not exist here, and the copy is left untouched (its mutex may have been held at fork).
  auto fresh = std::make_unique<Reaper>();
  fresh->owner = self;
  fresh->wakeup = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fresh->wakeup < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  Reaper* state = fresh.get();
  fresh->thread = std::thread([this, state] { run_reaper(*state); });
  if (reaper_.compare_exchange_strong(current, state, std::memory_order_acq_rel)) {
    return *fresh.release();
  }
  fresh->shut_down();  // another thread of this process started one first
  return *current;
}

void Runtime::stop_reaper() noexcept {
  Reaper* state = reaper_.exchange(nullptr, std::memory_order_acq_rel);
  if (state == nullptr || state->owner != ::getpid()) return;
  state->shut_down();
  delete state;
}

pid_t Runtime::spawn_direct(std::uint32_t entry, int (*body)(void*), void* context) {
  Reaper& state = reaper();
  DirectOrder order{body, context, entry};
  {
    std::lock_guard lock(state.mutex);
    state.orders.push_back(&order);
  }
  state.wake();
  std::unique_lock lock(state.mutex);
  state.order_done.wait(lock, [&] { return order.done; });
  if (order.failed_step != nullptr) {
    throw std::system_error(order.error, std::generic_category(), order.failed_step);
  }
  return order.pid;
}

}  // namespace ringfork
