#include "ringfork/pool_core.h"

#include <concurrentqueue/blockingconcurrentqueue.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>

#include "pool_wire.h"
#include "ringfork/claim_registry.h"
#include "ringfork/cache_line.h"

namespace ringfork {
namespace {

using pool_wire::PoolOutbox;
using pool_wire::RecordReader;
using pool_wire::ResultRecord;

// Buffers reused from message to message keep their capacity, up to this: one huge message
// must not pin its size for the pool's lifetime.
constexpr std::size_t kKeptBufferBytes = std::size_t{1} << 20;
// How often a busy dispatcher looks for results lent by workers busy with a later task; an
// idle one looks every time its wait for results times out (kIdleResultWait).
constexpr std::chrono::milliseconds kLentCheck{2};
// How long the dispatcher waits for results before it looks at the workers again: long while
// tasks are out (a worker's death is rare, and results wake it); short once the pool is
// closed and every task answered, when join() waits only for it to see the workers exit.
constexpr std::chrono::milliseconds kIdleResultWait{5};
constexpr std::chrono::microseconds kExitsResultWait{250};

void drop_if_huge(Bytes& buffer) {
  if (buffer.capacity() > kKeptBufferBytes) Bytes().swap(buffer);
}

SmallBytes text_bytes(const std::string& text) {
  return SmallBytes(std::as_bytes(std::span(text.data(), text.size())));
}

TaskOutcome crashed_outcome(const std::string& what, int exit_code) {
  return TaskOutcome{TaskOutcome::kCrashed, text_bytes(what), exit_code};
}

// Takes `mutex`, polling it for a moment first. The submitting thread is the pool's
// bottleneck and the dispatcher holds the lock for short spans: sleeping in the kernel for
// one of them (glibc's mutex sleeps at once) costs far more than the wait.
std::unique_lock<std::mutex> lock_soon(std::mutex& mutex) {
  for (int i = 0; i < 128; ++i) {
    if (mutex.try_lock()) return std::unique_lock(mutex, std::adopt_lock);
    cpu_relax();
  }
  return std::unique_lock(mutex);
}

}  // namespace

// Completions travel by value and in bulk: one semaphore signal per batch of results, not one
// per task. An empty on_done is the stop sentinel.
struct PoolCore::CallbackQueue {
  moodycamel::BlockingConcurrentQueue<Ready> items;
};

PoolCore::PoolCore(Runtime& runtime, int processes, PoolOptions options)
    : runtime_(runtime), processes_(processes), options_(std::move(options)),
      creator_(::getpid()),
      creator_fork_generation_(detail::fork_generation.load(std::memory_order_relaxed)) {
  if (processes < 1) {
    throw std::invalid_argument("Pool needs at least one process, got " + std::to_string(processes));
  }
  if (options_.callback_threads < 1) {
    throw std::invalid_argument("PoolOptions.callback_threads must be at least 1");
  }
  if (processes > RuntimeControl::kMaxWorkers) {
    throw std::invalid_argument("Pool of " + std::to_string(processes) +
                                " processes: a Runtime runs at most " +
                                std::to_string(RuntimeControl::kMaxWorkers) + " at once");
  }
  results_ = std::make_unique<Queue<Bytes>>(Queue<Bytes>::create(runtime.arena(), runtime.pool()));
  outbox_offset_ =
      runtime.arena().allocate_or_throw(sizeof(PoolOutbox) * static_cast<std::size_t>(processes),
                                        alignof(PoolOutbox), "pool outboxes");
  outboxes_ =
      runtime.segment().at(Offset<PoolOutbox>{outbox_offset_}, static_cast<std::size_t>(processes));
  for (int i = 0; i < processes; ++i) {
    auto* outbox = new (&outboxes_[i]) PoolOutbox{};
    outbox->version = PoolOutbox::kVersion;
    outbox->batching_us = static_cast<std::uint32_t>(std::clamp<std::int64_t>(
        options_.result_batching.count(), 0, std::numeric_limits<std::uint32_t>::max()));
  }
  workers_.resize(static_cast<std::size_t>(processes));
  {
    std::lock_guard lock(mutex_);
    try {
      for (std::uint32_t i = 0; i < workers_.size(); ++i) {
        workers_[i].tasks =
            std::make_unique<Queue<Bytes>>(Queue<Bytes>::create(runtime.arena(), runtime.pool()));
        start_worker(i);
      }
    } catch (...) {
      // No destructor runs for a pool that was never made: the workers started so far
      // would wait on their task queues until the Runtime ends.
      stop_started_workers();
      throw;
    }
  }
  callbacks_ = std::make_unique<CallbackQueue>();
  for (int i = 0; i < options_.callback_threads; ++i) {
    callback_threads_.emplace_back([this] { callback_loop(); });
  }
  dispatcher_ = std::thread([this] { dispatch_loop(); });
}

PoolCore::~PoolCore() {
  if (detail::fork_generation.load(std::memory_order_relaxed) != creator_fork_generation_) {
    // A forked copy: the threads and workers are the maker's. std::thread's destructor would
    // abort on the threads, which do not exist here, so they are forgotten, not joined.
    static auto* forgotten = new std::vector<std::thread>();
    forgotten->push_back(std::move(dispatcher_));
    for (std::thread& thread : callback_threads_) forgotten->push_back(std::move(thread));
    return;
  }
  if (joined_) return;
  terminate();
  join();
}

void PoolCore::check_owner(const char* operation) const {
  // Not getpid(): a system call (1 us on this project's VM) on every submit. The fork
  // generation changes in every child, and a pool exists only in its maker and the
  // maker's descendants, so an equal generation means the maker.
  // relaxed: it changes only in a child, single-threaded, right after fork.
  if (detail::fork_generation.load(std::memory_order_relaxed) == creator_fork_generation_) {
    return;
  }
  throw std::logic_error(std::string("Pool.") + operation + " from process " +
                         std::to_string(::getpid()) + ", but the pool belongs to process " +
                         std::to_string(creator_) + " (a pool is used by the process that made it)");
}

void PoolCore::stop_started_workers() noexcept {
  for (Worker& worker : workers_) {
    if (worker.tasks) worker.tasks->close();
    if (worker.running) worker.process->kill();
  }
  for (Worker& worker : workers_) {
    if (!worker.running) continue;
    // Bounded: the template that records their exits may be what just failed us (their
    // entries are then freed when it records them, after ~Process released them).
    try {
      worker.process->join(std::chrono::seconds(2));
    } catch (...) {
    }
    worker.running = false;
  }
}

void PoolCore::start_worker(std::uint32_t index) {
  Worker& worker = workers_[index];
  Bytes initializer;
  if (options_.initializer) {
    ArgWriter out;
    out.write_raw(reinterpret_cast<std::uint64_t>(options_.initializer->trampoline));
    out.write_raw(static_cast<std::uint64_t>(options_.initializer->function));
    out.write_bytes(options_.initializer->arguments.data(), options_.initializer->arguments.size());
    initializer = std::move(out.buffer());
  }
  worker.process =
      std::make_unique<Process>(runtime_, &pool_wire::pool_worker_main, *worker.tasks, *results_,
                                index, std::uint64_t{options_.maxtasksperchild}, initializer,
                                outbox_offset_ + index * std::uint64_t{sizeof(PoolOutbox)});
  worker.process->set_name("PoolWorker-" + std::to_string(index));
  worker.claimed_before_start = worker.tasks->counters().gets;
  outboxes_[index].initializer_error[0] = '\0';
  worker.process->start();
  worker.running = true;
  workers_started_.fetch_add(1, std::memory_order_relaxed);
}

void PoolCore::submit(PoolTrampoline trampoline, std::uintptr_t function,
                      std::span<const std::byte> arguments, Completion on_done) {
  check_owner("submit");
  const std::unique_lock lock = lock_soon(mutex_);
  if (closed_) throw std::logic_error("Pool: task submitted after close() or terminate()");
  if (!broken_.empty()) throw PoolBroken(broken_);
  Bytes& message = task_message_;
  message.resize(pool_wire::kTaskHeader + arguments.size());
  const std::uint64_t code[2] = {reinterpret_cast<std::uint64_t>(trampoline), function};
  std::memcpy(message.data() + sizeof(std::uint64_t), code, sizeof(code));
  if (!arguments.empty()) {
    std::memcpy(message.data() + pool_wire::kTaskHeader, arguments.data(), arguments.size());
  }
  // The worker with the least outstanding work takes the task.
  std::uint32_t chosen = 0;
  for (std::uint32_t i = 1; i < workers_.size(); ++i) {
    if (workers_[i].outstanding.size() < workers_[chosen].outstanding.size()) chosen = i;
  }
  const bool reuse = !free_job_slots_.empty();
  const auto slot = reuse ? free_job_slots_.front() : static_cast<std::uint32_t>(jobs_.size());
  const std::uint64_t id = std::uint64_t{reuse ? jobs_[slot].generation : 0} << 32 | slot;
  std::memcpy(message.data(), &id, sizeof(id));
  // Under the lock, so that the queue's order and `outstanding`'s order agree.
  workers_[chosen].tasks->bytes().put(message);
  if (reuse) {
    free_job_slots_.pop_front();
  } else {
    jobs_.emplace_back();
  }
  workers_[chosen].outstanding.emplace_back(workers_[chosen].sent++, id);
  drop_if_huge(message);
  Job& job = jobs_[slot];
  job.worker = chosen;
  job.live = true;
  job.on_done = std::move(on_done);
}

PoolCore::Job* PoolCore::find_job(std::uint64_t id) {
  const auto slot = static_cast<std::uint32_t>(id);
  if (slot >= jobs_.size()) return nullptr;
  Job& job = jobs_[slot];
  return job.live && job.generation == static_cast<std::uint32_t>(id >> 32) ? &job : nullptr;
}

PoolCore::Completion PoolCore::end_job(Job& job, std::uint64_t id) {
  Completion on_done = std::move(job.on_done);
  job.on_done = Completion();
  job.live = false;
  ++job.generation;
  free_job_slots_.push_back(static_cast<std::uint32_t>(id));
  return on_done;
}

// Takes what the result queue holds, up to kResultBatch messages, and handles them as one batch:
// one lock and one hand-over to the callback threads for the lot.
void PoolCore::dispatch_loop() {
  constexpr std::size_t kResultBatch = 256;
  ByteQueue& results = results_->bytes();
  std::vector<Bytes> messages(kResultBatch);  // each keeps its capacity from batch to batch
  std::vector<Ready> ready;
  Deadline next_lent_check = Deadline::after(kLentCheck);
  while (!stop_dispatch_.load(std::memory_order_acquire)) {
    std::size_t taken = 0;  // results first, then a look at the workers, every round
    try {
      results.get(messages[0], Deadline::after(awaiting_exits_ ? kExitsResultWait
                                                               : kIdleResultWait));
      taken = 1;
      while (taken < kResultBatch && results.get_nowait(messages[taken]) == RingStatus::kOk) {
        ++taken;
      }
    } catch (const Empty&) {
    }
    if (taken != 0) {
      handle_results(std::span<const Bytes>(messages.data(), taken), ready);
      deliver(ready);
      for (std::size_t i = 0; i < taken; ++i) drop_if_huge(messages[i]);
    }
    // A worker busy with a slow task may hold quick results staged before it: take them
    // when the queue went quiet, and at least every kLentCheck while it is busy.
    if (taken == 0 || next_lent_check.expired()) {
      take_lent_results(ready);
      deliver(ready);
      next_lent_check = Deadline::after(kLentCheck);
    }
    check_workers();
  }
}

std::uint64_t PoolCore::take_staged_results(PoolOutbox& outbox, std::vector<Ready>& ready,
                                            std::atomic<std::uint64_t>& taken_count) {
  // acquire: the staged records were written before the counts that cover them.
  const std::uint64_t answered = outbox.answered.load(std::memory_order_acquire);
  const std::uint64_t flushed = outbox.flushed.load(std::memory_order_acquire);
  RecordReader staged(std::span<const std::byte>(outbox.staged).subspan(pool_wire::kResultHeader));
  ResultRecord record;
  const std::size_t before = ready.size();
  for (std::uint64_t i = flushed; i < answered && staged.next(record); ++i) {
    take_result(record, ready);
  }
  taken_count.fetch_add(ready.size() - before, std::memory_order_relaxed);
  return answered;
}

void PoolCore::take_lent_results(std::vector<Ready>& ready) {
  std::lock_guard lock(mutex_);
  for (std::uint32_t index = 0; index < workers_.size(); ++index) {
    if (!workers_[index].running) continue;
    PoolOutbox& outbox = outboxes_[index];
    // relaxed: a hint; the CAS below decides.
    if (outbox.lending.load(std::memory_order_relaxed) != pool_wire::kLent) continue;
    std::uint32_t state = pool_wire::kLent;
    // acquire: the staged records and `answered` written before the worker lent them.
    if (!outbox.lending.compare_exchange_strong(state, pool_wire::kTaking,
                                                std::memory_order_acq_rel)) {
      continue;  // the worker finished its task first and took them back
    }
    const std::uint64_t answered = take_staged_results(outbox, ready, results_from_busy_workers_);
    outbox.flushed.store(answered, std::memory_order_relaxed);
    // release: our reads of the staged bytes and the new `flushed` happen before the worker
    // reuses the staging area.
    outbox.lending.store(pool_wire::kTaken, std::memory_order_release);
  }
}

void PoolCore::handle_results(std::span<const Bytes> messages, std::vector<Ready>& ready) {
  for (const Bytes& message : messages) {
    if (message.size() < pool_wire::kResultHeader) continue;
    // Per message, not per batch: submit() waits on this lock, and short holds let it win
    // the lock while polling instead of sleeping.
    const std::unique_lock lock = lock_soon(mutex_);
    std::uint32_t count = 0;
    std::memcpy(&count, message.data() + sizeof(std::uint32_t), sizeof(count));
    RecordReader records(std::span<const std::byte>(message).subspan(pool_wire::kResultHeader));
    ResultRecord record;
    for (std::uint32_t i = 0; i < count && records.next(record); ++i) take_result(record, ready);
  }
}

void PoolCore::take_result(const ResultRecord& record, std::vector<Ready>& ready) {
  Job* job = find_job(record.id);
  if (job == nullptr) return;  // already ended: terminated, or delivered from the outbox
  Worker& worker = workers_[job->worker];
  // Results come back in the order tasks were sent, so this is nearly always the first.
  if (!worker.outstanding.empty() && worker.outstanding.front().second == record.id) {
    worker.outstanding.pop_front();
  } else {
    const auto entry = std::find_if(worker.outstanding.begin(), worker.outstanding.end(),
                                    [&](const auto& sent) { return sent.second == record.id; });
    if (entry != worker.outstanding.end()) worker.outstanding.erase(entry);
  }
  const auto kind =
      record.kind == TaskOutcome::kSucceeded ? TaskOutcome::kSucceeded : TaskOutcome::kRaised;
  ready.push_back(Ready{end_job(*job, record.id),
                        TaskOutcome{kind, SmallBytes(record.payload), 0}});
}

void PoolCore::check_workers() {
  std::vector<std::uint32_t> exited;
  {
    std::lock_guard lock(mutex_);
    awaiting_exits_ = closed_;
    for (std::uint32_t i = 0; i < workers_.size(); ++i) {
      if (workers_[i].running && workers_[i].process->exitcode().has_value()) exited.push_back(i);
      awaiting_exits_ = awaiting_exits_ && workers_[i].outstanding.empty();
    }
  }
  if (exited.empty()) return;
  // Results the dead workers put before dying come first: they are not lost work.
  std::vector<Ready> ready;
  Bytes message;
  while (results_->bytes().get_nowait(message) == RingStatus::kOk) {
    handle_results(std::span<const Bytes>(&message, 1), ready);
  }
  deliver(ready);

  std::vector<Ready> ended;  // staged results and failures
  std::lock_guard lock(mutex_);
  for (std::uint32_t index : exited) {
    Worker& worker = workers_[index];
    const int exit_code = *worker.process->exitcode();
    PoolOutbox& outbox = outboxes_[index];
    // The worker is gone, so its outbox holds still: results it answered and had not sent
    // are delivered from there (any of them it did send, and that were already delivered,
    // are skipped by id).
    const std::uint64_t claimed = worker.tasks->counters().gets;
    const std::uint64_t answered = take_staged_results(outbox, ended, results_from_dead_workers_);
    // Tasks claimed from its queue and never answered: workers take one at a time, so this
    // is the task it was running. (Answered ones may still sit in the result queue behind
    // other workers' messages: they are matched by id whenever they arrive.)
    for (auto entry = worker.outstanding.begin(); entry != worker.outstanding.end();) {
      const auto [sequence, id] = *entry;
      if (sequence < answered || sequence >= claimed) {
        ++entry;
        continue;
      }
      entry = worker.outstanding.erase(entry);
      if (Job* job = find_job(id)) {
        const std::string what = "worker " + std::to_string(worker.process->pid()) +
                                 (exit_code < 0 ? " was killed by signal " + std::to_string(-exit_code)
                                                : " exited with status " + std::to_string(exit_code)) +
                                 " while running the task";
        ended.push_back(Ready{end_job(*job, id), crashed_outcome(what, exit_code)});
      }
    }
    // Every claimed task is now accounted for; the replacement starts from there.
    outbox.answered.store(claimed, std::memory_order_relaxed);
    outbox.flushed.store(claimed, std::memory_order_relaxed);
    outbox.lending.store(pool_wire::kWorkerOwns, std::memory_order_relaxed);
    if (claimed == worker.claimed_before_start) {
      count_early_death(index, exit_code);
    } else {
      early_deaths_ = 0;
    }
    worker.running = false;
    worker.process.reset();
    if (terminated_ || (closed_ && worker.outstanding.empty())) continue;
    if (broken_.empty()) {
      try {
        start_worker(index);
        continue;
      } catch (const std::exception& error) {
        broken_ = std::string("Pool is broken: no replacement worker could be started: ") +
                  error.what();
      }
    }
    // No replacement: the worker's queued tasks cannot run.
    for (const auto& [sequence, id] : worker.outstanding) {
      if (Job* job = find_job(id)) {
        ended.push_back(Ready{end_job(*job, id), crashed_outcome(broken_, exit_code)});
      }
    }
    worker.outstanding.clear();
  }
  bool any_running = false;
  for (const Worker& worker : workers_) any_running = any_running || worker.running;
  if (!any_running) all_exited_.notify_all();
  deliver(ended);
}

void PoolCore::count_early_death(std::uint32_t index, int exit_code) {
  if (terminated_ || exit_code == 0) return;  // killed by us, or ended as asked
  if (++early_deaths_ < kEarlyDeathLimit || !broken_.empty()) return;
  const char* initializer_error = outboxes_[index].initializer_error;
  broken_ = "Pool is broken: " + std::to_string(early_deaths_) +
            " workers in a row died before taking a task (the last " +
            (exit_code < 0 ? "by signal " + std::to_string(-exit_code)
                           : "with status " + std::to_string(exit_code)) +
            ")" +
            (initializer_error[0] != '\0'
                 ? std::string("; the initializer threw: ") + initializer_error
                 : std::string());
}

// Empties `ready` (keeping its capacity).
void PoolCore::deliver(std::vector<Ready>& ready) {
  if (ready.empty()) return;
  callbacks_->items.enqueue_bulk(std::make_move_iterator(ready.begin()), ready.size());
  ready.clear();
}

void PoolCore::callback_loop() {
  constexpr std::size_t kCallbackBatch = 32;
  std::vector<Ready> batch(kCallbackBatch);
  for (;;) {
    const std::size_t taken = callbacks_->items.wait_dequeue_bulk(batch.begin(), batch.size());
    std::size_t sentinels = 0;
    for (std::size_t i = 0; i < taken; ++i) {
      if (batch[i].on_done) {
        run_callback(batch[i].on_done, batch[i].outcome);
        batch[i].on_done = Completion();  // the callback's captures are released now, not later
      } else {
        ++sentinels;
      }
    }
    if (sentinels == 0) continue;
    // One sentinel per callback thread: the extra ones this thread took belong to others.
    for (std::size_t i = 1; i < sentinels; ++i) callbacks_->items.enqueue(Ready{});
    return;
  }
}

void PoolCore::run_callback(Completion& on_done, TaskOutcome& outcome) noexcept {
  try {
    on_done(std::move(outcome));
  } catch (const std::exception& error) {
    callback_errors_.fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stderr, "ringfork: a Pool callback threw: %s\n", error.what());
  } catch (...) {
    callback_errors_.fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stderr, "ringfork: a Pool callback threw a non-std exception\n");
  }
}

void PoolCore::close() {
  check_owner("close");
  std::lock_guard lock(mutex_);
  closed_ = true;
  for (Worker& worker : workers_) worker.tasks->close();
  // An empty message (no result header, so skipped) wakes the dispatcher from its wait for
  // results, to look at the workers now. A full queue needs no wake: results are flowing.
  results_->bytes().put_nowait({});
}

void PoolCore::terminate() {
  std::vector<Ready> pending;
  check_owner("terminate");
  const std::string what = "the pool was terminated before the task finished";
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    terminated_ = true;
    for (Worker& worker : workers_) {
      worker.tasks->close();
      if (worker.running) worker.process->kill();
      worker.outstanding.clear();
    }
    for (std::uint32_t slot = 0; slot < jobs_.size(); ++slot) {
      Job& job = jobs_[slot];
      if (!job.live) continue;
      const std::uint64_t id = std::uint64_t{job.generation} << 32 | slot;
      pending.push_back(
          Ready{end_job(job, id), TaskOutcome{TaskOutcome::kTerminated, text_bytes(what), 0}});
    }
  }
  deliver(pending);
}

void PoolCore::join() {
  check_owner("join");
  std::lock_guard joining(join_mutex_);
  if (joined_) return;
  {
    std::unique_lock lock(mutex_);
    if (!closed_) throw std::logic_error("Pool.join() before close() or terminate()");
    all_exited_.wait(lock, [&] {
      for (const Worker& worker : workers_) {
        if (worker.running) return false;
      }
      return true;
    });
  }
  stop_dispatch_.store(true, std::memory_order_release);
  if (dispatcher_.joinable()) dispatcher_.join();
  for (std::size_t i = 0; i < callback_threads_.size(); ++i) callbacks_->items.enqueue(Ready{});
  for (std::thread& thread : callback_threads_) thread.join();
  callback_threads_.clear();
  // moodycamel keeps FIFO order per producer only: a stop sentinel (from this thread) may be
  // taken before completions the dispatcher queued earlier. Run whatever is left here.
  Ready item;
  while (callbacks_->items.try_dequeue(item)) {
    if (item.on_done) run_callback(item.on_done, item.outcome);
  }
  joined_ = true;
}

int PoolCore::live_workers() const {
  std::lock_guard lock(mutex_);
  int live = 0;
  for (const Worker& worker : workers_) live += worker.running && worker.process->is_alive();
  return live;
}

}  // namespace ringfork
