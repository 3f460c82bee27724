// Runtime: the shared segment every ringfork object of a program lives in, and the template
// process (fork server) that workers are forked from.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>

#include "ringfork/arena.h"
#include "ringfork/block_pool.h"
#include "ringfork/eventcount.h"
#include "ringfork/ring_mpmc.h"
#include "ringfork/segment.h"
#include "ringfork/serialize.h"
#include "ringfork/throttle.h"

namespace ringfork {

struct RuntimeOptions {
  // Address space reserved for every queue, ring and message of the program; memory is only
  // committed as it is used, so this may exceed physical memory.
  std::size_t segment_capacity = std::size_t{64} << 30;
  // Cap on message payload blocks (the queues' memory cap).
  std::size_t pool_bytes = std::size_t{16} << 30;
  // How long Process::start() waits for the template to fork a worker before it gives up
  // (the template answers within microseconds unless it is stopped or starved). A start that
  // gave up is cancelled: the template will not run it later.
  std::chrono::milliseconds spawn_timeout{30'000};
};

// One entry per live or recently finished process; lives in the runtime segment so that the
// template (which reaps template-started workers) and the parent both see it.
struct alignas(kCacheLineSize) WorkerEntry {
  // kRequested -> kSpawning (the template took the request) -> kRunning -> kExited -> kFree;
  // kRequested -> kCancelled (the requester gave up) -> kFree (the template saw it).
  enum State : std::uint32_t {
    kFree = 0,
    kRequested = 1,
    kRunning = 2,
    kExited = 3,
    kSpawning = 4,
    kCancelled = 5,
  };
  std::atomic<std::uint32_t> state;
  std::atomic<std::uint32_t> generation;  // bumped on every reuse, so stale handles notice
  std::atomic<std::int32_t> pid;
  std::atomic<std::int32_t> exit_code;  // exit status, or -signal, once kExited
  std::atomic<std::uint32_t> released;  // its Process handle is gone: free it once exited
  std::atomic<std::uint32_t> spawn_errno;  // the template's fork() failed with this
  alignas(kCacheLineSize) EventCount changed;
};

// Raw entry points of a worker: `trampoline(function, args)` decodes the arguments and calls
// `function`; both are addresses in the program image, valid in every process forked from it.
using WorkerTrampoline = int (*)(std::uintptr_t function, std::span<const std::byte> args,
                                 const DecodeContext& context);

struct SpawnRequest {
  enum Kind : std::uint32_t { kSpawn = 1, kShutdown = 2 };
  std::uint32_t kind;
  std::uint32_t entry;
  std::uint32_t generation;
  std::uint32_t reserved;
  std::uint64_t trampoline;
  std::uint64_t function;
  std::uint64_t args_block;  // BlockPool block holding the encoded arguments, 0 if none
  std::uint64_t args_length;
};

struct RuntimeControl {
  static constexpr std::uint64_t kMagic = 0x454d49544e555246;  // "FRUNTIME"
  static constexpr int kMaxWorkers = 1024;
  std::uint64_t magic;
  std::int32_t parent_pid;
  std::int32_t template_pid;
  std::uint64_t requests_offset;
  alignas(kFalseSharingRange) std::atomic<std::uint32_t> template_events;  // requests + SIGCHLD
  alignas(kFalseSharingRange) EventCount template_wake;
  WorkerEntry workers[kMaxWorkers];
};

// Contract: construct exactly one Runtime, first thing in main(), before any thread or large
// allocation exists: its constructor forks the template, which must not inherit threads or
// locks. Everything a worker receives must live in runtime.arena()/pool() (queues made
// there after construction are visible to workers, since the segment was mapped before the
// fork). Destroying the Runtime kills workers still running and stops the template. Throws
// std::system_error when the segment or the template cannot be made, std::logic_error when
// a second Runtime is made in one process.
class Runtime {
 public:
  explicit Runtime(const RuntimeOptions& options = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  Segment& segment() noexcept { return *segment_; }
  SharedArena& arena() noexcept { return *arena_; }
  BlockPool& pool() noexcept { return *pool_; }
  DecodeContext decode_context() noexcept { return {arena_.get(), pool_.get()}; }
  pid_t template_pid() const noexcept { return control_->template_pid; }
  pid_t parent_pid() const noexcept { return control_->parent_pid; }
  std::chrono::milliseconds spawn_timeout() const noexcept { return spawn_timeout_; }
  // Whether the template process still runs (a dead, unreaped template counts as gone).
  bool template_alive() const noexcept;
  // template_alive() for hot paths: looks at most every 20 ms, and once gone stays gone.
  bool template_gone() noexcept;

  // The Runtime of this process tree (set in the parent and inherited by every child).
  static Runtime* current() noexcept;

  // ---- used by Process ----
  // Takes a free worker entry; throws std::runtime_error when kMaxWorkers are in use.
  std::uint32_t acquire_entry();
  WorkerEntry& entry(std::uint32_t index) noexcept { return control_->workers[index]; }
  // Asks the template to fork a worker for `entry`. Throws if the template is gone.
  void request_spawn(std::uint32_t entry, WorkerTrampoline trampoline, std::uintptr_t function,
                     std::span<const std::byte> args);
  // Forks a child of the calling process that runs `body(context)` and exits with its result.
  // The fork happens on the runtime's reaper thread (the child dies with that thread, which
  // lives as long as the Runtime, not with the calling thread), while the caller waits.
  pid_t spawn_direct(std::uint32_t entry, int (*body)(void*), void* context);
  // The Process handle is gone: free the entry now if exited, else when it exits.
  void release_entry(std::uint32_t index) noexcept;
  // A start failed before any child existed: the entry goes back unused.
  void abandon_entry(std::uint32_t index) noexcept;
  // A template start that waited too long: true when the request was withdrawn before the
  // template took it (the template frees the entry when it gets there), false when the
  // template has taken it meanwhile (its answer is coming).
  bool cancel_request(std::uint32_t index) noexcept;
  // Records a child's end in its entry (called by whoever reaped it).
  static void record_exit(WorkerEntry& entry, int wait_status) noexcept;

 private:
  void run_template();  // never returns
  struct Reaper;
  struct DirectOrder;
  // This process's reaper, started on first use (a forked child starts its own).
  Reaper& reaper();
  void run_reaper(Reaper& state) noexcept;
  void fork_child(Reaper& state, DirectOrder& order) noexcept;
  void stop_reaper() noexcept;

  std::unique_ptr<Segment> segment_;
  std::unique_ptr<SharedArena> arena_;
  std::unique_ptr<BlockPool> pool_;
  RuntimeControl* control_ = nullptr;
  std::unique_ptr<MpmcRing<SpawnRequest>> requests_;
  std::atomic<Reaper*> reaper_{nullptr};
  std::atomic<bool> template_gone_{false};
  Throttle template_check_{std::chrono::milliseconds(20)};
  std::chrono::milliseconds spawn_timeout_;
};

}  // namespace ringfork
