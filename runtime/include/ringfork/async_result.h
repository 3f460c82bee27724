// AsyncResult<R>: the result of a task submitted to a Pool, as multiprocessing.AsyncResult.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ringfork/deadline.h"
#include "ringfork/futex.h"

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
// The pool can run no more tasks: its workers kept dying before taking one (a failing
// initializer, say) or no replacement could be started. Thrown by submissions after that.
class PoolBroken : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// get(timeout) found no result in time (Python's multiprocessing.TimeoutError).
class TimeoutError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

// Written once by the thread that completes the task, read by any number of waiters. A
// futex word instead of a mutex and condition variable: completing costs one atomic exchange
// and a system call only when someone is asleep on the result.
template <class R>
struct ResultState {
  static constexpr std::uint32_t kPending = 0;
  static constexpr std::uint32_t kWaitedOn = 1;  // pending, and a waiter may be asleep
  static constexpr std::uint32_t kReady = 2;
  // The value and error are written before kReady is published and never after, so whoever
  // has seen kReady (acquire) reads them without a lock.
  std::atomic<std::uint32_t> phase{kPending};
  std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> value{};
  std::exception_ptr error;

  template <class... Value>
  void set_value(Value&&... value) {
    if constexpr (std::is_void_v<R>) {
      this->value = true;
    } else {
      this->value.emplace(std::forward<Value>(value)...);
    }
    publish();
  }
  void set_error(std::exception_ptr failure) noexcept {
    error = std::move(failure);
    publish();
  }
  bool is_ready() const noexcept {
    // acquire: pairs with publish(), so value and error are visible.
    return phase.load(std::memory_order_acquire) == kReady;
  }
  // True once ready; false if `deadline` passed first.
  bool wait_until(Deadline deadline) noexcept {
    std::uint32_t seen = phase.load(std::memory_order_acquire);
    while (seen != kReady) {
      // acquire on both outcomes: a kReady seen here publishes the value like is_ready().
      if (seen == kPending && !phase.compare_exchange_weak(seen, kWaitedOn, std::memory_order_acquire,
                                                           std::memory_order_acquire)) {
        continue;
      }
      if (futex_wait(phase, kWaitedOn, deadline) == FutexWaitResult::kTimedOut) return is_ready();
      seen = phase.load(std::memory_order_acquire);
    }
    return true;
  }

 private:
  void publish() noexcept {
    // acq_rel: release publishes value and error; the exchange returns kWaitedOn exactly when
    // a waiter announced itself before it, and that waiter is then woken.
    if (phase.exchange(kReady, std::memory_order_acq_rel) == kWaitedOn) futex_wake_all(phase);
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
    if (state_->error) std::rethrow_exception(state_->error);
    if constexpr (!std::is_void_v<R>) return *state_->value;
  }
  // Returns whether the result is ready.
  bool wait(std::chrono::duration<double> timeout = std::chrono::duration<double>(-1)) const {
    if (state_->is_ready()) return true;
    return state_->wait_until(Deadline::for_timeout(timeout.count()));
  }
  bool ready() const noexcept { return state_->is_ready(); }
  // Throws std::logic_error if not ready (Python raises ValueError).
  bool successful() const {
    if (!state_->is_ready()) throw std::logic_error("AsyncResult.successful() before it is ready");
    return !state_->error;
  }

 private:
  std::shared_ptr<detail::ResultState<R>> state_;
};

}  // namespace ringfork
