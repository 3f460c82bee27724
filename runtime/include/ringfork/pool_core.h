// PoolCore: the untyped machinery under Pool - worker processes, their task queues, the
// result queue, crash detection and replacement, and the callback threads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "ringfork/async_result.h"
#include "ringfork/pool_task.h"
#include "ringfork/process.h"
#include "ringfork/queue.h"
#include "ringfork/small_bytes.h"

namespace ringfork {

namespace pool_wire {
struct PoolOutbox;
struct ResultRecord;
}  // namespace pool_wire

struct PoolOptions {
  // Run once in each worker before its first task (Python's initializer + initargs).
  std::optional<PackedCall> initializer;
  // A worker exits after this many tasks and is replaced; 0 = never.
  std::size_t maxtasksperchild = 0;
  // Threads in the parent that run callbacks and complete AsyncResults.
  int callback_threads = 2;
  // How long a worker that finds more tasks queued may hold the results it answered, to
  // send them together (at most 64); 0 sends each at once. A result held while its worker
  // runs a slow task is taken by the parent within about 5 ms.
  std::chrono::microseconds result_batching{50};
};

// How a task ended, as seen by the parent.
struct TaskOutcome {
  enum Kind { kSucceeded, kRaised, kCrashed, kTerminated };
  Kind kind;
  SmallBytes payload;  // the encoded result, or the error message
  int exit_code = 0;   // kCrashed: the worker's exit status or -signal
};

// What runs when a task ends: a plain function and the shared state it works on. Unlike
// std::function it allocates nothing beyond that state, which the caller makes anyway (an
// AsyncResult's), so a task costs one allocation in the parent, not two.
class PoolCompletion {
 public:
  using Run = void (*)(void* context, TaskOutcome&& outcome);
  PoolCompletion() = default;
  PoolCompletion(Run run, std::shared_ptr<void> context) noexcept
      : run_(run), context_(std::move(context)) {}
  // Any callable taking TaskOutcome&&, kept in a shared allocation of its own.
  template <class F,
            class = std::enable_if_t<std::is_invocable_v<std::decay_t<F>&, TaskOutcome&&> &&
                                     !std::is_same_v<std::decay_t<F>, PoolCompletion>>>
  PoolCompletion(F&& function)  // NOLINT(google-explicit-constructor): as std::function
      : run_([](void* context, TaskOutcome&& outcome) {
          (*static_cast<std::decay_t<F>*>(context))(std::move(outcome));
        }),
        context_(std::make_shared<std::decay_t<F>>(std::forward<F>(function))) {}

  explicit operator bool() const noexcept { return run_ != nullptr; }
  void operator()(TaskOutcome&& outcome) { run_(context_.get(), std::move(outcome)); }

 private:
  Run run_ = nullptr;
  std::shared_ptr<void> context_;
};

class PoolCore {
 public:
  using Completion = PoolCompletion;

  PoolCore(Runtime& runtime, int processes, PoolOptions options);
  ~PoolCore();
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  // Queues a task; `on_done` runs on a callback thread when it ends (however it ends).
  // Throws std::logic_error after close() or terminate(), PoolBroken once the pool cannot
  // run tasks. Every method throws std::logic_error when called from a process other than
  // the pool's maker (a forked child): the pool's threads exist only there.
  void submit(PoolTrampoline trampoline, std::uintptr_t function,
              std::span<const std::byte> arguments, Completion on_done);

  void close();
  void terminate();
  // Waits for every worker to exit; requires close() or terminate() first. Any number of
  // threads may join; all return once the pool is done.
  void join();

  int processes() const noexcept { return processes_; }
  // Workers currently alive (replacements included).
  int live_workers() const;
  std::uint64_t workers_started() const noexcept {
    return workers_started_.load(std::memory_order_relaxed);
  }
  // Results a worker answered but had not sent when it died, delivered from its outbox.
  std::uint64_t results_from_dead_workers() const noexcept {
    return results_from_dead_workers_.load(std::memory_order_relaxed);
  }
  // Results staged by a worker then busy with a later task, taken and delivered by the
  // parent so that they do not wait for that task.
  std::uint64_t results_from_busy_workers() const noexcept {
    return results_from_busy_workers_.load(std::memory_order_relaxed);
  }
  // Exceptions thrown by user callbacks: reported on stderr and counted, never lost.
  std::uint64_t callback_errors() const noexcept {
    return callback_errors_.load(std::memory_order_relaxed);
  }

 private:
  struct Worker {
    std::unique_ptr<Queue<Bytes>> tasks;
    std::unique_ptr<Process> process;
    // (sequence number in `tasks`, task id) of tasks sent and not yet finished, in order.
    std::deque<std::pair<std::uint64_t, std::uint64_t>> outstanding;
    std::uint64_t sent = 0;  // tasks ever put on `tasks`
    std::uint64_t claimed_before_start = 0;  // tasks taken from `tasks` by earlier workers
    bool running = false;
  };
  // A task id is (generation << 32 | slot): a slot is reused once its task ended, and the
  // generation tells a late or duplicate result for the slot's previous task from its own.
  struct Job {
    std::uint32_t generation = 0;
    std::uint32_t worker = 0;
    bool live = false;
    Completion on_done;
  };
  // A completion on its way to a callback thread with the outcome it is to run with.
  struct Ready {
    Completion on_done;
    TaskOutcome outcome;
  };

  // A constructor that failed part-way: kills and (boundedly) joins the workers it started.
  void stop_started_workers() noexcept;
  void start_worker(std::uint32_t index);
  void dispatch_loop();
  // Matches results to their jobs under one lock and queues their completions in `ready`.
  void handle_results(std::span<const Bytes> messages, std::vector<Ready>& ready);
  // Ends the job a result record answers, if it is still live. Requires mutex_.
  void take_result(const pool_wire::ResultRecord& record, std::vector<Ready>& ready);
  void check_workers();
  // A worker that died before taking a task: counts it, and breaks the pool after
  // kEarlyDeathLimit in a row. Requires mutex_.
  void count_early_death(std::uint32_t index, int exit_code);
  void check_owner(const char* operation) const;
  // Takes the results `outbox` holds staged (answered, not sent), counting them in
  // `taken_count`; returns the worker's answered count. Caller holds mutex_, and the worker
  // is dead or has lent them.
  std::uint64_t take_staged_results(pool_wire::PoolOutbox& outbox, std::vector<Ready>& ready,
                                    std::atomic<std::uint64_t>& taken_count);
  // Delivers the results staged in the outboxes of workers busy with a later task.
  void take_lent_results(std::vector<Ready>& ready);
  // The live job `id` names, or nullptr (it already ended). Requires mutex_.
  Job* find_job(std::uint64_t id);
  // Moves out a job's completion and frees its slot. Requires mutex_.
  Completion end_job(Job& job, std::uint64_t id);
  void deliver(std::vector<Ready>& ready);
  void callback_loop();
  // Runs one completion; an exception from a user callback is reported and counted.
  void run_callback(Completion& on_done, TaskOutcome& outcome) noexcept;

  Runtime& runtime_;
  const int processes_;
  PoolOptions options_;
  std::unique_ptr<Queue<Bytes>> results_;
  // One per worker slot, in shared memory: the results its worker answered and had not yet
  // sent, and the counts that say which task a dead worker was running.
  std::uint64_t outbox_offset_ = 0;
  pool_wire::PoolOutbox* outboxes_ = nullptr;

  mutable std::mutex mutex_;  // guards everything below up to the threads
  std::condition_variable all_exited_;
  std::vector<Worker> workers_;
  Bytes task_message_;  // reused by every submit (a huge one is not kept)
  std::vector<Job> jobs_;
  // Reused oldest first: slots then run through jobs_ in submission order, the order results
  // mostly come back in, so matching a result reads memory the dispatcher has just read
  // (newest first scattered a burst of 10^5 tasks over megabytes).
  std::deque<std::uint32_t> free_job_slots_;
  bool closed_ = false;
  bool terminated_ = false;
  // Why the pool can run no more tasks, or empty. Workers that die before their first task
  // (a failing initializer) are not replaced forever: after this many in a row, it breaks.
  static constexpr int kEarlyDeathLimit = 3;
  int early_deaths_ = 0;
  std::string broken_;

  std::atomic<bool> stop_dispatch_{false};
  // The dispatcher's own: at its last look, the pool was closed with no task unanswered.
  bool awaiting_exits_ = false;
  std::atomic<std::uint64_t> workers_started_{0};
  std::atomic<std::uint64_t> callback_errors_{0};
  std::atomic<std::uint64_t> results_from_dead_workers_{0};
  std::atomic<std::uint64_t> results_from_busy_workers_{0};
  std::thread dispatcher_;
  struct CallbackQueue;
  std::unique_ptr<CallbackQueue> callbacks_;
  std::vector<std::thread> callback_threads_;
  std::mutex join_mutex_;  // one joiner does the work; the others wait for it
  bool joined_ = false;    // guarded by join_mutex_
  const pid_t creator_;
  const std::uint64_t creator_fork_generation_;  // detail::fork_generation in the maker
};

}  // namespace ringfork
