// Queue<T>: multiprocessing.Queue's contract for C++ values, over a ByteQueue.
#pragma once

#include <atomic>
#include <chrono>
#include <exception>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "ringfork/byte_queue.h"
#include "ringfork/serialize.h"

namespace ringfork {

using Bytes = std::vector<std::byte>;

// The customisation point: how a T becomes bytes and back. Provided for trivially copyable
// types, std::string and Bytes; specialise QueueCodec<YourType> with the same two static
// functions to send your own types. decode returns false for bytes that are not a T.
template <class T, class Enable = void>
struct QueueCodec;

template <class T>
struct QueueCodec<T, std::enable_if_t<std::is_trivially_copyable_v<T>>> {
  static std::span<const std::byte> encode(const T& value, Bytes&) {
    return {reinterpret_cast<const std::byte*>(&value), sizeof(T)};
  }
  static bool decode(std::span<const std::byte> bytes, T& value) {
    if (bytes.size() != sizeof(T)) return false;
    std::memcpy(&value, bytes.data(), sizeof(T));
    return true;
  }
};

template <>
struct QueueCodec<std::string> {
  static std::span<const std::byte> encode(const std::string& value, Bytes&) {
    return std::as_bytes(std::span(value.data(), value.size()));
  }
  static bool decode(std::span<const std::byte> bytes, std::string& value) {
    value.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return true;
  }
};

template <>
struct QueueCodec<Bytes> {
  static std::span<const std::byte> encode(const Bytes& value, Bytes&) { return value; }
  static bool decode(std::span<const std::byte> bytes, Bytes& value) {
    value.assign(bytes.begin(), bytes.end());
    return true;
  }
};

// Timeouts follow Python: a negative timeout (the default) waits forever.
using Timeout = std::chrono::duration<double>;
inline constexpr Timeout kForever{-1.0};

namespace detail {
// An error that get_many() met after it had taken values: kept until the next get on the
// handle rethrows it. Any thread may put or take it (one Queue object may serve many).
class DeferredError {
 public:
  DeferredError() = default;
  DeferredError(DeferredError&& other) noexcept : error_(other.error_.exchange(nullptr)) {}
  DeferredError& operator=(DeferredError&& other) noexcept {
    delete error_.exchange(other.error_.exchange(nullptr));
    return *this;
  }
  ~DeferredError() { delete error_.load(); }

  void put(std::exception_ptr error) { delete error_.exchange(new std::exception_ptr(error)); }
  std::exception_ptr take() noexcept {
    // Every get asks: a plain load answers the usual "none" without a locked exchange.
    // relaxed: a pointer seen here is taken below with the ordering it needs.
    if (error_.load(std::memory_order_relaxed) == nullptr) return nullptr;
    // acq_rel: the exception object was made before the pointer was published.
    std::exception_ptr* held = error_.exchange(nullptr, std::memory_order_acq_rel);
    if (held == nullptr) return nullptr;
    std::exception_ptr error = std::move(*held);
    delete held;
    return error;
  }

 private:
  std::atomic<std::exception_ptr*> error_{nullptr};
};
}  // namespace detail

// Contract: as ByteQueue (any thread of any process, one Queue object shared by many threads; a handle made before fork works in the
// child; put returns once the value is in shared memory, so a producer may exit at once).
// put/get throw Full/Empty on timeout, QueueClosed after close(), std::system_error(ENOMEM)
// at the memory cap, and get throws std::runtime_error for bytes that are not a T. The
// *_nowait calls return a RingStatus instead (kOk, kFull/kEmpty, kClosed, kNoMemory).
template <class T>
class Queue {
  using Codec = QueueCodec<T>;

 public:
  static Queue create(SharedArena& arena, BlockPool& pool, const QueueOptions& options = {}) {
    return Queue(ByteQueue::create(arena, pool, options));
  }
  static Queue attach(SharedArena& arena, BlockPool& pool, std::uint64_t offset) {
    return Queue(ByteQueue::attach(arena, pool, offset));
  }
  std::uint64_t offset() const noexcept { return queue_.offset(); }

  void put(const T& value, Timeout timeout = kForever) {
    Bytes scratch;
    queue_.put(Codec::encode(value, scratch), deadline_for(timeout));
  }
  RingStatus put_nowait(const T& value) noexcept {
    Bytes scratch;
    return queue_.put_nowait(Codec::encode(value, scratch));
  }
  void put_many(std::span<const T> values, Timeout timeout = kForever) {
    const Deadline deadline = deadline_for(timeout);
    Bytes scratch;
    for (const T& value : values) queue_.put(Codec::encode(value, scratch), deadline);
  }

  T get(Timeout timeout = kForever) {
    rethrow_deferred_error();
    ReceivedMessage message;
    queue_.get(message, deadline_for(timeout));
    return decoded_or_held(message);
  }
  RingStatus get_nowait(T& value) {
    rethrow_deferred_error();
    ReceivedMessage message;
    const RingStatus status = queue_.get_nowait(message);
    if (status == RingStatus::kOk) value = decoded_or_held(message);
    return status;
  }
  // Blocks for the first value, then takes what is ready, up to max_count. A failure after
  // the first value (a message that does not decode as T) is thrown by the next get, so that
  // the values already taken off the queue are returned, not lost.
  std::vector<T> get_many(std::size_t max_count, Timeout timeout = kForever) {
    std::vector<T> values;
    if (max_count == 0) return values;
    values.push_back(get(timeout));
    T value{};
    try {
      while (values.size() < max_count && get_nowait(value) == RingStatus::kOk) {
        values.push_back(std::move(value));
      }
    } catch (...) {
      deferred_error_.put(std::current_exception());
    }
    return values;
  }

  std::size_t qsize() const noexcept { return queue_.qsize(); }
  bool empty() const noexcept { return queue_.empty(); }
  bool full() const noexcept { return queue_.full(); }
  void close() noexcept { queue_.close(); }
  bool closed() const noexcept { return queue_.closed(); }
  RingCounters counters() const noexcept { return queue_.counters(); }
  ByteQueue& bytes() noexcept { return queue_; }

 private:
  explicit Queue(ByteQueue queue) : queue_(std::move(queue)) {}

  static Deadline deadline_for(Timeout timeout) {
    return Deadline::for_timeout(timeout.count());
  }
  // Decodes straight from shared memory (a chained message, in pieces, is copied whole
  // first). A message whose decoding runs out of memory (std::bad_alloc, e.g. a std::string
  // of hundreds of MB) is held back, as ByteQueue holds one it could not copy out: the
  // thread's next get on this queue decodes it again instead of taking the next.
  T decoded_or_held(ReceivedMessage& message) {
    try {
      T value = decoded(message);
      message.release();
      return value;
    } catch (const std::bad_alloc&) {
      queue_.hold_back(message);
      throw;
    }
  }

  static T decoded(const ReceivedMessage& message) {
    T value{};
    bool valid;
    if (message.chained()) {
      Bytes whole;
      message.copy_to(whole);
      if constexpr (std::is_same_v<T, Bytes>) return whole;
      valid = Codec::decode(whole, value);
    } else {
      valid = Codec::decode(message.bytes(), value);
    }
    if (!valid) {
      throw std::runtime_error("queue message of " + std::to_string(message.size()) +
                               " bytes is not a valid value of the queue's type");
    }
    return value;
  }

  void rethrow_deferred_error() {
    if (std::exception_ptr error = deferred_error_.take()) std::rethrow_exception(error);
  }

  ByteQueue queue_;
  detail::DeferredError deferred_error_;
};

// A queue handle travels to another process as its offset and is rebuilt there against
// the receiver's arena and pool (the same segment, mapped before the fork).
template <class T>
struct Codec<Queue<T>> {
  static void encode(ArgWriter& out, const Queue<T>& queue) { out.write_raw(queue.offset()); }
  static Queue<T> decode(ArgReader& in) {
    const auto offset = in.read_raw<std::uint64_t>();
    const DecodeContext& context = in.context();
    if (context.arena == nullptr || context.pool == nullptr) {
      throw std::runtime_error("a Queue argument needs the runtime's arena and pool");
    }
    return Queue<T>::attach(*context.arena, *context.pool, offset);
  }
};

}  // namespace ringfork
