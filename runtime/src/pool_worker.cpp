// The pool worker's loop: tasks one at a time, results answered in batches through the
// worker's outbox (pool_wire.h).
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "pool_wire.h"
#include "ringfork/pool_core.h"
#include "ringfork/runtime.h"

namespace ringfork::pool_wire {
namespace {

// Results answered and not yet sent wait at most this many of them, and at most
// PoolOptions::result_batching, while the worker finds more tasks ready; it sends at once
// when it finds none.
constexpr std::size_t kMostStaged = 64;

// Where a task's result is written: space for a message header and a record header, then
// the payload. A result too long for the outbox goes to the result queue from here as is.
constexpr std::size_t kPayloadAt = kResultHeader + kRecordHeader;

constexpr std::size_t kKeptBufferBytes = std::size_t{1} << 20;

// Stages results in the outbox and sends them as one message (see PoolOutbox).
class ResultBatcher {
 public:
  ResultBatcher(PoolOutbox& outbox, ByteQueue& results, std::uint32_t worker) noexcept
      : outbox_(outbox),
        results_(results),
        worker_(worker),
        most_staged_age_(std::chrono::microseconds(outbox.batching_us)) {}

  bool empty() const noexcept { return count_ == 0; }

  // Before running a task: the staged results may be delivered by the parent meanwhile.
  void lend() noexcept {
    if (count_ == 0) return;
    // release: the staged bytes and `answered` are visible to a parent that takes them.
    outbox_.lending.store(kLent, std::memory_order_release);
    lent_ = true;
  }

  // After the task: the staged area is ours again; empty if the parent took the results.
  void take_back() noexcept {
    if (!lent_) return;
    lent_ = false;
    std::uint32_t state = kLent;
    // acq_rel: on failure, acquire the parent's reads and its `flushed` before we reuse the
    // staging area.
    if (outbox_.lending.compare_exchange_strong(state, kWorkerOwns, std::memory_order_acq_rel)) {
      return;
    }
    // The parent is taking them, or has: wait until it no longer reads the bytes. It does so
    // under no lock we hold and in a few microseconds; polling politely covers a parent
    // that is descheduled meanwhile.
    while (outbox_.lending.load(std::memory_order_acquire) != kTaken) sched_yield();
    outbox_.lending.store(kWorkerOwns, std::memory_order_relaxed);
    count_ = 0;
    used_ = kResultHeader;
  }

  // Answers one task: its result is durable on return. `result` holds kPayloadAt bytes of
  // room and then the payload.
  void answer(std::uint64_t id, std::uint8_t kind, Bytes& result) {
    const std::size_t payload = result.size() - kPayloadAt;
    const std::size_t record = kRecordHeader + payload;
    const auto now = std::chrono::steady_clock::now();
    if (used_ + record > PoolOutbox::kStagedBytes) send();
    if (kResultHeader + record > PoolOutbox::kStagedBytes) {
      // Too long to stage: a message of its own, straight from the result buffer.
      write_message_header(result.data(), 1);
      write_record_header(result.data() + kResultHeader, id, kind, payload);
      results_.put(result);
      // Sent before answered: dying between the two leaves answered - flushed at 0, so the
      // parent never reads a stale record from the (empty) staging area. release: the result
      // is in the queue before the parent may count it as answered.
      outbox_.flushed.fetch_add(1, std::memory_order_release);
      outbox_.answered.fetch_add(1, std::memory_order_release);
      return;
    }
    if (count_ == 0) first_staged_ = now;
    std::byte* at = outbox_.staged + used_;
    write_record_header(at, id, kind, payload);
    if (payload != 0) std::memcpy(at + kRecordHeader, result.data() + kPayloadAt, payload);
    used_ += record;
    ++count_;
    // release: the record's bytes are written before the count that says it exists.
    outbox_.answered.fetch_add(1, std::memory_order_release);
    if (count_ >= kMostStaged || now - first_staged_ >= most_staged_age_) send();
  }

  // Puts the staged results on the result queue as one message.
  void send() {
    if (count_ == 0) return;
    write_message_header(outbox_.staged, count_);
    results_.put(std::span<const std::byte>(outbox_.staged, used_));
    // release: the message is in the queue before the parent may count it as sent; a crash
    // between the two only makes the parent deliver these records twice over, and it
    // ignores the copy whose task already ended.
    outbox_.flushed.store(outbox_.answered.load(std::memory_order_relaxed),
                          std::memory_order_release);
    count_ = 0;
    used_ = kResultHeader;
  }

 private:
  void write_message_header(std::byte* at, std::uint32_t count) const noexcept {
    std::memcpy(at, &worker_, sizeof(worker_));
    std::memcpy(at + sizeof(worker_), &count, sizeof(count));
  }

  PoolOutbox& outbox_;
  ByteQueue& results_;
  const std::uint32_t worker_;
  const std::chrono::microseconds most_staged_age_;
  std::uint32_t count_ = 0;
  std::size_t used_ = kResultHeader;
  bool lent_ = false;
  std::chrono::steady_clock::time_point first_staged_{};
};

// The next task, or false once the queue is closed and drained. Staged results are sent
// before waiting: nobody waits for them while the worker has nothing else to do.
bool take_task(ByteQueue& tasks, ReceivedMessage& task, ResultBatcher& batcher) {
  if (!batcher.empty()) {
    const RingStatus status = tasks.get_nowait(task);
    if (status == RingStatus::kOk) return true;
    batcher.send();
    if (status == RingStatus::kClosed) return false;
  }
  try {
    tasks.get(task);
  } catch (const QueueClosed&) {
    return false;
  }
  return true;
}

void write_error(Bytes& result, std::string_view message) {
  result.resize(kPayloadAt + message.size());
  std::memcpy(result.data() + kPayloadAt, message.data(), message.size());
}

// Runs the pool's initializer; if it throws, says why in the outbox (the parent reports it)
// and on stderr, and the worker ends.
bool run_initializer(std::span<const std::byte> initializer, const DecodeContext& context,
                     PoolOutbox& outbox) {
  std::string error;
  try {
    ArgReader in(initializer, context);
    const auto trampoline = reinterpret_cast<PoolTrampoline>(in.read_raw<std::uint64_t>());
    const auto function = in.read_raw<std::uint64_t>();
    ArgWriter ignored;
    trampoline(function, in, ignored);
    return true;
  } catch (const std::exception& exception) {
    error = exception.what();
  } catch (...) {
    error = "an exception not derived from std::exception";
  }
  const std::size_t length = std::min(error.size(), sizeof(outbox.initializer_error) - 1);
  std::memcpy(outbox.initializer_error, error.data(), length);
  outbox.initializer_error[length] = '\0';
  std::fprintf(stderr, "ringfork: pool worker %d: the initializer failed: %s\n",
               static_cast<int>(::getpid()), error.c_str());
  return false;
}

}  // namespace

int pool_worker_main(Queue<Bytes> tasks, Queue<Bytes> results, std::uint32_t worker,
                     std::uint64_t max_tasks, Bytes initializer, std::uint64_t outbox_offset) {
  const DecodeContext context = Runtime::current()->decode_context();
  auto* outbox = Runtime::current()->segment().at(Offset<PoolOutbox>{outbox_offset});
  if (outbox->version != PoolOutbox::kVersion) return 1;
  if (!initializer.empty() && !run_initializer(initializer, context, *outbox)) return 1;
  ResultBatcher batcher(*outbox, results.bytes(), worker);
  // Reused for every task: a trivial task then costs no allocation in the worker.
  ReceivedMessage task;
  Bytes chained_task;
  ArgWriter out;
  for (std::uint64_t done = 0; max_tasks == 0 || done < max_tasks; ++done) {
    if (!take_task(tasks.bytes(), task, batcher)) return 0;
    std::span<const std::byte> bytes;
    if (task.chained()) {  // longer than the pool's largest block: gather it
      chained_task.resize(task.size());
      if (!task.copy_to(chained_task.data())) continue;  // corrupt: nothing to answer
      bytes = chained_task;
    } else {
      bytes = task.bytes();
    }
    if (bytes.size() < kTaskHeader) continue;  // not a task: nothing to answer
    std::uint64_t header[3];
    std::memcpy(header, bytes.data(), sizeof(header));
    ArgReader in(bytes.subspan(kTaskHeader), context);
    out.buffer().resize(kPayloadAt);
    batcher.lend();
    std::uint8_t kind = TaskOutcome::kSucceeded;
    try {
      reinterpret_cast<PoolTrampoline>(header[1])(header[2], in, out);
    } catch (const std::exception& error) {
      kind = TaskOutcome::kRaised;
      write_error(out.buffer(), error.what());
    } catch (...) {
      kind = TaskOutcome::kRaised;
      write_error(out.buffer(), "an exception not derived from std::exception");
    }
    task.release();
    batcher.take_back();
    batcher.answer(header[0], kind, out.buffer());
    // One huge task or result must not pin its size for the worker's lifetime.
    if (out.buffer().capacity() > kKeptBufferBytes) Bytes().swap(out.buffer());
    if (chained_task.capacity() > kKeptBufferBytes) Bytes().swap(chained_task);
  }
  batcher.send();
  return 0;
}

}  // namespace ringfork::pool_wire
