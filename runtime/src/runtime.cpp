#include "ringfork/runtime.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "reaper.h"

namespace ringfork {
namespace {

Runtime* g_current = nullptr;
RuntimeControl* g_template_control = nullptr;  // the template's view, for its SIGCHLD handler

// Async-signal-safe: atomics and a futex wake.
void on_child_exit(int) {
  const int saved = errno;
  if (g_template_control != nullptr) {
    g_template_control->template_events.fetch_add(1, std::memory_order_release);
    g_template_control->template_wake.notify_all();
  }
  errno = saved;
}

// Dies with the parent (also if it died before we could ask) so nothing outlives the program.
void die_with_parent(pid_t expected_parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != expected_parent) ::_exit(128 + SIGKILL);
}

int exit_code_from_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -SIGKILL;
}

}  // namespace

Runtime* Runtime::current() noexcept { return g_current; }

Runtime::Runtime(const RuntimeOptions& options) {
  if (options.spawn_timeout <= std::chrono::milliseconds::zero()) {
    throw std::invalid_argument("RuntimeOptions.spawn_timeout = " +
                                std::to_string(options.spawn_timeout.count()) +
                                " ms: it must be positive");
  }
  if (g_current != nullptr) {
    throw std::logic_error("a ringfork::Runtime already exists in this process; make one, first "
                           "thing in main()");
  }
  spawn_timeout_ = options.spawn_timeout;
  segment_ = std::make_unique<Segment>(Segment::create({.capacity = options.segment_capacity}));
  arena_ = std::make_unique<SharedArena>(SharedArena::create(*segment_));
  BlockPoolOptions pool_options;
  pool_options.max_bytes = options.pool_bytes;
  pool_ = std::make_unique<BlockPool>(BlockPool::create(*arena_, pool_options));
  const std::uint64_t control_offset =
      arena_->allocate_or_throw(sizeof(RuntimeControl), kFalseSharingRange, "the runtime");
  control_ = new (segment_->at(Offset<RuntimeControl>{control_offset})) RuntimeControl{};
  control_->magic = RuntimeControl::kMagic;
  control_->parent_pid = ::getpid();
  requests_ = std::make_unique<MpmcRing<SpawnRequest>>(
      MpmcRing<SpawnRequest>::create(*arena_, {.capacity = 256, .chunk_slots = 256}));
  control_->requests_offset = requests_->offset();
  g_current = this;

  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    g_current = nullptr;
    throw std::system_error(errno, std::generic_category(), "forking the ringfork template");
  }
  if (pid == 0) run_template();
  control_->template_pid = pid;
}

Runtime::~Runtime() {
  if (::getpid() != control_->parent_pid) return;  // a child leaving: the parent owns this
  SpawnRequest shutdown{};
  shutdown.kind = SpawnRequest::kShutdown;
  requests_->try_push(shutdown);
  control_->template_events.fetch_add(1, std::memory_order_release);
  control_->template_wake.notify_all();
  const Deadline deadline = Deadline::after(std::chrono::seconds(5));
  int status = 0;
  while (::waitpid(control_->template_pid, &status, WNOHANG) == 0) {
    if (deadline.expired()) {
      ::kill(control_->template_pid, SIGKILL);
      ::waitpid(control_->template_pid, &status, 0);
      break;
    }
    ::usleep(1000);
  }
  // Direct children still running die with the runtime, like daemon processes.
  for (WorkerEntry& worker : control_->workers) {
    if (worker.state.load(std::memory_order_acquire) == WorkerEntry::kRunning) {
      const pid_t pid = worker.pid.load(std::memory_order_relaxed);
      if (pid > 0 && ::getpgid(pid) >= 0) ::kill(pid, SIGKILL);
    }
  }
  stop_reaper();
  g_current = nullptr;
}

bool Runtime::template_alive() const noexcept {
  const pid_t pid = control_->template_pid;
  if (::getpid() != control_->parent_pid) return process_alive(pid);
  // The parent reaps the template only when the Runtime ends, so a dead template lingers as
  // a zombie, which kill(pid, 0) calls alive. WNOWAIT looks without reaping it.
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return errno == EINTR;  // ECHILD: someone reaped it already
  }
  return info.si_pid == 0;
}

bool Runtime::template_gone() noexcept {
  if (template_gone_.load(std::memory_order_relaxed)) return true;
  // One caller looks; the others go on as if it were alive, as they would have 20 ms ago.
  if (!template_check_.due()) return false;
  if (template_alive()) return false;
  template_gone_.store(true, std::memory_order_relaxed);
  return true;
}

std::uint32_t Runtime::acquire_entry() {
  for (std::uint32_t index = 0; index < RuntimeControl::kMaxWorkers; ++index) {
    WorkerEntry& worker = control_->workers[index];
    std::uint32_t expected = WorkerEntry::kFree;
    // acq_rel: the previous user's writes are done before we reset the fields.
    if (worker.state.compare_exchange_strong(expected, WorkerEntry::kRequested,
                                             std::memory_order_acq_rel)) {
      worker.generation.fetch_add(1, std::memory_order_relaxed);
      worker.pid.store(0, std::memory_order_relaxed);
      worker.exit_code.store(0, std::memory_order_relaxed);
      worker.released.store(0, std::memory_order_relaxed);
      worker.spawn_errno.store(0, std::memory_order_release);
      return index;
    }
  }
  throw std::runtime_error("ringfork: " + std::to_string(RuntimeControl::kMaxWorkers) +
                           " processes are running or unjoined; join or drop some first");
}

void Runtime::release_entry(std::uint32_t index) noexcept {
  WorkerEntry& worker = control_->workers[index];
  // seq_cst: pairs with record_exit, so one of the two sees the other and frees the entry.
  worker.released.store(1, std::memory_order_seq_cst);
  std::uint32_t exited = WorkerEntry::kExited;
  worker.state.compare_exchange_strong(exited, WorkerEntry::kFree, std::memory_order_seq_cst);
}

void Runtime::abandon_entry(std::uint32_t index) noexcept {
  // release: our resets of the fields are done before the next owner takes it.
  control_->workers[index].state.store(WorkerEntry::kFree, std::memory_order_release);
}

bool Runtime::cancel_request(std::uint32_t index) noexcept {
  std::uint32_t requested = WorkerEntry::kRequested;
  // acq_rel: pairs with the template's claim of the request; exactly one of the two wins.
  return control_->workers[index].state.compare_exchange_strong(
      requested, WorkerEntry::kCancelled, std::memory_order_acq_rel);
}

void Runtime::record_exit(WorkerEntry& worker, int exit_code) noexcept {
  worker.exit_code.store(exit_code, std::memory_order_relaxed);
  // seq_cst: publishes exit_code (release) and orders against release_entry.
  worker.state.store(WorkerEntry::kExited, std::memory_order_seq_cst);
  worker.changed.notify_all();
  if (worker.released.load(std::memory_order_seq_cst) != 0) {
    std::uint32_t exited = WorkerEntry::kExited;
    worker.state.compare_exchange_strong(exited, WorkerEntry::kFree, std::memory_order_seq_cst);
  }
}

void Runtime::request_spawn(std::uint32_t entry, WorkerTrampoline trampoline,
                            std::uintptr_t function, std::span<const std::byte> args) {
  SpawnRequest request{};
  request.kind = SpawnRequest::kSpawn;
  request.entry = entry;
  request.generation = control_->workers[entry].generation.load(std::memory_order_relaxed);
  request.trampoline = reinterpret_cast<std::uintptr_t>(trampoline);
  request.function = function;
  request.args_length = args.size();
  if (!args.empty()) {
    if (std::error_code error = pool_->allocate(args.size(), request.args_block)) {
      throw std::system_error(error, "storing a process's arguments");
    }
    std::memcpy(segment_->base() + request.args_block, args.data(), args.size());
    pool_->set_owner(request.args_block, BlockPool::kSharedOwner);
  }
  if (!template_alive() || requests_->push(request, Deadline::after(std::chrono::seconds(10))) !=
                               RingStatus::kOk) {
    if (request.args_block != 0) pool_->free(request.args_block);
    throw std::system_error(ESRCH, std::generic_category(),
                            "the ringfork template process is not running");
  }
  control_->template_events.fetch_add(1, std::memory_order_release);
  control_->template_wake.notify_all();
}

void Runtime::run_template() {
  const pid_t parent = control_->parent_pid;
  die_with_parent(parent);
  ::prctl(PR_SET_NAME, "ringfork-tmpl");
  const pid_t self = ::getpid();
  g_template_control = control_;
  struct sigaction action {};
  action.sa_handler = on_child_exit;
  action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  ::sigaction(SIGCHLD, &action, nullptr);

  // A child of ours was waited for: its blocks go back to the pool, its exit is recorded.
  auto reaped = [&](pid_t pid, int status) {
    pool_->reclaim(pid);
    for (WorkerEntry& worker : control_->workers) {
      if (worker.pid.load(std::memory_order_relaxed) == pid &&
          worker.state.load(std::memory_order_acquire) == WorkerEntry::kRunning) {
        record_exit(worker, exit_code_from_status(status));
        break;
      }
    }
  };
  auto reap = [&] {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) reaped(pid, status);
  };
  // Every exit is recorded, the last ones too: an entry left kRunning after its pid was reaped
  // would have ~Runtime SIGKILL that pid, by then perhaps another process's.
  auto kill_workers_and_exit = [&] {
    for (WorkerEntry& worker : control_->workers) {
      const pid_t pid = worker.pid.load(std::memory_order_relaxed);
      if (pid <= 0 || worker.state.load(std::memory_order_acquire) != WorkerEntry::kRunning) {
        continue;
      }
      // Only our own children (a direct child of the parent is the parent's to end): one
      // not yet reaped still owns its pid, so the SIGKILL cannot reach another process.
      int status = 0;
      const pid_t waited = ::waitpid(pid, &status, WNOHANG);
      if (waited == pid) {
        reaped(pid, status);
      } else if (waited == 0) {
        ::kill(pid, SIGKILL);
      }
    }
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, 0)) > 0) reaped(pid, status);
    ::_exit(0);
  };

  for (;;) {
    // Read the event count before draining: a request pushed after the drain bumps it.
    const std::uint32_t seen = control_->template_events.load(std::memory_order_acquire);
    SpawnRequest request{};
    while (requests_->try_pop(request) == RingStatus::kOk) {
      if (request.kind == SpawnRequest::kShutdown) kill_workers_and_exit();
      if (request.kind != SpawnRequest::kSpawn || request.entry >= RuntimeControl::kMaxWorkers) {
        continue;
      }
      WorkerEntry& worker = control_->workers[request.entry];
      // Claim the request, unless its requester gave up on it. The generation cannot change
      // between the two checks: only kFree entries are reused, and only this loop frees a
      // cancelled one.
      std::uint32_t requested = WorkerEntry::kRequested;
      if (worker.generation.load(std::memory_order_relaxed) != request.generation ||
          !worker.state.compare_exchange_strong(requested, WorkerEntry::kSpawning,
                                                std::memory_order_acq_rel)) {
        if (request.args_block != 0) pool_->free(request.args_block);
        if (requested == WorkerEntry::kCancelled) abandon_entry(request.entry);
        continue;
      }
      // The worker gets its arguments as a private copy made here, before the fork, and the
      // block goes back to the pool at once: the parent may reuse it for the next request
      // while this worker still decodes (workers that read the block itself were seen
      // decoding another worker's arguments).
      std::vector<std::byte> args;
      bool args_readable = true;
      if (request.args_block != 0) {
        const auto* shared = static_cast<const std::byte*>(
            segment_->try_bytes(request.args_block, request.args_length, 1));
        try {
          if (shared != nullptr) args.assign(shared, shared + request.args_length);
        } catch (const std::bad_alloc&) {
          shared = nullptr;
        }
        args_readable = shared != nullptr;
        pool_->free(request.args_block);
      }
      std::fflush(nullptr);
      const pid_t pid = ::fork();
      if (pid == 0) {
        struct sigaction restore {};
        restore.sa_handler = SIG_DFL;
        ::sigaction(SIGCHLD, &restore, nullptr);
        g_template_control = nullptr;
        die_with_parent(self);
        ::prctl(PR_SET_NAME, "ringfork-worker");
        int code = 1;
        if (args_readable) {
          const auto trampoline = reinterpret_cast<WorkerTrampoline>(request.trampoline);
          code = trampoline(request.function, args, decode_context());
        }
        std::fflush(nullptr);
        ::_exit(code);
      }
      if (pid < 0) {
        worker.spawn_errno.store(static_cast<std::uint32_t>(errno), std::memory_order_relaxed);
        record_exit(worker, -SIGKILL);
        continue;
      }
      worker.pid.store(pid, std::memory_order_relaxed);
      // release: the pid is visible to whoever sees kRunning.
      worker.state.store(WorkerEntry::kRunning, std::memory_order_release);
      worker.changed.notify_all();
    }
    reap();
    if (::getppid() != parent) kill_workers_and_exit();
    spin_then_park(
        control_->template_wake,
        [&] { return control_->template_events.load(std::memory_order_acquire) != seen; },
        Deadline::after(std::chrono::milliseconds(200)),
        SpinPolicy{.spin_iterations = 64, .yield_iterations = 0});
  }
}

}  // namespace ringfork
