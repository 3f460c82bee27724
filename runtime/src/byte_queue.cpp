#include "ringfork/byte_queue.h"

#include "ringfork/current_pid.h"

#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <system_error>

namespace ringfork {
namespace {

// Blocks of a chain start with this header; a single-block payload has none.
struct ChainHeader {
  std::uint64_t next;   // offset of the next block, 0 at the end
  std::uint64_t bytes;  // payload bytes in this block
};
constexpr std::size_t kChainHeaderBytes = sizeof(ChainHeader);

// A short message that travels inside its descriptor: no blocks to own, check or free.
bool travels_inline(const QueueDescriptor& descriptor) noexcept {
  return descriptor.payload == 0 && descriptor.length <= QueueDescriptor::kInlineBytes;
}

}  // namespace

ByteQueue ByteQueue::create(SharedArena& arena, BlockPool& pool, const QueueOptions& options) {
  const bool bounded = options.maxsize != 0;
  if (!bounded && options.max_backlog == 0) {
    throw std::invalid_argument("QueueOptions.max_backlog must be positive for an unbounded queue");
  }
  const std::size_t held = bounded ? options.maxsize : options.max_backlog;
  if (held > (std::size_t{1} << 32)) {
    throw std::invalid_argument("queue may hold at most 2^32 messages, asked for " +
                                std::to_string(held));
  }
  const std::uint64_t control =
      arena.allocate_or_throw(sizeof(QueueControl), alignof(QueueControl), "a queue");
  auto* header = new (arena.segment().at(Offset<QueueControl>{control})) QueueControl{};
  RingChain<QueueDescriptor>::create(arena, header->rings, held, !bounded);
  header->magic = QueueControl::kMagic;
  header->version = QueueControl::kVersion;
  header->maxsize = options.maxsize;
  header->pool_offset = pool.offset();
  return ByteQueue(arena, pool, control, options.maxsize,
                   RingChain<QueueDescriptor>::attach(arena, header->rings));
}

ByteQueue ByteQueue::attach(SharedArena& arena, BlockPool& pool, std::uint64_t offset) {
  const auto* header = arena.segment().try_at(Offset<QueueControl>{offset});
  if (header == nullptr || header->magic != QueueControl::kMagic ||
      header->version != QueueControl::kVersion) {
    throw std::invalid_argument("no queue at segment offset " + std::to_string(offset) +
                                " (pass the value of Queue::offset())");
  }
  if (header->pool_offset != pool.offset()) {
    throw std::invalid_argument("the queue at offset " + std::to_string(offset) +
                                " uses the block pool at offset " +
                                std::to_string(header->pool_offset) + ", not " +
                                std::to_string(pool.offset()));
  }
  auto* control = arena.segment().at(Offset<QueueControl>{offset});
  return ByteQueue(arena, pool, offset, header->maxsize,
                   RingChain<QueueDescriptor>::attach(arena, control->rings));
}

RingStatus ByteQueue::stage(std::span<const std::byte> message,
                            QueueDescriptor& descriptor) noexcept {
  descriptor.length = message.size();
  descriptor.payload = 0;
  if (message.size() <= QueueDescriptor::kInlineBytes) {
    if (!message.empty()) std::memcpy(descriptor.inline_bytes, message.data(), message.size());
    return RingStatus::kOk;
  }
  const Segment& segment = arena_->segment();
  const std::size_t largest = pool_->max_block_bytes();
  if (message.size() <= largest) {
    std::uint64_t block = 0;
    if (pool_->allocate(message.size(), block)) return RingStatus::kNoMemory;
    std::memcpy(segment.base() + block, message.data(), message.size());
    descriptor.payload = block;
    return RingStatus::kOk;
  }
  // Longer than the largest block: a chain of them, each led by a ChainHeader. Built back
  // to front so each block can name its successor as it is written.
  const std::size_t per_block = largest - kChainHeaderBytes;
  const std::size_t blocks = (message.size() + per_block - 1) / per_block;
  std::uint64_t next = 0;
  for (std::size_t i = blocks; i-- > 0;) {
    const std::size_t begin = i * per_block;
    const std::size_t bytes = std::min(per_block, message.size() - begin);
    std::uint64_t block = 0;
    if (pool_->allocate(kChainHeaderBytes + bytes, block)) {
      descriptor.payload = next;
      discard(descriptor);
      return RingStatus::kNoMemory;
    }
    auto* header = reinterpret_cast<ChainHeader*>(segment.base() + block);
    header->next = next;
    header->bytes = bytes;
    std::memcpy(segment.base() + block + kChainHeaderBytes, message.data() + begin, bytes);
    next = block;
  }
  descriptor.payload = next;
  return RingStatus::kOk;
}

void ByteQueue::hand_over(const QueueDescriptor& descriptor) noexcept {
  if (descriptor.payload == 0) return;  // inline: no blocks
  // The queue owns the blocks before the message becomes visible: a producer killed after
  // publishing must not have reclaim(pid) free blocks a consumer is about to read.
  const bool chained = descriptor.length > pool_->max_block_bytes();
  for (std::uint64_t block = descriptor.payload; block != 0;) {
    pool_->set_owner(block, BlockPool::kSharedOwner);
    if (!chained) return;
    const auto* header = arena_->segment().try_at(Offset<ChainHeader>{block});
    block = header == nullptr ? 0 : header->next;
  }
}

void ByteQueue::discard(const QueueDescriptor& descriptor) noexcept {
  if (descriptor.payload == 0) return;
  if (descriptor.length <= pool_->max_block_bytes()) {
    pool_->free(descriptor.payload);
    return;
  }
  const Segment& segment = arena_->segment();
  for (std::uint64_t block = descriptor.payload; block != 0;) {
    const auto* header = segment.try_at(Offset<ChainHeader>{block});
    if (header == nullptr) return;
    const std::uint64_t next = header->next;
    pool_->free(block);
    block = next;
  }
}

bool ByteQueue::take_checked(ReceivedMessage& message) noexcept {
  const QueueDescriptor& descriptor = message.descriptor_;
  const std::uint64_t length = descriptor.length;
  if (descriptor.payload == 0) {
    if (length > QueueDescriptor::kInlineBytes) return false;
    message.first_ = length == 0 ? std::byte{0} : descriptor.inline_bytes[0];
    return true;
  }
  // Every length and offset below came from shared memory: check before use. The blocks
  // become ours first, so that if we die from here on, reclaim(our pid) returns them.
  const Segment& segment = arena_->segment();
  if (length <= pool_->max_block_bytes()) {
    if (pool_->block_bytes(descriptor.payload) < length) return false;
    pool_->set_owner(descriptor.payload, current_pid());
    message.first_ = length == 0 ? std::byte{0} : *(segment.base() + descriptor.payload);
    return true;
  }
  message.chained_ = true;
  std::uint64_t seen = 0;
  for (std::uint64_t block = descriptor.payload; block != 0;) {
    const auto* header = segment.try_at(Offset<ChainHeader>{block});
    if (header == nullptr) return false;
    const std::uint64_t bytes = header->bytes;
    const std::uint64_t next = header->next;
    if (bytes == 0 || bytes > length - seen ||
        bytes + kChainHeaderBytes > pool_->block_bytes(block)) {
      return false;
    }
    pool_->set_owner(block, current_pid());
    if (seen == 0) message.first_ = *(segment.base() + block + kChainHeaderBytes);
    seen += bytes;
    block = next;
  }
  return seen == length;
}

bool ByteQueue::adopt(const QueueDescriptor& descriptor, ReceivedMessage& message) noexcept {
  message.descriptor_ = descriptor;
  message.first_ = std::byte{0};
  message.chained_ = false;
  return take_checked(message);
}

void ByteQueue::finish_take(ReceivedMessage& message, bool intact) {
  if (!intact) {
    // Corrupt: its blocks (if any are real) stay where they are; freeing them on the word of
    // a corrupt descriptor could free someone else's.
    throw std::runtime_error("corrupt queue message: length " +
                             std::to_string(message.descriptor_.length) + " at block " +
                             std::to_string(message.descriptor_.payload));
  }
  message.queue_ = this;
}

// Reads a slot into a ReceivedMessage inside the claim, so that the blocks are this
// process's before the slot is let go (see the crash accounting in byte_queue.h).
struct ByteQueue::Taking {
  ByteQueue& queue;
  ReceivedMessage& message;
  bool& intact;
  void operator()(const QueueDescriptor& slot) const noexcept {
    intact = queue.adopt(slot, message);
  }
};

std::span<const std::byte> ReceivedMessage::bytes() const noexcept {
  if (queue_ == nullptr || chained_) return {};
  if (descriptor_.payload == 0) return {descriptor_.inline_bytes, descriptor_.length};
  return {queue_->arena_->segment().base() + descriptor_.payload, descriptor_.length};
}

bool ReceivedMessage::copy_to(std::byte* out, std::size_t from) const noexcept {
  const std::uint64_t length = descriptor_.length;
  if (queue_ == nullptr || from > length) return from == 0 && length == 0;
  if (!chained_) {
    if (length > from) std::memcpy(out, bytes().data() + from, length - from);
    return true;
  }
  // Checked when taken, but the headers are in shared memory: check again as we go.
  const Segment& segment = queue_->arena_->segment();
  const BlockPool& pool = *queue_->pool_;
  std::uint64_t offset = 0;  // of the current block's first byte within the message
  std::uint64_t block = descriptor_.payload;
  while (block != 0 && offset < length) {
    const auto* header = segment.try_at(Offset<ChainHeader>{block});
    if (header == nullptr) return false;
    const std::uint64_t bytes = header->bytes;
    const std::uint64_t next = header->next;
    if (bytes > length - offset || bytes + kChainHeaderBytes > pool.block_bytes(block)) {
      return false;
    }
    if (offset + bytes > from) {
      const std::uint64_t skip = from > offset ? from - offset : 0;
      std::memcpy(out + (offset + skip - from), segment.base() + block + kChainHeaderBytes + skip,
                  bytes - skip);
    }
    offset += bytes;
    block = next;
  }
  return offset == length && block == 0;
}

void ReceivedMessage::release() noexcept {
  if (queue_ == nullptr) return;
  queue_->discard(descriptor_);
  queue_ = nullptr;
}

void ReceivedMessage::copy_to(std::vector<std::byte>& out) const {
  out.resize(size());
  if (!copy_to(out.data())) {
    throw std::runtime_error("corrupt queue message: a chained message of " +
                             std::to_string(size()) + " bytes lost a link while read");
  }
}

void ByteQueue::copy_out(ReceivedMessage& message, std::vector<std::byte>& out) {
  try {
    message.copy_to(out);
  } catch (const std::bad_alloc&) {
    hold_back(message);
    throw;
  }
}

namespace {

// Writes a short message straight into its ring slot: no descriptor copied through the stack.
struct InlineWriter {
  std::span<const std::byte> message;
  void operator()(QueueDescriptor& slot) const noexcept {
    slot.length = message.size();
    slot.payload = 0;
    if (!message.empty()) std::memcpy(slot.inline_bytes, message.data(), message.size());
  }
};

}  // namespace

// Publishes a staged message, handing its blocks to the queue inside the slot's claim: until
// then they are the producer's, so a producer killed while it waits for room (or before it
// claims) leaves blocks that reclaim(its pid) returns.
struct ByteQueue::HandingOver {
  ByteQueue& queue;
  const QueueDescriptor& descriptor;
  void operator()(QueueDescriptor& slot) const noexcept {
    queue.hand_over(descriptor);
    slot = descriptor;
  }
};

RingStatus ByteQueue::put_nowait(std::span<const std::byte> message) noexcept {
  if (message.size() <= QueueDescriptor::kInlineBytes) {
    return rings_.try_push_with(InlineWriter{message});
  }
  QueueDescriptor descriptor;
  if (const RingStatus staged = stage(message, descriptor); staged != RingStatus::kOk) {
    return staged;
  }
  const RingStatus status = rings_.try_push_with(HandingOver{*this, descriptor});
  if (status != RingStatus::kOk) discard(descriptor);
  return status;
}

void ByteQueue::put(std::span<const std::byte> message, Deadline deadline) {
  // An unbounded queue never waits for a reader: a full ring there is the backlog cap.
  const auto fail = [&](RingStatus status) {
    throw_for(maxsize_ == 0 && status == RingStatus::kFull ? RingStatus::kNoMemory : status,
              message.size(), "put");
  };
  if (message.size() <= QueueDescriptor::kInlineBytes) {
    const InlineWriter write{message};
    const RingStatus status =
        maxsize_ == 0 ? rings_.try_push_with(write) : rings_.push_with(write, deadline);
    if (status != RingStatus::kOk) fail(status);
    return;
  }
  QueueDescriptor descriptor;
  if (const RingStatus staged = stage(message, descriptor); staged != RingStatus::kOk) {
    throw_for(staged, message.size(), "put");
  }
  const HandingOver write{*this, descriptor};
  const RingStatus status =
      maxsize_ == 0 ? rings_.try_push_with(write) : rings_.push_with(write, deadline);
  if (status == RingStatus::kOk) return;
  discard(descriptor);
  fail(status);
}

void ByteQueue::put_many(std::span<const std::span<const std::byte>> messages, Deadline deadline) {
  for (std::span<const std::byte> message : messages) put(message, deadline);
}

RingStatus ByteQueue::get_nowait(ReceivedMessage& message) {
  message.release();
  if (take_held(message)) return RingStatus::kOk;
  bool intact = false;
  const RingStatus status = rings_.try_pop_with(Taking{*this, message, intact});
  if (status == RingStatus::kOk) finish_take(message, intact);
  return status;
}

void ByteQueue::get(ReceivedMessage& message, Deadline deadline) {
  message.release();
  if (take_held(message)) return;
  bool intact = false;
  const RingStatus status = rings_.pop_with(Taking{*this, message, intact}, deadline);
  if (status != RingStatus::kOk) throw_for(status, 0, "get");
  finish_take(message, intact);
}

// Reads a taken slot: a short message goes straight into `out` when it fits its capacity
// (resize then allocates nothing, so this cannot throw inside the ring's claim); anything
// else is taken into `spilled` for copy_out to finish after the claim.
struct ByteQueue::VectorReader {
  ByteQueue& queue;
  std::vector<std::byte>& out;
  ReceivedMessage& spilled;
  bool& done;
  bool& intact;
  void operator()(const QueueDescriptor& slot) const noexcept {
    const std::uint64_t length = slot.length;
    if (travels_inline(slot) && length <= out.capacity()) {
      out.resize(length);
      if (length != 0) std::memcpy(out.data(), slot.inline_bytes, length);
      done = true;
      return;
    }
    intact = queue.adopt(slot, spilled);
  }
};

RingStatus ByteQueue::get_nowait(std::vector<std::byte>& message) {
  ReceivedMessage spilled;
  if (take_held(spilled)) {
    copy_out(spilled, message);
    return RingStatus::kOk;
  }
  bool done = false, intact = false;
  const RingStatus status =
      rings_.try_pop_with(VectorReader{*this, message, spilled, done, intact});
  if (status == RingStatus::kOk && !done) {
    finish_take(spilled, intact);
    copy_out(spilled, message);
  }
  return status;
}

void ByteQueue::get(std::vector<std::byte>& message, Deadline deadline) {
  ReceivedMessage spilled;
  if (take_held(spilled)) {
    copy_out(spilled, message);
    return;
  }
  bool done = false, intact = false;
  const RingStatus status =
      rings_.pop_with(VectorReader{*this, message, spilled, done, intact}, deadline);
  if (status != RingStatus::kOk) throw_for(status, 0, "get");
  if (!done) {
    finish_take(spilled, intact);
    copy_out(spilled, message);
  }
}

std::size_t ByteQueue::get_many(std::vector<std::vector<std::byte>>& messages,
                                std::size_t max_count, Deadline deadline) {
  messages.clear();
  if (max_count == 0) return 0;
  // Each message lands in `messages` only once taken, so a get that throws (the first one's
  // Empty or QueueClosed, a later one's error) leaves no empty message that was never put.
  std::vector<std::byte> message;
  get(message, deadline);
  messages.push_back(std::move(message));
  while (messages.size() < max_count) {
    if (get_nowait(message) != RingStatus::kOk) break;
    messages.push_back(std::move(message));
  }
  return messages.size();
}

void ByteQueue::throw_for(RingStatus status, std::size_t bytes, const char* operation) const {
  switch (status) {
    case RingStatus::kFull:
    case RingStatus::kTimedOut:
      if (std::string(operation) == "get") throw Empty("queue get timed out: the queue is empty");
      throw Full("queue put timed out: the queue holds its maxsize of " +
                 std::to_string(maxsize_) + " messages");
    case RingStatus::kEmpty:
      throw Empty("queue is empty");
    case RingStatus::kClosed:
      throw QueueClosed(std::string("queue ") + operation + " on a closed queue");
    case RingStatus::kNoMemory: {
      // A ring also answers kNoMemory to a thread that finds its participant registry full.
      const std::string too_many_threads =
          "more than " + std::to_string(ClaimRegistry::kMaxRecords) +
          " live threads (in all processes) " + operation + " through one of its rings";
      if (std::string_view(operation) == "get") {
        throw std::system_error(ENOMEM, std::generic_category(),
                                "queue get failed: " + too_many_threads);
      }
      throw std::system_error(
          ENOMEM, std::generic_category(),
          "queue put of a message of " + std::to_string(bytes) + " bytes failed: its memory cap "
              "was reached (" + std::to_string(qsize()) + " messages held; raise "
              "BlockPoolOptions.max_bytes, QueueOptions.max_backlog or the segment capacity, or "
              "read from the queue), or " + too_many_threads);
    }
    case RingStatus::kOk:
      break;
  }
  throw std::logic_error("queue: unexpected status");
}

}  // namespace ringfork
