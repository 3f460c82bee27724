// Helpers for cross-process Google Benchmark suites: shared memory, a forked peer that is
// always reaped, CPU pinning, message stamping/checking, latency percentiles and the timed
// loop of a polling ping-pong.
//
// The pattern every cross-process benchmark follows (see baselines_bench.cpp):
//
//   static void BM_Thing(benchmark::State& state) {
//     const std::int64_t n = state.max_iterations;   // known before fork
//     SharedRegion shm(bytes);                        // MAP_SHARED: the child sees it
//     CpuPair cpus = pick_cpus();                     // different cores when 2+ exist
//     ScopedPin pin(cpus.producer);
//     ForkedPeer consumer([&] { ...; return mismatches == 0 ? 0 : 1; }, cpus.consumer);
//     ...wait until the consumer is ready (a flag in shm)...
//     while (state.KeepRunningBatch(n)) {            // one timed batch of exactly n
//       for (i < n) put(i);
//       ...wait for the consumer's "done" (so the drain is timed too)...
//     }
//     finish_peer(state, consumer, n);               // SkipWithError if the child failed
//   }
//   BENCHMARK(BM_Thing)->UseRealTime();              // the parent's CPU time is not the cost
//
// The consumer checks every message (check_message) and exits non-zero on any mismatch.
// Register cross-process benchmarks with UseRealTime() (or UseManualTime()): CPU time counts
// only the parent, so a sleeping parent would otherwise show an absurd rate.
#pragma once

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "ringfork/cache_line.h"
#include "ringfork/deadline.h"

namespace ringfork::bench {

// How long any benchmark wait may take before the run is declared hung: generous, since the
// machine is shared, but finite, so a broken peer fails a benchmark instead of the whole run.
inline constexpr std::chrono::seconds kWatchdog{60};

// An anonymous MAP_SHARED mapping: shared with every child forked after it is made.
// Zero-filled. Move-only; unmapped on destruction. Throws std::system_error on failure.
class SharedRegion {
 public:
  explicit SharedRegion(std::size_t bytes) : bytes_(round_up_to_page(bytes)) {
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap shared");
    base_ = static_cast<std::byte*>(p);
  }
  SharedRegion(SharedRegion&& other) noexcept
      : base_(std::exchange(other.base_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  SharedRegion& operator=(SharedRegion&&) = delete;
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  ~SharedRegion() {
    if (base_ != nullptr) munmap(base_, bytes_);
  }

  std::byte* data() const noexcept { return base_; }
  std::size_t size() const noexcept { return bytes_; }

  // Placement-constructs a T at `offset` (T must suit shared memory: no pointers inside).
  template <class T, class... Args>
  T* construct(std::size_t offset = 0, Args&&... args) {
    static_assert(std::is_standard_layout_v<T>, "objects in shared memory need a fixed layout");
    if (offset % alignof(T) != 0 || offset + sizeof(T) > bytes_) {
      throw std::invalid_argument("SharedRegion::construct: object does not fit at offset");
    }
    return new (base_ + offset) T(std::forward<Args>(args)...);
  }

  // Pre-faults every page so page faults are not timed.
  void prefault() noexcept {
    for (std::size_t i = 0; i < bytes_; i += 4096) {
      reinterpret_cast<volatile std::byte*>(base_)[i] = std::byte{0};
    }
  }

 private:
  static std::size_t round_up_to_page(std::size_t bytes) {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    return (std::max<std::size_t>(bytes, 1) + page - 1) / page * page;
  }
  std::byte* base_ = nullptr;
  std::size_t bytes_ = 0;
};

// ---- CPU pinning -----------------------------------------------------------------------

// The cores a producer and a consumer should run on: the first two CPUs of this process's
// affinity mask, or -1 (no pinning) when fewer than two are available.
struct CpuPair {
  int producer = -1;
  int consumer = -1;
};

inline CpuPair pick_cpus() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return {};
  CpuPair pair;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    if (pair.producer < 0) {
      pair.producer = cpu;
    } else {
      pair.consumer = cpu;
      return pair;
    }
  }
  return {};
}

// Pins the calling thread to `cpu` (ignored if negative). Returns false if the kernel refused.
inline bool pin_to_cpu(int cpu) noexcept {
  if (cpu < 0) return true;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof(set), &set) == 0;
}

// Pins the calling thread for its lifetime and restores the previous mask afterwards, so a
// later benchmark (or Python baseline) is not left on one core.
class ScopedPin {
 public:
  explicit ScopedPin(int cpu) noexcept {
    CPU_ZERO(&saved_);
    saved_valid_ = cpu >= 0 && sched_getaffinity(0, sizeof(saved_), &saved_) == 0;
    if (saved_valid_) pin_to_cpu(cpu);
  }
  ScopedPin(const ScopedPin&) = delete;
  ScopedPin& operator=(const ScopedPin&) = delete;
  ~ScopedPin() {
    if (saved_valid_) sched_setaffinity(0, sizeof(saved_), &saved_);
  }

 private:
  cpu_set_t saved_;
  bool saved_valid_ = false;
};

// ---- The forked peer -------------------------------------------------------------------

// A child process running `fn()` (which returns the exit code; an escaping exception exits
// 70). The child dies with the parent (PR_SET_PDEATHSIG) and is pinned to `cpu` if >= 0.
// join() waits at most `watchdog`, then SIGKILLs; the destructor SIGKILLs and reaps a child
// that was never joined, so a benchmark that fails part-way leaves no process behind.
// The child leaves with _exit: it runs no destructor or atexit handler of the parent's.
class ForkedPeer {
 public:
  template <class Fn>
  explicit ForkedPeer(Fn&& fn, int cpu = -1) {
    const pid_t parent = getpid();
    std::fflush(nullptr);  // or the child would flush the parent's buffered output again
    pid_ = fork();
    if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(71);  // the parent died before prctl took effect
      pin_to_cpu(cpu);
      int code = 70;
      try {
        code = fn();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "bench peer: %s\n", e.what());
      } catch (...) {
      }
      std::fflush(nullptr);
      _exit(code);
    }
  }
  ForkedPeer(const ForkedPeer&) = delete;
  ForkedPeer& operator=(const ForkedPeer&) = delete;
  ~ForkedPeer() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      reap_blocking();
    }
  }

  pid_t pid() const noexcept { return pid_; }

  // The child's exit code (0..255), 128 + signal if it was killed, or -1 if the watchdog
  // had to kill it. Idempotent.
  int join(std::chrono::milliseconds watchdog = kWatchdog) {
    if (reaped_) return status_;
    const Deadline deadline = Deadline::after(watchdog);
    for (long sleep_ns = 20'000;;) {
      int raw = 0;
      const pid_t r = waitpid(pid_, &raw, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
        return status_;
      }
      if (r < 0 && errno != EINTR) {
        reaped_ = true;
        status_ = -1;
        return status_;
      }
      if (deadline.expired()) {
        kill(pid_, SIGKILL);
        reap_blocking();
        status_ = -1;
        return status_;
      }
      const timespec ts{0, sleep_ns};
      nanosleep(&ts, nullptr);
      sleep_ns = std::min(sleep_ns * 2, 5'000'000L);
    }
  }

  // True once the child has ended (reaping it); cheap enough to call every few thousand spins.
  bool exited() noexcept {
    if (reaped_) return true;
    int raw = 0;
    if (waitpid(pid_, &raw, WNOHANG) != pid_) return false;
    reaped_ = true;
    status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    return true;
  }

  // Kills the child now (e.g. when the parent gave up on it); join() then reports the signal.
  void kill_now() noexcept {
    if (pid_ > 0 && !reaped_) kill(pid_, SIGKILL);
  }

  static std::string describe(int status) {
    if (status == 0) return "ok";
    if (status < 0) return "hung: killed by the watchdog";
    if (status > 128) return "killed by signal " + std::to_string(status - 128);
    return "exited " + std::to_string(status);
  }

 private:
  void reap_blocking() noexcept {
    int raw = 0;
    while (waitpid(pid_, &raw, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }

  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = -1;
};

// Joins the peer and turns its failure into SkipWithError (naming `what` and the status).
// Returns true when the peer succeeded.
inline bool finish_peer(benchmark::State& state, ForkedPeer& peer, const char* what = "peer") {
  const int status = peer.join();
  if (status == 0) return true;
  const std::string message =
      std::string(what) + " failed (" + ForkedPeer::describe(status) + "): messages lost, "
      "corrupted or out of order, or the peer hung";
  state.SkipWithError(message.c_str());
  return false;
}

// Reports one item per iteration, each `message_bytes` long.
inline void set_processed(benchmark::State& state, std::size_t message_bytes) {
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(message_bytes));
}

// ---- Waiting on a flag in shared memory ------------------------------------------------

// Spins (then yields) until `pred()` or the watchdog expires; returns whether pred held.
// For set-up handshakes and end-of-run acknowledgements, not for the measured hot path.
template <class Pred>
bool wait_until(Pred&& pred, std::chrono::milliseconds watchdog = kWatchdog) {
  const Deadline deadline = Deadline::after(watchdog);
  for (std::uint32_t i = 0;; ++i) {
    if (pred()) return true;
    if (i < 4096) {
      cpu_relax();
    } else {
      if ((i & 255) == 0 && deadline.expired()) return false;
      sched_yield();
    }
  }
}

// Guards a hot spin loop: `if (!watch.ok()) fail;` on each empty poll. Every 2^14 calls it
// checks whether the peer (if given) is still running and whether the wait has lasted past
// the watchdog (counted from the first slow check, so making a watch costs no clock read).
class PeerWatch {
 public:
  explicit PeerWatch(ForkedPeer* peer = nullptr,
                     std::chrono::milliseconds watchdog = kWatchdog) noexcept
      : peer_(peer), watchdog_(watchdog) {}

  bool ok() noexcept {
    if ((++spins_ & 0x3fff) != 0) return true;
    if (peer_ != nullptr && peer_->exited()) return false;
    const std::int64_t now = Deadline::monotonic_ns();
    if (started_ns_ == 0) started_ns_ = now;
    return now - started_ns_ <
           std::chrono::duration_cast<std::chrono::nanoseconds>(watchdog_).count();
  }

 private:
  ForkedPeer* peer_;
  std::chrono::milliseconds watchdog_;
  std::uint64_t spins_ = 0;
  std::int64_t started_ns_ = 0;
};

// ---- Messages --------------------------------------------------------------------------

// A message of `size` bytes carrying sequence number `seq`: the first 8 bytes hold seq, the
// last 8 (for size >= 16) hold ~seq * kMix, bytes between a pattern of seq. A receiver
// checking both ends catches loss, reordering, duplication and torn (half-written) messages.
// True when the kernel shows `pid` sleeping (state S: here, in futex_wait).
inline bool asleep_in_kernel(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  std::FILE* file = std::fopen(path, "r");
  if (file == nullptr) return false;
  char text[512];
  const std::size_t length = std::fread(text, 1, sizeof(text) - 1, file);
  std::fclose(file);
  text[length] = '\0';
  const char* name_end = std::strrchr(text, ')');  // the command name may hold spaces
  return name_end != nullptr && name_end[1] == ' ' && name_end[2] == 'S';
}

inline constexpr std::uint64_t kMix = 0x9e3779b97f4a7c15ULL;

inline void stamp_message(void* buffer, std::size_t size, std::uint64_t seq) noexcept {
  auto* bytes = static_cast<unsigned char*>(buffer);
  if (size < sizeof(seq)) {
    std::memcpy(bytes, &seq, size);
    return;
  }
  std::memcpy(bytes, &seq, sizeof(seq));
  if (size >= 16) {
    const std::uint64_t tail = ~seq * kMix;
    std::memcpy(bytes + size - sizeof(tail), &tail, sizeof(tail));
  }
}

// Like stamp_message, and also fills the middle bytes, for a sender that builds each
// message from scratch (the bytes between are then checked by check_message_full).
inline void stamp_message_full(void* buffer, std::size_t size, std::uint64_t seq) noexcept {
  if (size > 16) std::memset(static_cast<unsigned char*>(buffer) + 8, int(seq & 0xff), size - 16);
  stamp_message(buffer, size, seq);
}

inline bool check_message(const void* buffer, std::size_t size, std::uint64_t seq) noexcept {
  const auto* bytes = static_cast<const unsigned char*>(buffer);
  if (size < sizeof(seq)) {
    std::uint64_t got = 0;
    std::memcpy(&got, bytes, size);
    const std::uint64_t mask = (std::uint64_t{1} << (8 * size)) - 1;
    return got == (seq & mask);
  }
  std::uint64_t head = 0;
  std::memcpy(&head, bytes, sizeof(head));
  if (head != seq) return false;
  if (size >= 16) {
    std::uint64_t tail = 0;
    std::memcpy(&tail, bytes + size - sizeof(tail), sizeof(tail));
    if (tail != ~seq * kMix) return false;
  }
  return true;
}

inline bool check_message_full(const void* buffer, std::size_t size, std::uint64_t seq) noexcept {
  if (!check_message(buffer, size, seq)) return false;
  const auto* bytes = static_cast<const unsigned char*>(buffer);
  for (std::size_t i = 8; i + 8 < size; ++i) {
    if (bytes[i] != static_cast<unsigned char>(seq & 0xff)) return false;
  }
  return true;
}

// ---- Latency ---------------------------------------------------------------------------

inline std::int64_t now_ns() noexcept { return Deadline::monotonic_ns(); }

// Collects one sample per round (ns) and reports percentiles as counters. Keeps at most
// `max_samples` (the first ones) so a long run does not allocate without bound.
class LatencyRecorder {
 public:
  struct Summary {
    double median_ns = 0;
    double p99_ns = 0;
  };

  explicit LatencyRecorder(std::int64_t expected, std::size_t max_samples = std::size_t{1} << 22)
      : max_samples_(max_samples) {
    const auto wanted = static_cast<std::size_t>(std::max<std::int64_t>(expected, 0));
    samples_.reserve(std::min(wanted, max_samples));
  }

  void add(std::int64_t ns) noexcept {
    if (samples_.size() < max_samples_) samples_.push_back(ns);
  }

  // Median and 99th percentile of the samples, each divided by `divisor` (2 turns a
  // ping-pong round trip into one-way latency).
  Summary summarize(double divisor = 1.0) {
    if (samples_.empty()) return {};
    std::sort(samples_.begin(), samples_.end());
    return {percentile(0.50) / divisor, percentile(0.99) / divisor};
  }

  // Reports `<prefix>median_ns` and `<prefix>p99_ns` as counters.
  void report(benchmark::State& state, double divisor = 1.0,
              const std::string& prefix = "one_way_") {
    if (!samples_.empty()) report_summary(state, summarize(divisor), prefix);
  }

  static void report_summary(benchmark::State& state, Summary summary,
                             const std::string& prefix = "one_way_") {
    state.counters[prefix + "median_ns"] = summary.median_ns;
    state.counters[prefix + "p99_ns"] = summary.p99_ns;
  }

 private:
  double percentile(double q) const noexcept {  // of the sorted samples
    const auto index = static_cast<std::size_t>(q * static_cast<double>(samples_.size() - 1));
    return static_cast<double>(samples_[index]);
  }

  std::size_t max_samples_;
  std::vector<std::int64_t> samples_;
};

// The parent's side of a ping-pong in which both sides poll: per batch, rounds 1..n of
// `round(r, watch)`, which sends ping r, polls for pong r (giving up once `watch.ok()` fails)
// and returns whether it came back intact. One clock read per round, so a sample is one round
// trip. Afterwards a ponger left waiting by a failed round is killed, a failed ponger marks
// the benchmark failed, and otherwise the one-way latency (half the round trip) is reported.
template <class Round>
void time_spin_pingpong(benchmark::State& state, ForkedPeer& ponger, Round&& round) {
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  LatencyRecorder latency(static_cast<std::int64_t>(n));
  bool failed = false;
  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(n))) {
    PeerWatch watch(&ponger);
    std::int64_t last = now_ns();
    for (std::uint64_t r = 1; r <= n && !failed; ++r) {
      failed = !round(r, watch);
      const std::int64_t now = now_ns();
      latency.add(now - last);
      last = now;
    }
  }
  if (failed) ponger.kill_now();
  if (!finish_peer(state, ponger, "ponger")) return;
  latency.report(state, 2.0);
}

}  // namespace ringfork::bench
