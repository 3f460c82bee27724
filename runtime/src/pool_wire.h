// How tasks and results travel between PoolCore and its workers, and the per-worker outbox
// in which a worker keeps the results it has answered but not yet sent.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include "ringfork/cache_line.h"
#include "ringfork/queue.h"

namespace ringfork::pool_wire {

// Task message: [id u64][trampoline u64][function u64][arguments...]
inline constexpr std::size_t kTaskHeader = 3 * sizeof(std::uint64_t);
// Result message: [worker u32][count u32], then `count` records, each
// [id u64][kind u8][length u64][payload: length bytes]. A worker answers the tasks it runs
// back to back with one message, so the result queue carries one message per batch. The
// length is 64 bits because a single result may exceed 4 GiB.
inline constexpr std::size_t kResultHeader = 2 * sizeof(std::uint32_t);
inline constexpr std::size_t kRecordHeader = sizeof(std::uint64_t) + 1 + sizeof(std::uint64_t);

struct ResultRecord {
  std::uint64_t id = 0;
  std::uint8_t kind = 0;
  std::span<const std::byte> payload;
};

inline void write_record_header(std::byte* at, std::uint64_t id, std::uint8_t kind,
                                std::uint64_t length) noexcept {
  std::memcpy(at, &id, sizeof(id));
  at[sizeof(id)] = static_cast<std::byte>(kind);
  std::memcpy(at + sizeof(id) + 1, &length, sizeof(length));
}

// Reads the records after a result message's header. The bytes may come from a worker that
// crashed mid-write, so every record is bounds-checked; next() is false at the end or at the
// first malformed record.
class RecordReader {
 public:
  explicit RecordReader(std::span<const std::byte> records) noexcept : bytes_(records) {}
  bool next(ResultRecord& record) noexcept {
    if (bytes_.size() - position_ < kRecordHeader) return false;
    const std::byte* at = bytes_.data() + position_;
    std::uint64_t length = 0;
    std::memcpy(&record.id, at, sizeof(record.id));
    record.kind = static_cast<std::uint8_t>(at[sizeof(record.id)]);
    std::memcpy(&length, at + sizeof(record.id) + 1, sizeof(length));
    if (length > bytes_.size() - position_ - kRecordHeader) return false;
    record.payload = bytes_.subspan(position_ + kRecordHeader, length);
    position_ += kRecordHeader + length;
    return true;
  }

 private:
  std::span<const std::byte> bytes_;
  std::size_t position_ = 0;
};

// One per worker slot, in shared memory. The slot's live worker writes it; the parent reads
// and resets it only after that worker has exited and before its replacement starts, so the
// two never use it at once. A result becomes durable when its record is staged here and
// `answered` counts it: if the worker then dies, the parent delivers the staged records
// itself, so batching results costs no task its answer.
struct alignas(kCacheLineSize) PoolOutbox {
  static constexpr std::uint32_t kVersion = 4;
  // The staging area, a result message being built: its header, then records.
  static constexpr std::size_t kStagedBytes = 8192;

  std::uint32_t version;
  // PoolOptions::result_batching in microseconds, set by the parent before any worker runs.
  std::uint32_t batching_us;
  // Tasks of the slot's task queue whose results are durable (put on the result queue, or
  // staged below). The queue's claimed count minus this is the task a dead worker was
  // running, taken and never answered (0 or 1 of them).
  std::atomic<std::uint64_t> answered;
  // Of those, the ones whose results were put on the result queue (for a moment it may run
  // one ahead, while a long result sent on its own is being counted); the records of the
  // other answered - flushed are staged, in order, from staged + kResultHeader.
  std::atomic<std::uint64_t> flushed;
  // Who may read the staged records (a Lending value). While the worker runs a task with
  // results staged, it lends them: the parent's dispatcher may then take them and deliver
  // them itself, so a quick task's result never waits for a slow task after it.
  std::atomic<std::uint32_t> lending;
  std::byte staged[kStagedBytes];
  // Why the worker's initializer failed (NUL-terminated, cut short), or empty; the parent
  // clears it before starting a worker and reads it after the worker died.
  char initializer_error[256];
};

// PoolOutbox::lending. kWorkerOwns -> kLent (worker, before a task) -> kWorkerOwns (worker,
// after it: nobody took them) or kLent -> kTaking (parent) -> kTaken (parent: delivered,
// `flushed` advanced, it will not read the staged bytes again) -> kWorkerOwns (worker).
enum Lending : std::uint32_t { kWorkerOwns = 0, kLent = 1, kTaking = 2, kTaken = 3 };
static_assert(std::is_standard_layout_v<PoolOutbox>, "read by the parent after the worker died");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared between processes");

// What every pool worker runs (pool_worker.cpp): take a task, run it, answer it, until the
// task queue is closed and drained or `max_tasks` (0: no limit) were run.
int pool_worker_main(Queue<Bytes> tasks, Queue<Bytes> results, std::uint32_t worker,
                     std::uint64_t max_tasks, Bytes initializer, std::uint64_t outbox_offset);

}  // namespace ringfork::pool_wire
