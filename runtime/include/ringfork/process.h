// Process: multiprocessing.Process for C++ - a function and its arguments run in a worker
// forked from the runtime's template (or, with the direct start method, from the caller).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ringfork/runtime.h"
#include "ringfork/serialize.h"

namespace ringfork {

enum class StartMethod {
  // Like Python's "forkserver": the worker is forked from the template made when the
  // Runtime was constructed, so it starts small and inherits none of the caller's threads,
  // locks or memory. Takes a plain function and serialisable arguments.
  kTemplate,
  // Like Python's "fork": the worker is forked from the caller, so it may run any callable,
  // including a lambda capturing local state. Caveats: the fork happens on the runtime's
  // reaper thread (a child dies with the thread that forked it, and that one lives as long
  // as the Runtime), so in the child thread_local variables are that thread's; and only it
  // exists in the child, so a lock another thread held at fork() stays locked there forever
  // (your own; glibc's malloc and stdio are reset); the child should do little more than
  // run its callable.
  kDirect,
};

namespace detail {

std::string describe_exception(std::exception_ptr error);

template <class R, class... Params>
int run_worker_function(std::uintptr_t function, std::span<const std::byte> args,
                        const DecodeContext& context) noexcept {
  try {
    auto* target = reinterpret_cast<R (*)(Params...)>(function);
    ArgReader reader(args, context);
    auto values = decode_all<Params...>(reader);
    if constexpr (std::is_integral_v<R>) {
      return static_cast<int>(std::apply(target, std::move(values)));
    } else {
      std::apply(target, std::move(values));
      return 0;
    }
  } catch (...) {
    // Python prints the traceback and exits with 1; we print the exception.
    std::fprintf(stderr, "ringfork: process %d failed: %s\n", static_cast<int>(::getpid()),
                 describe_exception(std::current_exception()).c_str());
    return 1;
  }
}

}  // namespace detail

// Contract: made, started, joined and signalled by the process that made it (join from any
// other process throws std::logic_error); one thread at a time per Process. start() twice,
// join() before start() and the like throw std::logic_error. The worker exits with the
// function's return value (an integer result; 0 for other results), 1 after an uncaught
// exception (printed on stderr), or -N in exitcode() when killed by signal N. Workers are
// always reaped (no zombies, joined or not) and die with their parent (no orphans).
// Destroying a Process does not stop its worker, as in Python. If the template dies, its
// workers die with it and report exitcode() -9 (SIGKILL).
class Process {
 public:
  // Template start: `function` must be a plain function (not a capturing lambda); `args`
  // are encoded now (trivially copyable values, strings, vectors, ringfork queues, or types
  // with a ringfork::Codec).
  template <class R, class... Params, class... Args>
  Process(Runtime& runtime, R (*function)(Params...), Args&&... args)
      : runtime_(&runtime),
        method_(StartMethod::kTemplate),
        function_(reinterpret_cast<std::uintptr_t>(function)),
        trampoline_(&detail::run_worker_function<R, Params...>) {
    static_assert(sizeof...(Params) == sizeof...(Args),
                  "Process: pass exactly one argument per parameter of the function");
    ArgWriter writer;
    encode_all<std::decay_t<Params>...>(writer, std::forward<Args>(args)...);
    args_ = std::move(writer.buffer());
    name_ = default_name();
  }

  // Direct start: any callable returning int (the exit code) or void.
  template <class Body>
    requires std::is_invocable_v<Body&>
  Process(Runtime& runtime, Body body, StartMethod method)
      : runtime_(&runtime), method_(method), name_(default_name()) {
    if (method != StartMethod::kDirect) {
      throw std::invalid_argument("a callable Process needs StartMethod::kDirect; for the "
                                  "template pass a plain function and its arguments");
    }
    body_ = [body = std::move(body)]() mutable -> int {
      if constexpr (std::is_integral_v<std::invoke_result_t<Body&>>) {
        return static_cast<int>(body());
      } else {
        body();
        return 0;
      }
    };
  }

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) = delete;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  void set_name(std::string name);
  const std::string& name() const noexcept { return name_; }

  void start();
  // Waits for the worker to end. Returns false if `timeout` passed first (negative: wait
  // forever, as Python's join(None)).
  bool join(std::chrono::duration<double> timeout = std::chrono::duration<double>(-1));
  bool is_alive() const;
  void terminate();  // SIGTERM
  void kill();       // SIGKILL
  std::optional<int> exitcode() const;
  pid_t pid() const noexcept { return pid_; }

 private:
  static std::string default_name();
  pid_t start_from_template();
  void check_owner(const char* operation) const;
  // The template reaps its workers; once it is gone nobody will, and they die with it
  // (PR_SET_PDEATHSIG SIGKILL). Records that exit (as -SIGKILL) once the worker is gone, so
  // that join() and exitcode() do not wait forever.
  void settle_if_orphaned() const;
  void send(int signal_number);

  Runtime* runtime_;
  StartMethod method_;
  std::string name_;
  std::uintptr_t function_ = 0;
  WorkerTrampoline trampoline_ = nullptr;
  std::vector<std::byte> args_;
  std::function<int()> body_;
  pid_t creator_ = ::getpid();
  bool started_ = false;
  std::uint32_t entry_ = 0;
  pid_t pid_ = 0;
  int pidfd_ = -1;
};

}  // namespace ringfork
