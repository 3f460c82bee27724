#include "ringfork/process.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "ringfork/spin_wait.h"

namespace ringfork {

std::string detail::describe_exception(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& exception) {
    return exception.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}

std::string Process::default_name() {
  static std::atomic<int> counter{0};
  return "Process-" + std::to_string(counter.fetch_add(1, std::memory_order_relaxed) + 1);
}

Process::Process(Process&& other) noexcept
    : runtime_(other.runtime_),
      method_(other.method_),
      name_(std::move(other.name_)),
      function_(other.function_),
      trampoline_(other.trampoline_),
      args_(std::move(other.args_)),
      body_(std::move(other.body_)),
      creator_(other.creator_),
      started_(std::exchange(other.started_, false)),
      entry_(other.entry_),
      pid_(other.pid_),
      pidfd_(std::exchange(other.pidfd_, -1)) {}

Process::~Process() {
  if (pidfd_ >= 0) ::close(pidfd_);
  if (started_ && ::getpid() == creator_) runtime_->release_entry(entry_);
}

void Process::set_name(std::string name) {
  if (started_) throw std::logic_error("Process '" + name_ + "': set_name after start()");
  name_ = std::move(name);
}

void Process::check_owner(const char* operation) const {
  if (::getpid() != creator_) {
    throw std::logic_error(std::string("Process '") + name_ + "': " + operation +
                           " from a process other than the one that made it (only the "
                           "parent may " + operation + " its child)");
  }
  if (!started_) {
    throw std::logic_error(std::string("Process '") + name_ + "': " + operation +
                           " before start()");
  }
}

namespace {

int run_body(void* context) {
  auto& body = *static_cast<std::function<int()>*>(context);
  try {
    return body();
  } catch (...) {
    std::fprintf(stderr, "ringfork: process %d failed: %s\n", static_cast<int>(::getpid()),
                 detail::describe_exception(std::current_exception()).c_str());
    return 1;
  }
}

}  // namespace

void Process::start() {
  if (::getpid() != creator_) {
    throw std::logic_error("Process '" + name_ + "': start from a process other than its maker");
  }
  if (started_) throw std::logic_error("Process '" + name_ + "': start() called twice");
  entry_ = runtime_->acquire_entry();
  if (method_ == StartMethod::kDirect) {
    try {
      pid_ = runtime_->spawn_direct(entry_, &run_body, &body_);
    } catch (...) {
      runtime_->abandon_entry(entry_);  // no child was made: the entry is free again
      throw;
    }
  } else {
    pid_ = start_from_template();
  }
  started_ = true;
  // A pidfd pins the pid: signals through it can never hit a recycled pid.
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
}

pid_t Process::start_from_template() {
  WorkerEntry& worker = runtime_->entry(entry_);
  try {
    runtime_->request_spawn(entry_, trampoline_, function_, args_);
  } catch (...) {
    runtime_->abandon_entry(entry_);  // the template never saw the request
    throw;
  }
  // The template answers within microseconds. The bound guards against one that is stopped
  // or starved: a request it has not taken by then is withdrawn, so that it never runs later
  // with no handle to join it. One it took is mid-fork: its answer gets one more period.
  const auto awaiting = [&] {
    const std::uint32_t state = worker.state.load(std::memory_order_acquire);
    return state == WorkerEntry::kRequested || state == WorkerEntry::kSpawning;
  };
  Deadline deadline = Deadline::after(runtime_->spawn_timeout());
  bool withdrawal_failed = false;
  while (awaiting()) {
    spin_then_park(worker.changed, [&] { return !awaiting(); },
                   deadline.min(Deadline::after(std::chrono::milliseconds(100))));
    if (!runtime_->template_alive()) {
      throw std::system_error(ESRCH, std::generic_category(),
                              "Process '" + name_ + "': the ringfork template died");
    }
    if (!deadline.expired() || !awaiting()) continue;
    const std::string waited = std::to_string(runtime_->spawn_timeout().count()) + " ms";
    if (runtime_->cancel_request(entry_)) {
      throw std::system_error(ETIMEDOUT, std::generic_category(),
                              "Process '" + name_ + "': the ringfork template did not answer "
                              "within " + waited + " (RuntimeOptions.spawn_timeout); the start "
                              "was cancelled");
    }
    if (withdrawal_failed) {
      // Forking for two periods: give up, and let the entry go whenever the child ends.
      worker.released.store(1, std::memory_order_seq_cst);
      throw std::system_error(ETIMEDOUT, std::generic_category(),
                              "Process '" + name_ + "': the ringfork template took the start "
                              "but did not finish forking within " + waited);
    }
    withdrawal_failed = true;
    deadline = Deadline::after(runtime_->spawn_timeout());
  }
  if (const std::uint32_t error = worker.spawn_errno.load(std::memory_order_relaxed)) {
    runtime_->abandon_entry(entry_);  // the template recorded its failed fork and let go
    throw std::system_error(static_cast<int>(error), std::generic_category(),
                            "Process '" + name_ + "': the template could not fork");
  }
  return worker.pid.load(std::memory_order_relaxed);
}

void Process::settle_if_orphaned() const {
  if (method_ != StartMethod::kTemplate || !started_) return;
  WorkerEntry& worker = runtime_->entry(entry_);
  if (worker.state.load(std::memory_order_acquire) != WorkerEntry::kRunning) return;
  if (!runtime_->template_gone()) return;
  pollfd exited{pidfd_, POLLIN, 0};
  const bool ended = pidfd_ >= 0 ? ::poll(&exited, 1, 0) == 1 : !process_alive(pid_);
  if (ended) Runtime::record_exit(worker, -SIGKILL);
}

bool Process::join(std::chrono::duration<double> timeout) {
  check_owner("join");
  WorkerEntry& worker = runtime_->entry(entry_);
  const Deadline deadline = Deadline::for_timeout(timeout.count());
  const auto exited = [&] {
    return worker.state.load(std::memory_order_acquire) == WorkerEntry::kExited;
  };
  for (;;) {
    // In slices, to notice a template that died and can no longer record the exit.
    if (spin_then_park(worker.changed, exited,
                       deadline.min(Deadline::after(std::chrono::milliseconds(50)))) ==
        WaitOutcome::kReady) {
      return true;
    }
    settle_if_orphaned();
    if (exited()) return true;
    if (deadline.expired()) return false;
  }
}

bool Process::is_alive() const {
  if (!started_) return false;
  settle_if_orphaned();
  return runtime_->entry(entry_).state.load(std::memory_order_acquire) == WorkerEntry::kRunning;
}

std::optional<int> Process::exitcode() const {
  if (!started_) return std::nullopt;
  settle_if_orphaned();
  const WorkerEntry& worker = runtime_->entry(entry_);
  if (worker.state.load(std::memory_order_acquire) != WorkerEntry::kExited) return std::nullopt;
  return worker.exit_code.load(std::memory_order_relaxed);
}

void Process::send(int signal_number) {
  check_owner(signal_number == SIGKILL ? "kill" : "terminate");
  if (!is_alive()) return;
  if (pidfd_ >= 0) {
    if (::syscall(SYS_pidfd_send_signal, pidfd_, signal_number, nullptr, 0) != 0 &&
        errno != ESRCH) {
      throw std::system_error(errno, std::generic_category(), "signalling " + name_);
    }
    return;
  }
  ::kill(pid_, signal_number);
}

void Process::terminate() { send(SIGTERM); }
void Process::kill() { send(SIGKILL); }

}  // namespace ringfork
