// Baselines that ringfork's own benchmarks are measured against, in the same binary so every
// ratio in the report comes from one run (STYLE.md item 9):
//   - a bare spin-only SPSC ring (the ceiling for a shared-memory ring),
//   - a pipe (the kernel's channel),
//   - moodycamel's ConcurrentQueue between threads of one process (the MPMC bar),
//   - wake-ups of a truly sleeping peer through a futex and through a pipe,
//   - the one-way latency floor: a cache-line ping-pong between two busy-polling processes.
// Every message is checked by its receiver; a child that sees a bad message exits non-zero
// and the benchmark reports the error instead of a figure.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <concurrentqueue/concurrentqueue.h>

#include "bench_support.h"
#include "ringfork/cache_line.h"
#include "ringfork/deadline.h"
#include "ringfork/futex.h"

namespace {

namespace rb = ringfork::bench;
using ringfork::cpu_relax;
using ringfork::kFalseSharingRange;

// A 64-bit index alone on its false-sharing range (two lines: adjacent-line prefetch).
struct alignas(kFalseSharingRange) PaddedIndex {
  std::atomic<std::uint64_t> value{0};
};

// ---- Bare spin SPSC ring ---------------------------------------------------------------

// The simplest correct SPSC ring: power-of-two slots of the message size, head and tail on
// separate lines, each side caching the other's index and re-reading it only when the ring
// looks full (producer) or empty (consumer). Each side publishes its index once per
// kPublishEvery messages, and before it waits (or the other side could wait forever).
struct BareRingControl {
  PaddedIndex head;            // written by the producer: messages published
  PaddedIndex tail;            // written by the consumer: messages consumed
  PaddedIndex consumer_ready;  // consumer is running and has touched the ring
  PaddedIndex consumer_done;   // consumer has checked every message
};

std::size_t bare_ring_slots(std::size_t message_size) {
  // About 256 KiB of slots (L2-sized), but at least 1024 so batching never starves.
  return std::bit_ceil(std::clamp<std::size_t>((256 * 1024) / message_size, 1024, 65536));
}

template <std::uint64_t kPublishEvery>
void bare_spin_xproc(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  const std::size_t slots = bare_ring_slots(size);
  const std::uint64_t mask = slots - 1;
  rb::SharedRegion shm(sizeof(BareRingControl) + slots * size);
  auto* ctl = shm.construct<BareRingControl>();
  std::byte* const ring = shm.data() + sizeof(BareRingControl);
  shm.prefault();

  const rb::CpuPair cpus = rb::pick_cpus();
  rb::ScopedPin pin(cpus.producer);
  rb::ForkedPeer consumer(
      [&]() -> int {
        alignas(64) unsigned char message[1024];
        std::uint64_t tail = 0, published_tail = 0, cached_head = 0, bad = 0;
        // release: nothing to publish yet; the flag only says "running".
        ctl->consumer_ready.value.store(1, std::memory_order_release);
        while (tail < n) {
          if (tail == cached_head) {
            // Publish what we consumed before waiting, or a producer waiting on a full ring
            // would wait for us while we wait for it.
            if (published_tail != tail) {
              ctl->tail.value.store(tail, std::memory_order_release);
              published_tail = tail;
            }
            rb::PeerWatch watch;
            // acquire: pairs with the producer's release of head; the slots are visible.
            while ((cached_head = ctl->head.value.load(std::memory_order_acquire)) == tail) {
              if (!watch.ok()) return 3;
              cpu_relax();
            }
          }
          std::memcpy(message, ring + (tail & mask) * size, size);
          bad += !rb::check_message(message, size, tail);
          ++tail;
          if (tail - published_tail >= kPublishEvery) {
            // release: our reads of the slots happen before the producer may overwrite them.
            ctl->tail.value.store(tail, std::memory_order_release);
            published_tail = tail;
          }
        }
        ctl->tail.value.store(tail, std::memory_order_release);
        ctl->consumer_done.value.store(1, std::memory_order_release);
        return bad == 0 ? 0 : 1;
      },
      cpus.consumer);

  if (!rb::wait_until([&] { return ctl->consumer_ready.value.load(std::memory_order_acquire); })) {
    state.SkipWithError("consumer did not start");
    return;
  }
  alignas(64) unsigned char message[1024];
  rb::stamp_message_full(message, size, 0);
  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(n))) {
    std::uint64_t head = 0, published_head = 0, cached_tail = 0;
    bool failed = false;
    for (; head < n && !failed; ++head) {
      if (head - cached_tail == slots) {
        if (published_head != head) {
          ctl->head.value.store(head, std::memory_order_release);
          published_head = head;
        }
        rb::PeerWatch watch(&consumer);
        // acquire: the consumer finished reading the slot we are about to overwrite.
        while (head - (cached_tail = ctl->tail.value.load(std::memory_order_acquire)) == slots) {
          if (!watch.ok()) {
            failed = true;
            break;
          }
          cpu_relax();
        }
        if (failed) break;
      }
      rb::stamp_message(message, size, head);
      std::memcpy(ring + (head & mask) * size, message, size);
      if (head + 1 - published_head >= kPublishEvery) {
        // release: the slot's bytes are visible before the index that covers them.
        ctl->head.value.store(head + 1, std::memory_order_release);
        published_head = head + 1;
      }
    }
    ctl->head.value.store(head, std::memory_order_release);
    rb::PeerWatch watch(&consumer);
    while (!failed && !ctl->consumer_done.value.load(std::memory_order_acquire)) {
      if (!watch.ok()) break;
      cpu_relax();
    }
  }
  if (rb::finish_peer(state, consumer, "consumer")) {
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
  }
}

void BM_BareSpinXproc(benchmark::State& state) { bare_spin_xproc<32>(state); }
void BM_BareSpinXprocEach(benchmark::State& state) { bare_spin_xproc<1>(state); }
BENCHMARK(BM_BareSpinXproc)->Arg(8)->Arg(64)->Arg(1024)->UseRealTime();
BENCHMARK(BM_BareSpinXprocEach)->Arg(8)->Arg(64)->Arg(1024)->UseRealTime();

// ---- Pipe ------------------------------------------------------------------------------

bool write_all(int fd, const void* data, std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (size > 0) {
    const ssize_t r = write(fd, p, size);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    size -= static_cast<std::size_t>(r);
  }
  return true;
}

bool read_all(int fd, void* data, std::size_t size) {
  auto* p = static_cast<unsigned char*>(data);
  while (size > 0) {
    const ssize_t r = read(fd, p, size);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    size -= static_cast<std::size_t>(r);
  }
  return true;
}

// Both ends of a pipe, closed on destruction.
struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() {
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  ~Pipe() {
    close_read();
    close_write();
  }
  int read_end() const { return fds[0]; }
  int write_end() const { return fds[1]; }
  void close_read() {
    if (fds[0] >= 0) close(std::exchange(fds[0], -1));
  }
  void close_write() {
    if (fds[1] >= 0) close(std::exchange(fds[1], -1));
  }
};

void BM_PipeXproc(benchmark::State& state) {
  signal(SIGPIPE, SIG_IGN);  // a dead reader must fail write(), not kill the benchmark
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  rb::SharedRegion shm(sizeof(PaddedIndex));
  auto* reader_done = shm.construct<PaddedIndex>();
  Pipe channel;
  const rb::CpuPair cpus = rb::pick_cpus();
  rb::ScopedPin pin(cpus.producer);
  rb::ForkedPeer consumer(
      [&]() -> int {
        channel.close_write();  // so a dead producer means end-of-file, not a hang
        std::vector<unsigned char> message(size);
        std::uint64_t bad = 0;
        for (std::uint64_t seq = 0; seq < n; ++seq) {
          if (!read_all(channel.read_end(), message.data(), size)) return 2;
          bad += !rb::check_message(message.data(), size, seq);
        }
        reader_done->value.store(1, std::memory_order_release);
        return bad == 0 ? 0 : 1;
      },
      cpus.consumer);
  channel.close_read();
  std::vector<unsigned char> message(size);
  rb::stamp_message_full(message.data(), size, 0);
  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(n))) {
    bool failed = false;
    for (std::uint64_t seq = 0; seq < n && !failed; ++seq) {
      rb::stamp_message(message.data(), size, seq);
      failed = !write_all(channel.write_end(), message.data(), size);
    }
    // Timed: the reader has drained the pipe.
    rb::PeerWatch watch(&consumer);
    while (!failed && !reader_done->value.load(std::memory_order_acquire) && watch.ok()) {
      cpu_relax();
    }
  }
  channel.close_write();
  if (rb::finish_peer(state, consumer, "reader")) state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PipeXproc)->Arg(64)->UseRealTime();

// ---- moodycamel ConcurrentQueue, threads in one process ---------------------------------

struct Message64 {
  std::uint64_t seq;
  std::uint32_t producer;
  std::uint32_t check;  // a function of (seq, producer): catches torn or mixed-up items
  unsigned char payload[48];
};
static_assert(sizeof(Message64) == 64);

std::uint32_t message_check(std::uint64_t seq, std::uint32_t producer) {
  return static_cast<std::uint32_t>((seq * rb::kMix) >> 32) ^ (producer * 0x85ebca6bU);
}

void BM_MoodycamelInproc(benchmark::State& state) {
  const auto producers = static_cast<std::uint32_t>(state.range(1));
  const auto consumers = static_cast<std::uint32_t>(state.range(2));
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  bool ok = true;
  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(n))) {
    moodycamel::ConcurrentQueue<Message64> queue(1024 * producers);
    std::atomic<std::uint64_t> consumed{0}, seq_sum{0}, bad{0};
    std::vector<std::thread> threads;
    for (std::uint32_t p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        moodycamel::ProducerToken token(queue);
        const std::uint64_t first = n * p / producers, last = n * (p + 1) / producers;
        Message64 m{};
        m.producer = p;
        for (std::uint64_t seq = first; seq < last; ++seq) {
          m.seq = seq;
          m.check = message_check(seq, p);
          m.payload[0] = m.payload[47] = static_cast<unsigned char>(seq);
          queue.enqueue(token, m);
        }
      });
    }
    for (std::uint32_t c = 0; c < consumers; ++c) {
      threads.emplace_back([&] {
        moodycamel::ConsumerToken token(queue);
        std::uint64_t pending = 0, sum = 0, errors = 0;
        std::uint32_t idle = 0;
        Message64 m;
        for (;;) {
          if (queue.try_dequeue(token, m)) {
            errors += m.check != message_check(m.seq, m.producer) ||
                      m.payload[0] != static_cast<unsigned char>(m.seq) ||
                      m.payload[47] != static_cast<unsigned char>(m.seq);
            sum += m.seq;
            if (++pending == 256) consumed.fetch_add(std::exchange(pending, 0));
            idle = 0;
            continue;
          }
          // Looked empty: account for what we took, then stop once everything is taken.
          consumed.fetch_add(std::exchange(pending, 0), std::memory_order_relaxed);
          if (consumed.load(std::memory_order_relaxed) >= n) break;
          if (++idle > 64) std::this_thread::yield();  // 4 threads may share 2 cores
        }
        seq_sum.fetch_add(sum);
        bad.fetch_add(errors);
      });
    }
    for (auto& t : threads) t.join();
    ok = consumed.load() == n && bad.load() == 0 && seq_sum.load() == n * (n - 1) / 2;
  }
  if (!ok) {
    state.SkipWithError("moodycamel: lost, duplicated or corrupted messages");
    return;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MoodycamelInproc)->Args({64, 1, 1})->Args({64, 2, 2})->UseRealTime();

// ---- Waking a sleeping peer: futex vs pipe ---------------------------------------------

// Raw futexes on shared words through ringfork::futex_wait/futex_wake (not EventCount: we
// want the bare kernel round trip, and futex_wake's return value tells whether the peer was
// really asleep). Round r: the child announces it is about to sleep (`child_waiting = r`)
// and sleeps until `ping == r`; the parent waits for the announcement, sets `ping = r`,
// wakes it, and sleeps until `pong == r`, which the child sets and wakes it for.
struct SleepPingPong {
  alignas(kFalseSharingRange) std::atomic<std::uint32_t> ping{0};
  alignas(kFalseSharingRange) std::atomic<std::uint32_t> pong{0};
  alignas(kFalseSharingRange) std::atomic<std::uint32_t> child_waiting{0};
};

enum class Waker { kFutex, kPipe };

// Sleeps until `word != old` (futex); false if the watchdog expired.
bool futex_wait_change(const std::atomic<std::uint32_t>& word, std::uint32_t old) {
  const auto deadline = ringfork::Deadline::after(rb::kWatchdog);
  while (word.load(std::memory_order_acquire) == old) {
    if (ringfork::futex_wait(word, old, deadline) == ringfork::FutexWaitResult::kTimedOut) {
      return word.load(std::memory_order_acquire) != old;
    }
  }
  return true;
}

void sleep_pingpong(benchmark::State& state, Waker waker, bool record_latency) {
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  rb::SharedRegion shm(sizeof(SleepPingPong));
  auto* pp = shm.construct<SleepPingPong>();
  Pipe to_child, to_parent;
  const rb::CpuPair cpus = rb::pick_cpus();
  rb::ScopedPin pin(cpus.producer);
  rb::ForkedPeer child(
      [&]() -> int {
        to_child.close_write();
        to_parent.close_read();
        for (std::uint32_t r = 1; r <= n; ++r) {
          // release: the parent's acquire of this announcement orders nothing else; it only
          // has to see it eventually. The wait that follows is the measured sleep.
          pp->child_waiting.store(r, std::memory_order_release);
          if (waker == Waker::kFutex) {
            if (!futex_wait_change(pp->ping, r - 1)) return 3;
            if (pp->ping.load(std::memory_order_acquire) != r) return 1;
            pp->pong.store(r, std::memory_order_release);
            ringfork::futex_wake(pp->pong, 1);
          } else {
            std::uint32_t got = 0;
            if (!read_all(to_child.read_end(), &got, sizeof(got))) return 2;
            if (got != r) return 1;
            if (!write_all(to_parent.write_end(), &r, sizeof(r))) return 2;
          }
        }
        return 0;
      },
      cpus.consumer);
  to_child.close_read();
  to_parent.close_write();

  rb::LatencyRecorder latency(record_latency ? static_cast<std::int64_t>(n) : 0);
  std::uint64_t peer_asleep = 0;
  std::int64_t batch_ns = 0;
  bool failed = false;
  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(n))) {
    for (std::uint32_t r = 1; r <= n && !failed; ++r) {
      rb::PeerWatch watch(&child);
      // The rule for these rows: the peer is asleep every round. Its announcement
      // comes just before the sleep, so wait for the kernel to show it asleep too (before
      // the clock starts), as BM_LatencySleep/ringfork does.
      while (pp->child_waiting.load(std::memory_order_acquire) != r ||
             !rb::asleep_in_kernel(child.pid())) {
        if (!watch.ok()) failed = true;
        if (failed) break;
        cpu_relax();
      }
      const std::int64_t start = rb::now_ns();
      if (waker == Waker::kFutex) {
        pp->ping.store(r, std::memory_order_release);
        peer_asleep += ringfork::futex_wake(pp->ping, 1) > 0;
        failed = failed || !futex_wait_change(pp->pong, r - 1);
      } else {
        std::uint32_t got = 0;
        failed = failed || !write_all(to_child.write_end(), &r, sizeof(r)) ||
                 !read_all(to_parent.read_end(), &got, sizeof(got)) || got != r;
      }
      const std::int64_t round_ns = rb::now_ns() - start;
      batch_ns += round_ns;
      if (record_latency) latency.add(round_ns);
    }
    // Only the rounds count, not the waits for the peer to fall asleep between them.
    state.SetIterationTime(static_cast<double>(std::exchange(batch_ns, 0)) * 1e-9);
  }
  if (failed) child.kill_now();
  if (!rb::finish_peer(state, child, "sleeping peer")) return;
  if (record_latency) latency.report(state, 2.0);
  if (waker == Waker::kFutex) {
    // Fraction of rounds whose wake found the peer asleep in the kernel (1 but for a
    // spurious wake-up between the /proc read and the ping).
    state.counters["peer_asleep_frac"] =
        static_cast<double>(peer_asleep) / static_cast<double>(std::max<std::uint64_t>(n, 1));
  }
}

void BM_WakeRoundtripFutex(benchmark::State& state) {
  sleep_pingpong(state, Waker::kFutex, false);
}
void BM_WakeRoundtripPipe(benchmark::State& state) { sleep_pingpong(state, Waker::kPipe, false); }
BENCHMARK(BM_WakeRoundtripFutex)->UseManualTime();
BENCHMARK(BM_WakeRoundtripPipe)->UseManualTime();

void BM_LatencySleep(benchmark::State& state, Waker waker) { sleep_pingpong(state, waker, true); }
BENCHMARK_CAPTURE(BM_LatencySleep, futex, Waker::kFutex)->UseRealTime();
BENCHMARK_CAPTURE(BM_LatencySleep, pipe, Waker::kPipe)->UseRealTime();

// ---- The latency floor: a cache-line ping-pong between two busy-polling processes -------

// One 64-byte message per direction, each on its own line: seq (published last, release)
// plus 56 bytes of payload that the receiver checks.
struct alignas(kFalseSharingRange) PingLine {
  std::atomic<std::uint64_t> seq{0};
  unsigned char payload[56];
};
struct SpinPingPong {
  PingLine ping;  // parent -> child
  PingLine pong;  // child -> parent
};
static_assert(offsetof(PingLine, payload) + sizeof(PingLine::payload) == 64);

// Waits for `line.seq == seq`, then checks the payload; false on a bad payload or watchdog.
bool await_line(const PingLine& line, std::uint64_t seq, rb::PeerWatch& watch) {
  // acquire: pairs with the sender's release of seq, so the payload is visible.
  while (line.seq.load(std::memory_order_acquire) != seq) {
    if (!watch.ok()) return false;
    cpu_relax();
  }
  unsigned char copy[56];
  std::memcpy(copy, line.payload, sizeof(copy));
  return rb::check_message(copy, sizeof(copy), seq);
}

void send_line(PingLine& line, std::uint64_t seq) {
  rb::stamp_message(line.payload, sizeof(line.payload), seq);
  line.seq.store(seq, std::memory_order_release);  // release: payload first
}

void BM_LatencySpin(benchmark::State& state, int /*bare*/) {
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  rb::SharedRegion shm(sizeof(SpinPingPong));
  auto* pp = shm.construct<SpinPingPong>();
  const rb::CpuPair cpus = rb::pick_cpus();
  rb::ScopedPin pin(cpus.producer);
  rb::ForkedPeer child(
      [&]() -> int {
        rb::PeerWatch watch;
        for (std::uint64_t r = 1; r <= n; ++r) {
          if (!await_line(pp->ping, r, watch)) return 1;
          send_line(pp->pong, r);
        }
        return 0;
      },
      cpus.consumer);
  rb::time_spin_pingpong(state, child, [&](std::uint64_t r, rb::PeerWatch& watch) {
    send_line(pp->ping, r);
    return await_line(pp->pong, r, watch);
  });
}
BENCHMARK_CAPTURE(BM_LatencySpin, bare, 0)->UseRealTime();

}  // namespace
