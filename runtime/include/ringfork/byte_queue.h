// ByteQueue: the untyped core of Queue<T>. Messages of any length, from 0 bytes to hundreds of
// MB, between any threads of any processes that map the segment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <vector>

#include "ringfork/arena.h"
#include "ringfork/block_pool.h"
#include "ringfork/deadline.h"
#include "ringfork/ring_chain.h"
#include "ringfork/ring_mpmc.h"

namespace ringfork {

// Python's queue.Full / queue.Empty, for the blocking calls that time out.
class Full : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class Empty : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// A put on a closed queue, or a get on a closed queue with nothing left.
class QueueClosed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct QueueOptions {
  // 0: unbounded, like multiprocessing.Queue(): put never waits for a reader. Otherwise put
  // blocks (with a timeout) while maxsize messages are held.
  std::size_t maxsize = 0;
  // Unbounded queues: put fails with the memory-cap error once this many messages are held
  // (a little later while older rings drain: never twice as many). Rings of descriptors
  // (128 B each) start at 1024 slots and double as the backlog grows (ring_chain.h).
  std::size_t max_backlog = std::size_t{1} << 22;
};

// One message's descriptor in the ring: short payloads inline (one cache-line pair per
// message, no allocation), longer ones in a block from the BlockPool, the longest in a
// chain of the largest blocks.
struct QueueDescriptor {
  static constexpr std::size_t kInlineBytes = 104;
  std::uint64_t length;
  std::uint64_t payload;  // block offset, 0 when inline
  std::byte inline_bytes[kInlineBytes];
};
static_assert(sizeof(MpmcSlot<QueueDescriptor>) == 128, "a descriptor slot is two cache lines");

struct QueueControl {
  static constexpr std::uint64_t kMagic = 0x4555455551464752;  // "RGFQUEUE"
  static constexpr std::uint32_t kVersion = 2;
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t reserved;
  std::uint64_t maxsize;
  std::uint64_t pool_offset;
  RingChainControl rings;
};
static_assert(std::is_standard_layout_v<QueueControl>, "read by other processes");

class ByteQueue;

// One message taken off a ByteQueue whose bytes are still where the producer put them: in
// shared memory (or, if short, in this object's copy of the descriptor). The caller reads or
// copies them once, straight to where they are needed, and the destructor (or release())
// frees the blocks. While held, the blocks belong to this process, so if it dies,
// BlockPool::reclaim(pid) returns them. Not copyable or movable (bytes() may point into it);
// one thread at a time. Must not outlive the queue handle that filled it.
class ReceivedMessage {
 public:
  ReceivedMessage() = default;
  ReceivedMessage(const ReceivedMessage&) = delete;
  ReceivedMessage& operator=(const ReceivedMessage&) = delete;
  ~ReceivedMessage() { release(); }

  bool holds() const noexcept { return queue_ != nullptr; }
  std::size_t size() const noexcept { return descriptor_.length; }
  // The first byte (std::byte{0} for an empty message), to choose a decoding before copying.
  std::byte first_byte() const noexcept { return first_; }
  // True for messages longer than the pool's largest block: they lie in several pieces.
  bool chained() const noexcept { return chained_; }
  // The bytes in place; only for a message that is not chained().
  std::span<const std::byte> bytes() const noexcept;
  // Copies bytes [from, size()) to `out`, which has room for size() - from. False if a
  // chained message's links were corrupted since it was taken (its blocks are then left).
  bool copy_to(std::byte* out, std::size_t from = 0) const noexcept;
  // The whole message into `out` (resized to fit). Throws std::bad_alloc, and
  // std::runtime_error where copy_to above is false.
  void copy_to(std::vector<std::byte>& out) const;
  // Frees the message's blocks; the object is empty afterwards.
  void release() noexcept;

 private:
  friend class ByteQueue;
  ByteQueue* queue_ = nullptr;
  QueueDescriptor descriptor_{};
  std::byte first_{};
  bool chained_ = false;
};

// Contract: any thread of any process mapping the segment may put and get; a handle made
// before fork() works in the child as is, and attach(offset) rebuilds one anywhere else.
// put copies the message into shared memory and returns; the data then outlives its
// producer. A message is delivered whole or not at all, even if its producer is killed
// mid-put. The *_nowait calls return a status and never throw (they may allocate the
// returned buffer); put/get block up to a deadline and throw Full/Empty when it passes,
// QueueClosed after close(), and std::system_error(ENOMEM) when the memory cap (the block
// pool's max_bytes, or max_backlog messages) is reached.
//
// Crash accounting: a producer's blocks belong to it (reclaim(pid) returns them) until it
// hands them to the queue, inside its claim of a ring slot, just before publishing (not
// before a put that waits for room); a producer killed in that instant loses its one
// unpublished message and leaks its blocks (at most one message's worth per kill). A
// consumer takes a message's blocks inside its claim of the slot, so reclaim(pid) returns
// what a consumer killed while copying out held; one killed inside the claim itself loses
// that message (the ring counts it) and may leak its blocks.
//
// Memory: get(std::vector) that takes a message and then cannot allocate the vector throws
// std::bad_alloc and keeps the message: the same thread's next get on this queue returns it
// first. (A thread that exits holding one leaves its blocks to reclaim(pid) when the process
// ends.) get(ReceivedMessage&) reads in place and allocates nothing: the way to take a
// message larger than the memory the caller can spare.
class ByteQueue {
 public:
  static ByteQueue create(SharedArena& arena, BlockPool& pool, const QueueOptions& options = {});
  static ByteQueue attach(SharedArena& arena, BlockPool& pool, std::uint64_t offset);
  std::uint64_t offset() const noexcept { return offset_; }
  // With offset(), which queue this is: handles of one queue in a process have both equal.
  const SharedArena& arena() const noexcept { return *arena_; }

  RingStatus put_nowait(std::span<const std::byte> message) noexcept;
  void put(std::span<const std::byte> message, Deadline deadline = Deadline::never());
  // Puts all messages, in order; blocks like put for each one that does not fit.
  void put_many(std::span<const std::span<const std::byte>> messages,
                Deadline deadline = Deadline::never());

  // On kOk `message` holds the next message, in place (see ReceivedMessage); a message it
  // held before is released first. Both throw std::runtime_error for a corrupt descriptor.
  RingStatus get_nowait(ReceivedMessage& message);
  void get(ReceivedMessage& message, Deadline deadline = Deadline::never());

  // Keeps a message taken with get(ReceivedMessage&) that the caller could not use for want
  // of memory (what it decodes the bytes into): this thread's next get on this queue returns
  // it first. `message` is empty afterwards. The get(std::vector) calls do this themselves.
  // A thread holds one message per queue, for up to four queues; past that, the message is
  // released (lost).
  void hold_back(ReceivedMessage& message) noexcept;

  // On kOk `message` holds the bytes (resized to fit; its capacity is reused).
  RingStatus get_nowait(std::vector<std::byte>& message);
  void get(std::vector<std::byte>& message, Deadline deadline = Deadline::never());
  // Blocks for the first message, then takes up to max_count without waiting further. If a
  // get after the first throws, `messages` still holds every message taken before it.
  std::size_t get_many(std::vector<std::vector<std::byte>>& messages, std::size_t max_count,
                       Deadline deadline = Deadline::never());

  std::size_t qsize() const noexcept { return rings_.size(); }
  bool empty() const noexcept { return qsize() == 0; }
  bool full() const noexcept { return maxsize_ != 0 && qsize() >= maxsize_; }
  std::size_t maxsize() const noexcept { return maxsize_; }
  void close() noexcept { rings_.close(); }
  bool closed() const noexcept { return rings_.closed(); }
  RingCounters counters() const noexcept { return rings_.counters(); }
  // Rings made so far: 1 for a bounded queue; an unbounded one links larger ones as it fills.
  std::size_t ring_count() const noexcept { return rings_.ring_count(); }

 private:
  ByteQueue(SharedArena& arena, BlockPool& pool, std::uint64_t offset, std::size_t maxsize,
            RingChain<QueueDescriptor> rings)
      : arena_(&arena), pool_(&pool), offset_(offset), maxsize_(maxsize), rings_(std::move(rings)) {}

  // Copies `message` into shared memory described by `descriptor`.
  RingStatus stage(std::span<const std::byte> message, QueueDescriptor& descriptor) noexcept;
  // Marks a staged message's blocks as the queue's (BlockPool::kSharedOwner).
  void hand_over(const QueueDescriptor& descriptor) noexcept;
  struct HandingOver;  // the ring write that calls hand_over() inside the claim
  // Frees the blocks of a staged message that was not published.
  void discard(const QueueDescriptor& descriptor) noexcept;
  // Inside a slot's claim: checks the descriptor and makes its blocks this process's; false
  // if it is corrupt. finish_take() then throws for a corrupt one, or arms the message.
  bool adopt(const QueueDescriptor& descriptor, ReceivedMessage& message) noexcept;
  void finish_take(ReceivedMessage& message, bool intact);
  bool take_checked(ReceivedMessage& message) noexcept;
  struct Taking;        // the ring read that adopts a slot into a ReceivedMessage
  struct VectorReader;  // the ring read for get(std::vector): short messages in place
  // Copies a taken message out; if the vector cannot be allocated, holds the message back
  // (below) and rethrows std::bad_alloc.
  void copy_out(ReceivedMessage& message, std::vector<std::byte>& out);
  // take_held() moves the message hold_back() kept into `message` and returns true if this
  // thread holds one of this queue (held_message.cpp).
  bool take_held(ReceivedMessage& message) noexcept;

  friend class ReceivedMessage;
  [[noreturn]] void throw_for(RingStatus status, std::size_t bytes, const char* operation) const;

  SharedArena* arena_;
  BlockPool* pool_;
  std::uint64_t offset_;
  std::size_t maxsize_;
  RingChain<QueueDescriptor> rings_;
};

}  // namespace ringfork
