// AsyncResult<R>: the result of a task submitted to a Pool, as multiprocessing.AsyncResult.
#pragma once

#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace ringfork {

// The task's function threw in the worker; what() carries the worker's message.
class RemoteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The worker running the task died (signal, abort, _exit) before finishing it.
class WorkerCrashed : public std::runtime_error {
 public:
  WorkerCrashed(const std::string& what, int exit_code)
      : std::runtime_error(what), exit_code_(exit_code) {}
  // As Process::exitcode(): the exit status, or -N for signal N.
  int exit_code() const noexcept { return exit_code_; }

 private:
  int exit_code_;
};
// The pool was terminated before the task finished.
class PoolTerminated : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// get(timeout) found no result in time (Python's multiprocessing.TimeoutError).
class TimeoutError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

template <class R>
struct ResultState {
  std::mutex mutex;
  std::condition_variable ready_signal;
  bool ready = false;
  std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> value{};
  std::exception_ptr error;

  template <class... Value>
  void set_value(Value&&... value) {
    std::lock_guard lock(mutex);
    if constexpr (std::is_void_v<R>) {
      this->value = true;
    } else {
      this->value.emplace(std::forward<Value>(value)...);
    }
    ready = true;
    ready_signal.notify_all();
  }
  void set_error(std::exception_ptr failure) {
    std::lock_guard lock(mutex);
    error = std::move(failure);
    ready = true;
    ready_signal.notify_all();
  }
};

}  // namespace detail

// Contract: any thread may wait on or read an AsyncResult; copies share the result. get()
// rethrows the task's failure (RemoteError, WorkerCrashed, PoolTerminated) and throws
// TimeoutError if the timeout passes first; a negative timeout waits forever.
template <class R>
class AsyncResult {
 public:
  explicit AsyncResult(std::shared_ptr<detail::ResultState<R>> state) : state_(std::move(state)) {}

  R get(std::chrono::duration<double> timeout = std::chrono::duration<double>(-1)) const {
    if (!wait(timeout)) throw TimeoutError("AsyncResult.get timed out");
    std::lock_guard lock(state_->mutex);
    if (state_->error) std::rethrow_exception(state_->error);
    if constexpr (!std::is_void_v<R>) return *state_->value;
  }
  // Returns whether the result is ready.
  bool wait(std::chrono::duration<double> timeout = std::chrono::duration<double>(-1)) const {
    std::unique_lock lock(state_->mutex);
    if (timeout.count() < 0) {
      state_->ready_signal.wait(lock, [&] { return state_->ready; });
      return true;
    }
    return state_->ready_signal.wait_for(lock, timeout, [&] { return state_->ready; });
  }
  bool ready() const {
    std::lock_guard lock(state_->mutex);
    return state_->ready;
  }
  // Throws std::logic_error if not ready (Python raises ValueError).
  bool successful() const {
    std::lock_guard lock(state_->mutex);
    if (!state_->ready) throw std::logic_error("AsyncResult.successful() before it is ready");
    return !state_->error;
  }

 private:
  std::shared_ptr<detail::ResultState<R>> state_;
};

}  // namespace ringfork
