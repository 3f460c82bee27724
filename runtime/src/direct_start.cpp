// The direct start method: fork straight from the caller, reaped by a thread that polls the
// children's pidfds, so no child is ever left a zombie even if nobody joins it.
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
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

void Runtime::start_reaper() {
  if (reaper_) return;
  auto reaper = std::make_unique<Reaper>();
  reaper->wakeup = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (reaper->wakeup < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  Reaper* state = reaper.get();
  reaper->thread = std::thread([this, state] {
    std::vector<pollfd> fds;
    std::vector<Reaper::Child> watched;
    for (;;) {
      {
        std::lock_guard lock(state->mutex);
        if (state->stopping && state->children.empty()) return;
        watched = state->children;
      }
      fds.assign(1, pollfd{state->wakeup, POLLIN, 0});
      for (const auto& child : watched) fds.push_back(pollfd{child.pidfd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) return;
      if (fds[0].revents != 0) {
        std::uint64_t drained = 0;
        [[maybe_unused]] const ssize_t n = ::read(state->wakeup, &drained, sizeof(drained));
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
        std::lock_guard lock(state->mutex);
        std::erase_if(state->children, [&](const Reaper::Child& c) { return c.pid == child.pid; });
      }
    }
  });
  reaper_ = std::move(reaper);
}

void Runtime::stop_reaper() noexcept {
  if (!reaper_) return;
  {
    std::lock_guard lock(reaper_->mutex);
    reaper_->stopping = true;
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(reaper_->wakeup, &one, sizeof(one));
  if (reaper_->thread.joinable()) reaper_->thread.join();
  ::close(reaper_->wakeup);
  reaper_.reset();
}

pid_t Runtime::spawn_direct(std::uint32_t entry, int (*body)(void*), void* context) {
  start_reaper();
  const pid_t parent = ::getpid();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(128 + SIGKILL);
    const int code = body(context);
    std::fflush(nullptr);
    ::_exit(code);
  }
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    // Without a pidfd the child cannot be watched; it must not be left unreaped.
    const int error = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw std::system_error(error, std::generic_category(), "pidfd_open");
  }
  WorkerEntry& worker = control_->workers[entry];
  worker.pid.store(pid, std::memory_order_relaxed);
  // release: the pid is visible to whoever sees kRunning.
  worker.state.store(WorkerEntry::kRunning, std::memory_order_release);
  {
    std::lock_guard lock(reaper_->mutex);
    reaper_->children.push_back({pidfd, pid, entry});
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(reaper_->wakeup, &one, sizeof(one));
  return pid;
}

}  // namespace ringfork
