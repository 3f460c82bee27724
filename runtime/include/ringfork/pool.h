// Pool: multiprocessing.Pool for C++ - apply, apply_async with callbacks, map, map_async,
// imap, imap_unordered, starmap - over worker processes forked from the runtime's template.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ringfork/async_result.h"
#include "ringfork/deadline.h"
#include "ringfork/cross_thread_alloc.h"
#include "ringfork/pool_core.h"

namespace ringfork {

template <class R>
struct Callbacks {
  // Run in the parent, on a callback thread, before the AsyncResult becomes ready.
  std::function<void(const R&)> on_success;
  std::function<void(std::exception_ptr)> on_error;
};
template <>
struct Callbacks<void> {
  std::function<void()> on_success;
  std::function<void(std::exception_ptr)> on_error;
};

// Yields results one at a time: in order (imap) or as they finish (imap_unordered).
template <class R>
class ResultStream {
 public:
  struct State {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<std::optional<std::vector<R>>> chunks;  // imap: by index
    std::deque<std::vector<R>> finished;                // imap_unordered: by completion
    std::exception_ptr error;
    std::size_t chunks_done = 0;
    bool ordered = true;
    // Called once, on a callback thread, after the last chunk finished (map_async).
    std::function<void(State&)> on_complete;
  };
  explicit ResultStream(std::shared_ptr<State> state) : state_(std::move(state)) {}

  // The next result, or nullopt after the last; rethrows a task's failure; throws
  // TimeoutError if the timeout passes (negative: wait forever).
  std::optional<R> next(std::chrono::duration<double> timeout = std::chrono::duration<double>(-1)) {
    // One deadline for the whole call: each chunk that finishes wakes every waiter, and a
    // timeout restarted on each wake-up could stretch without end.
    const Deadline deadline = Deadline::for_timeout(timeout.count());
    std::unique_lock lock(state_->mutex);
    for (;;) {
      if (position_ < buffered_.size()) return std::move(buffered_[position_++]);
      if (state_->error) std::rethrow_exception(state_->error);
      if (state_->ordered) {
        if (next_chunk_ == state_->chunks.size()) return std::nullopt;
        if (state_->chunks[next_chunk_]) {
          take(std::move(*state_->chunks[next_chunk_]));
          state_->chunks[next_chunk_++].reset();
          continue;
        }
      } else {
        if (!state_->finished.empty()) {
          take(std::move(state_->finished.front()));
          state_->finished.pop_front();
          ++next_chunk_;
          continue;
        }
        if (next_chunk_ == state_->chunks.size()) return std::nullopt;
      }
      if (deadline.is_never()) {
        state_->changed.wait(lock);
      } else if (deadline.expired()) {
        throw TimeoutError("ResultStream.next timed out");
      } else {
        state_->changed.wait_for(lock, deadline.remaining());
      }
    }
  }

 private:
  void take(std::vector<R>&& chunk) {
    buffered_ = std::move(chunk);
    position_ = 0;
  }
  std::shared_ptr<State> state_;
  std::vector<R> buffered_;
  std::size_t position_ = 0;
  std::size_t next_chunk_ = 0;
};

// Contract: made by the process that owns the Runtime; its methods may be called from any
// thread of that process. Tasks run in `processes` workers forked from the template; a
// worker that crashes fails its running task with WorkerCrashed and is replaced; an
// exception thrown by a task reaches the caller as RemoteError. close() then join() waits
// for the queued work; terminate() kills the workers and fails pending tasks with
// PoolTerminated; destroying a Pool that was not joined terminates it (as `with Pool()`).
// A worker that finds tasks queued back to back sends their results together: a result
// waits at most 50 us or 64 results for company; if a slow task follows at once, the parent
// takes the results staged before it from the worker's outbox within about 5 ms.
// Functions must be plain functions; arguments and results use ringfork::Codec.
class Pool {
 public:
  Pool(Runtime& runtime, int processes, PoolOptions options = {})
      : core_(std::make_unique<PoolCore>(runtime, processes, std::move(options))) {}

  template <class R, class... Params, class... Args>
  AsyncResult<R> apply_async(R (*function)(Params...), Args&&... args) {
    return apply_async(Callbacks<R>{}, function, std::forward<Args>(args)...);
  }

  template <class R, class... Params, class... Args>
  AsyncResult<R> apply_async(Callbacks<R> callbacks, R (*function)(Params...), Args&&... args) {
    static_assert(sizeof...(Params) == sizeof...(Args), "one argument per parameter");
    // Per thread, so that its capacity is reused by every apply_async from that thread.
    thread_local ArgWriter arguments;
    arguments.buffer().clear();
    encode_all<std::decay_t<Params>...>(arguments, std::forward<Args>(args)...);
    // One allocation holds the result and the callbacks; the completion shares it.
    auto call = std::allocate_shared<ApplyCall<R>>(CrossThreadAllocator<ApplyCall<R>>());
    call->callbacks = std::move(callbacks);
    core_->submit(&detail::call_function<R, Params...>, reinterpret_cast<std::uintptr_t>(function),
                  arguments.buffer(), PoolCompletion(&run_apply_call<R>, call));
    if (arguments.buffer().capacity() > (std::size_t{1} << 20)) {
      std::vector<std::byte>().swap(arguments.buffer());  // one huge call must not pin its size
    }
    return AsyncResult<R>(std::shared_ptr<detail::ResultState<R>>(call, &call->state));
  }

  template <class R, class... Params, class... Args>
  R apply(R (*function)(Params...), Args&&... args) {
    return apply_async(function, std::forward<Args>(args)...).get();
  }

  template <class R, class Param, class Item>
  AsyncResult<std::vector<R>> map_async(R (*function)(Param), const std::vector<Item>& items,
                                        std::size_t chunksize = 1) {
    using Value = std::decay_t<R>;
    auto state = std::make_shared<detail::ResultState<std::vector<Value>>>();
    submit_chunks<R, std::decay_t<Param>>(&detail::call_on_chunk<R, Param>,
                                          reinterpret_cast<std::uintptr_t>(function), items,
                                          chunksize, true, concatenate_into<Value>(state));
    return AsyncResult<std::vector<Value>>(std::move(state));
  }

  template <class R, class Param, class Item>
  std::vector<std::decay_t<R>> map(R (*function)(Param), const std::vector<Item>& items,
                                   std::size_t chunksize = 1) {
    return map_async(function, items, chunksize).get();
  }

  template <class R, class Param, class Item>
  ResultStream<std::decay_t<R>> imap(R (*function)(Param), const std::vector<Item>& items,
                                     std::size_t chunksize = 1) {
    return ResultStream<std::decay_t<R>>(submit_chunks<R, std::decay_t<Param>>(
        &detail::call_on_chunk<R, Param>, reinterpret_cast<std::uintptr_t>(function), items,
        chunksize, true));
  }

  template <class R, class Param, class Item>
  ResultStream<std::decay_t<R>> imap_unordered(R (*function)(Param), const std::vector<Item>& items,
                                               std::size_t chunksize = 1) {
    return ResultStream<std::decay_t<R>>(submit_chunks<R, std::decay_t<Param>>(
        &detail::call_on_chunk<R, Param>, reinterpret_cast<std::uintptr_t>(function), items,
        chunksize, false));
  }

  template <class R, class... Params>
  std::vector<std::decay_t<R>> starmap(R (*function)(Params...),
                                       const std::vector<std::tuple<std::decay_t<Params>...>>& items,
                                       std::size_t chunksize = 1) {
    using Value = std::decay_t<R>;
    auto state = std::make_shared<detail::ResultState<std::vector<Value>>>();
    submit_chunks<R, std::tuple<std::decay_t<Params>...>>(
        &detail::call_on_star_chunk<R, Params...>, reinterpret_cast<std::uintptr_t>(function),
        items, chunksize, true, concatenate_into<Value>(state));
    return AsyncResult<std::vector<Value>>(std::move(state)).get();
  }

  void close() { core_->close(); }
  void terminate() { core_->terminate(); }
  void join() { core_->join(); }
  PoolCore& core() noexcept { return *core_; }

 private:
  template <class R>
  struct ApplyCall {
    detail::ResultState<R> state;
    Callbacks<R> callbacks;
  };
  template <class R>
  static void run_apply_call(void* context, TaskOutcome&& outcome) {
    auto& call = *static_cast<ApplyCall<R>*>(context);
    complete(call.state, call.callbacks, std::move(outcome));
    call.callbacks = {};  // their captures go now, not when the last AsyncResult copy does
  }

  static std::exception_ptr failure_of(TaskOutcome& outcome) {
    if (outcome.kind == TaskOutcome::kSucceeded) return nullptr;
    const std::string text(reinterpret_cast<const char*>(outcome.payload.data()),
                           outcome.payload.size());
    switch (outcome.kind) {
      case TaskOutcome::kRaised:
        return std::make_exception_ptr(RemoteError(text));
      case TaskOutcome::kCrashed:
        return std::make_exception_ptr(WorkerCrashed(text, outcome.exit_code));
      case TaskOutcome::kTerminated:
        return std::make_exception_ptr(PoolTerminated(text));
      case TaskOutcome::kSucceeded:
        break;
    }
    return nullptr;
  }

  // Runs on a callback thread: decode, run the user's callback, then make the result ready.
  template <class R>
  static void complete(detail::ResultState<R>& state, const Callbacks<R>& callbacks,
                       TaskOutcome&& outcome) {
    std::exception_ptr failure = failure_of(outcome);
    if constexpr (std::is_void_v<R>) {
      if (!failure) {
        struct Ready {
          detail::ResultState<R>& state;
          ~Ready() { state.set_value(); }
        } ready{state};
        if (callbacks.on_success) callbacks.on_success();
        return;
      }
    } else {
      if (!failure) {
        std::optional<std::decay_t<R>> value;
        try {
          ArgReader in(outcome.payload, {});
          value.emplace(Codec<std::decay_t<R>>::decode(in));
        } catch (const std::exception& error) {
          failure = std::make_exception_ptr(RemoteError(std::string("undecodable result: ") + error.what()));
        }
        if (value) {
          struct Ready {
            detail::ResultState<R>& state;
            std::optional<std::decay_t<R>>& value;
            ~Ready() { state.set_value(std::move(*value)); }
          } ready{state, value};
          if (callbacks.on_success) callbacks.on_success(*value);
          return;
        }
      }
    }
    struct Failed {
      detail::ResultState<R>& state;
      std::exception_ptr failure;
      ~Failed() { state.set_error(failure); }
    } failed{state, failure};
    if (callbacks.on_error) callbacks.on_error(failure);
  }

  template <class R, class Param, class Item>
  std::shared_ptr<typename ResultStream<std::decay_t<R>>::State> submit_chunks(
      PoolTrampoline trampoline, std::uintptr_t function, const std::vector<Item>& items,
      std::size_t chunksize, bool ordered,
      std::function<void(typename ResultStream<std::decay_t<R>>::State&)> on_complete = {}) {
    using Value = std::decay_t<R>;
    using Stream = typename ResultStream<Value>::State;
    if (chunksize == 0) chunksize = 1;
    // One chunk at most: a chunksize near SIZE_MAX ("all in one") must not wrap the count
    // of chunks below to 0 and submit nothing.
    chunksize = std::min(chunksize, std::max<std::size_t>(items.size(), 1));
    auto stream = std::make_shared<Stream>();
    stream->ordered = ordered;
    stream->on_complete = std::move(on_complete);
    const std::size_t chunks = (items.size() + chunksize - 1) / chunksize;
    stream->chunks.resize(chunks);
    for (std::size_t c = 0; c < chunks; ++c) {
      const auto begin = items.begin() + static_cast<std::ptrdiff_t>(c * chunksize);
      const auto end = items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), (c + 1) * chunksize));
      ArgWriter writer;
      Codec<std::vector<Param>>::encode(writer, std::vector<Param>(begin, end));
      core_->submit(trampoline, function, writer.buffer(), [stream, c](TaskOutcome&& outcome) {
        std::exception_ptr failure = failure_of(outcome);
        std::vector<Value> results;
        if (!failure) {
          try {
            ArgReader in(outcome.payload, {});
            results = Codec<std::vector<Value>>::decode(in);
          } catch (const std::exception& error) {
            failure = std::make_exception_ptr(
                RemoteError(std::string("undecodable result: ") + error.what()));
          }
        }
        bool last = false;
        {
          std::lock_guard lock(stream->mutex);
          if (failure) {
            if (!stream->error) stream->error = failure;
          } else if (stream->ordered) {
            stream->chunks[c] = std::move(results);
          } else {
            stream->finished.push_back(std::move(results));
          }
          last = ++stream->chunks_done == stream->chunks.size();
          stream->changed.notify_all();
        }
        if (last && stream->on_complete) stream->on_complete(*stream);
      });
    }
    if (chunks == 0 && stream->on_complete) stream->on_complete(*stream);
    return stream;
  }

  // map_async's completion: the chunks, in order, as one vector (or the first failure).
  template <class Value>
  static std::function<void(typename ResultStream<Value>::State&)> concatenate_into(
      std::shared_ptr<detail::ResultState<std::vector<Value>>> state) {
    return [state = std::move(state)](typename ResultStream<Value>::State& stream) {
      std::unique_lock lock(stream.mutex);
      if (stream.error) {
        const std::exception_ptr failure = stream.error;
        lock.unlock();
        state->set_error(failure);
        return;
      }
      std::vector<Value> all;
      for (auto& chunk : stream.chunks) {
        for (auto& value : *chunk) all.push_back(std::move(value));
      }
      lock.unlock();
      state->set_value(std::move(all));
    };
  }

  std::unique_ptr<PoolCore> core_;
};

}  // namespace ringfork
