#include "ringfork/pool_core.h"

#include <concurrentqueue/blockingconcurrentqueue.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace ringfork {
namespace {

// Task message: [id][trampoline][function][arguments...]
// Result message: [id][worker][kind][payload...]
constexpr std::size_t kTaskHeader = 3 * sizeof(std::uint64_t);
constexpr std::size_t kResultHeader = sizeof(std::uint64_t) + sizeof(std::uint32_t) + 1;

Bytes text_bytes(const std::string& text) {
  const auto* begin = reinterpret_cast<const std::byte*>(text.data());
  return Bytes(begin, begin + text.size());
}

TaskOutcome crashed_outcome(const std::string& what, int exit_code) {
  return TaskOutcome{TaskOutcome::kCrashed, text_bytes(what), exit_code};
}

Bytes error_result(std::uint64_t id, std::uint32_t worker, const std::string& message) {
  ArgWriter out;
  out.write_raw(id);
  out.write_raw(worker);
  out.write_raw<std::uint8_t>(TaskOutcome::kRaised);
  out.write_bytes(message.data(), message.size());
  return std::move(out.buffer());
}

// What every pool worker runs: take a task, run it, put its result, until the task queue is
// closed and drained (or maxtasksperchild is reached).
int pool_worker_main(Queue<Bytes> tasks, Queue<Bytes> results, std::uint32_t worker,
                     std::uint64_t max_tasks, Bytes initializer, std::uint64_t answered_offset) {
  const DecodeContext context = Runtime::current()->decode_context();
  auto* answered = Runtime::current()->segment().at(
      Offset<std::atomic<std::uint64_t>>{answered_offset + worker * sizeof(std::uint64_t)});
  if (!initializer.empty()) {
    ArgReader in(initializer, context);
    const auto trampoline = reinterpret_cast<PoolTrampoline>(in.read_raw<std::uint64_t>());
    const auto function = in.read_raw<std::uint64_t>();
    ArgWriter ignored;
    trampoline(function, in, ignored);  // an exception ends the worker with exit code 1
  }
  for (std::uint64_t done = 0; max_tasks == 0 || done < max_tasks; ++done) {
    Bytes task;
    try {
      task = tasks.get();
    } catch (const QueueClosed&) {
      return 0;
    }
    if (task.size() < kTaskHeader) continue;  // not a task: nothing to answer
    std::uint64_t header[3];
    std::memcpy(header, task.data(), sizeof(header));
    ArgReader in(std::span<const std::byte>(task).subspan(kTaskHeader), context);
    ArgWriter out;
    out.write_raw(header[0]);
    out.write_raw(worker);
    out.write_raw<std::uint8_t>(TaskOutcome::kSucceeded);
    try {
      reinterpret_cast<PoolTrampoline>(header[1])(header[2], in, out);
      results.put(out.buffer());
    } catch (const std::exception& error) {
      results.put(error_result(header[0], worker, error.what()));
    } catch (...) {
      results.put(error_result(header[0], worker, "an exception not derived from std::exception"));
    }
    // release: the result is in the queue before the parent may count it as answered.
    answered->fetch_add(1, std::memory_order_release);
  }
  return 0;
}

}  // namespace

struct PoolCore::CallbackQueue {
  struct Item {
    Completion on_done;
    TaskOutcome outcome;
  };
  moodycamel::BlockingConcurrentQueue<Item*> items;
};

PoolCore::PoolCore(Runtime& runtime, int processes, PoolOptions options)
    : runtime_(runtime), processes_(processes), options_(std::move(options)) {
  if (processes < 1) {
    throw std::invalid_argument("Pool needs at least one process, got " + std::to_string(processes));
  }
  if (options_.callback_threads < 1) {
    throw std::invalid_argument("PoolOptions.callback_threads must be at least 1");
  }
  results_ = std::make_unique<Queue<Bytes>>(Queue<Bytes>::create(runtime.arena(), runtime.pool()));
  answered_offset_ = runtime.arena().allocate_or_throw(
      sizeof(std::uint64_t) * static_cast<std::size_t>(processes), kCacheLineSize, "pool counters");
  answered_ = runtime.segment().at(Offset<std::atomic<std::uint64_t>>{answered_offset_},
                                   static_cast<std::size_t>(processes));
  workers_.resize(static_cast<std::size_t>(processes));
  {
    std::lock_guard lock(mutex_);
    for (std::uint32_t i = 0; i < workers_.size(); ++i) {
      workers_[i].tasks =
          std::make_unique<Queue<Bytes>>(Queue<Bytes>::create(runtime.arena(), runtime.pool()));
      start_worker(i);
    }
  }
  callbacks_ = std::make_unique<CallbackQueue>();
  for (int i = 0; i < options_.callback_threads; ++i) {
    callback_threads_.emplace_back([this] { callback_loop(); });
  }
  dispatcher_ = std::thread([this] { dispatch_loop(); });
}

PoolCore::~PoolCore() {
  if (joined_) return;
  terminate();
  join();
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
  worker.process = std::make_unique<Process>(runtime_, &pool_worker_main, *worker.tasks, *results_,
                                             index, std::uint64_t{options_.maxtasksperchild},
                                             initializer, answered_offset_);
  worker.process->set_name("PoolWorker-" + std::to_string(index));
  worker.process->start();
  worker.running = true;
  workers_started_.fetch_add(1, std::memory_order_relaxed);
}

void PoolCore::submit(PoolTrampoline trampoline, std::uintptr_t function,
                      const std::vector<std::byte>& arguments, Completion on_done) {
  Bytes message(kTaskHeader + arguments.size());
  std::lock_guard lock(mutex_);
  if (closed_) throw std::logic_error("Pool: task submitted after close() or terminate()");
  // The worker with the least outstanding work takes the task.
  std::uint32_t chosen = 0;
  for (std::uint32_t i = 1; i < workers_.size(); ++i) {
    if (workers_[i].outstanding.size() < workers_[chosen].outstanding.size()) chosen = i;
  }
  const std::uint64_t id = next_id_++;
  const std::uint64_t header[3] = {id, reinterpret_cast<std::uint64_t>(trampoline), function};
  std::memcpy(message.data(), header, sizeof(header));
  if (!arguments.empty()) std::memcpy(message.data() + kTaskHeader, arguments.data(), arguments.size());
  // Under the lock, so that the queue's order and `outstanding`'s order agree.
  workers_[chosen].tasks->put(message);
  workers_[chosen].outstanding.emplace_back(workers_[chosen].sent++, id);
  jobs_.emplace(id, Job{chosen, std::move(on_done)});
}

void PoolCore::dispatch_loop() {
  ByteQueue& results = results_->bytes();
  Bytes message;
  while (!stop_dispatch_.load(std::memory_order_acquire)) {
    bool got_any = false;  // results first, then a look at the workers, every round
    try {
      results.get(message, Deadline::after(std::chrono::milliseconds(5)));
      handle_result(message);
      got_any = true;
      while (results.get_nowait(message) == RingStatus::kOk) handle_result(message);
    } catch (const Empty&) {
    }
    (void)got_any;
    check_workers();
  }
}

void PoolCore::handle_result(const Bytes& message) {
  if (message.size() < kResultHeader) return;
  std::uint64_t id = 0;
  std::memcpy(&id, message.data(), sizeof(id));
  const auto kind = static_cast<std::uint8_t>(message[kResultHeader - 1]);
  Completion on_done;
  {
    std::lock_guard lock(mutex_);
    const auto job = jobs_.find(id);
    if (job == jobs_.end()) return;  // already failed (the pool was terminated)
    Worker& worker = workers_[job->second.worker];
    for (auto it = worker.outstanding.begin(); it != worker.outstanding.end(); ++it) {
      if (it->second == id) {
        worker.outstanding.erase(it);
        break;
      }
    }
    on_done = std::move(job->second.on_done);
    jobs_.erase(job);
  }
  TaskOutcome outcome{kind == TaskOutcome::kSucceeded ? TaskOutcome::kSucceeded : TaskOutcome::kRaised,
                      Bytes(message.begin() + kResultHeader, message.end()), 0};
  deliver(std::move(on_done), std::move(outcome));
}

void PoolCore::check_workers() {
  std::vector<std::uint32_t> exited;
  {
    std::lock_guard lock(mutex_);
    for (std::uint32_t i = 0; i < workers_.size(); ++i) {
      if (workers_[i].running && workers_[i].process->exitcode().has_value()) exited.push_back(i);
    }
  }
  if (exited.empty()) return;
  // Results the dead workers put before dying come first: they are not lost work.
  Bytes message;
  while (results_->bytes().get_nowait(message) == RingStatus::kOk) handle_result(message);

  std::vector<std::pair<Completion, TaskOutcome>> failed;
  std::lock_guard lock(mutex_);
  for (std::uint32_t index : exited) {
    Worker& worker = workers_[index];
    const int exit_code = *worker.process->exitcode();
    // A task claimed from this worker's queue and never answered is the one it was running:
    // workers take tasks one at a time, so it is the last one claimed. (Its earlier results
    // may still sit in the result queue behind other workers' messages: they are matched
    // by id whenever they arrive.)
    const std::uint64_t claimed = worker.tasks->counters().gets;
    const std::uint64_t answered = answered_[index].load(std::memory_order_acquire);
    const auto running_task =
        std::find_if(worker.outstanding.begin(), worker.outstanding.end(),
                     [&](const auto& entry) { return entry.first + 1 == claimed; });
    if (claimed > answered && running_task != worker.outstanding.end()) {
      const std::uint64_t id = running_task->second;
      worker.outstanding.erase(running_task);
      const auto job = jobs_.find(id);
      if (job != jobs_.end()) {
        const std::string what = "worker " + std::to_string(worker.process->pid()) +
                                 (exit_code < 0 ? " was killed by signal " + std::to_string(-exit_code)
                                                : " exited with status " + std::to_string(exit_code)) +
                                 " while running the task";
        failed.emplace_back(std::move(job->second.on_done), crashed_outcome(what, exit_code));
        jobs_.erase(job);
      }
    }
    worker.running = false;
    worker.process.reset();
    if (terminated_ || (closed_ && worker.outstanding.empty())) continue;
    try {
      start_worker(index);
    } catch (const std::exception& error) {
      // No replacement (the template is gone): the worker's queued tasks cannot run.
      const std::string what = std::string("no replacement worker: ") + error.what();
      for (const auto& [sequence, id] : worker.outstanding) {
        const auto job = jobs_.find(id);
        if (job == jobs_.end()) continue;
        failed.emplace_back(std::move(job->second.on_done), crashed_outcome(what, exit_code));
        jobs_.erase(job);
      }
      worker.outstanding.clear();
    }
  }
  bool any_running = false;
  for (const Worker& worker : workers_) any_running = any_running || worker.running;
  if (!any_running) all_exited_.notify_all();
  for (auto& [on_done, outcome] : failed) deliver(std::move(on_done), std::move(outcome));
}

void PoolCore::deliver(Completion&& on_done, TaskOutcome&& outcome) {
  callbacks_->items.enqueue(new CallbackQueue::Item{std::move(on_done), std::move(outcome)});
}

void PoolCore::callback_loop() {
  for (;;) {
    CallbackQueue::Item* item = nullptr;
    callbacks_->items.wait_dequeue(item);
    if (item == nullptr) return;  // the stop sentinel
    std::unique_ptr<CallbackQueue::Item> owned(item);
    run_callback(owned->on_done, owned->outcome);
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
  std::lock_guard lock(mutex_);
  closed_ = true;
  for (Worker& worker : workers_) worker.tasks->close();
}

void PoolCore::terminate() {
  std::vector<Completion> pending;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    terminated_ = true;
    for (Worker& worker : workers_) {
      worker.tasks->close();
      if (worker.running) worker.process->kill();
      worker.outstanding.clear();
    }
    for (auto& [id, job] : jobs_) pending.push_back(std::move(job.on_done));
    jobs_.clear();
  }
  const std::string what = "the pool was terminated before the task finished";
  for (Completion& on_done : pending) {
    deliver(std::move(on_done), TaskOutcome{TaskOutcome::kTerminated, text_bytes(what), 0});
  }
}

void PoolCore::join() {
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
  for (std::size_t i = 0; i < callback_threads_.size(); ++i) callbacks_->items.enqueue(nullptr);
  for (std::thread& thread : callback_threads_) thread.join();
  callback_threads_.clear();
  // moodycamel keeps FIFO order per producer only: a stop sentinel (from this thread) may be
  // taken before completions the dispatcher queued earlier. Run whatever is left here.
  CallbackQueue::Item* item = nullptr;
  while (callbacks_->items.try_dequeue(item)) {
    if (item == nullptr) continue;
    std::unique_ptr<CallbackQueue::Item> owned(item);
    run_callback(owned->on_done, owned->outcome);
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
