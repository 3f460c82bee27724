// QueueCore: what ringfork.Queue, SimpleQueue and JoinableQueue share: a ByteQueue in the
// process tree's shared segment, the framing of Python objects into its messages, and the
// GIL-aware blocking that keeps Ctrl-C working.
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "joinable_state.h"
#include "ringfork/byte_queue.h"

namespace ringfork::python {

namespace py = pybind11;

enum class QueueKind : int { kQueue = 0, kSimple = 1, kJoinable = 2 };

// One Python object is one queue message, so the queue's whole-or-nothing guarantee covers
// the object: a producer killed mid-put never leaves a torn one. The first byte says what
// the message holds:
//   0x80        a protocol-5 pickle, sent as is: 0x80 is pickle's own PROTO opcode;
//   0x01, 0x02  a one-byte tag before raw bytes, returned as bytes / bytearray;
//   0x00-0x07   reserved for tags;
//   other       raw bytes sent untagged, returned as bytes (the whole message).
// Leaving the tag off bytes that cannot be mistaken for a tagged message (almost all) spares
// put() a framing copy and keeps an N-byte payload in an N-byte block class: 4096 bytes plus
// a tag would need the next class, 16 KiB. An empty message is b"".
enum MessageTag : unsigned char {
  kTagBytes = 0x01,      // bytes, or a memoryview's bytes: get() returns bytes
  kTagByteArray = 0x02,  // bytearray: get() returns a bytearray
  kLastReservedTag = 0x07,
  kTagPickle = 0x80,  // pickle.dumps(obj, protocol=5)
};

// True if raw bytes starting with `first` would read as a tagged message, so need a tag.
constexpr bool needs_tag(unsigned char first) noexcept {
  return first <= kLastReservedTag || first == kTagPickle;
}

// Contract: methods are called with the GIL held (pybind11's default), from any thread of
// any process the segment was inherited by. put/get/join release the GIL while they block
// (in slices of kSlice, checking for signals between slices, so Ctrl-C raises
// KeyboardInterrupt within about kSlice) and while they copy large payloads. close() is
// this handle's alone, as with multiprocessing: later put/get on it raise ValueError, other
// handles and processes carry on. Raises queue.Full / queue.Empty, ValueError after close,
// MemoryError at the memory cap, pickling errors from put itself.
class QueueCore {
 public:
  QueueCore(QueueKind kind, long maxsize);
  // Rebuilds a handle from what reduce() pickled; RuntimeError if this process does not
  // share the segment the queue lives in.
  QueueCore(QueueKind kind, std::uint64_t offset, std::uint64_t joinable_offset,
            std::uint64_t token);

  void put(py::handle object, bool block, std::optional<double> timeout);
  py::object get(bool block, std::optional<double> timeout);
  std::size_t qsize() const noexcept { return queue_.qsize(); }
  bool empty() const noexcept { return queue_.empty(); }
  bool full() const noexcept { return queue_.full(); }
  std::size_t maxsize() const noexcept { return queue_.maxsize(); }
  RingCounters counters() const noexcept { return queue_.counters(); }
  void close() noexcept { closed_ = true; }
  bool closed() const noexcept { return closed_; }

  // JoinableQueue only.
  void task_done();
  void join();

  // (kind, offset, joinable_offset, token): the arguments of the constructor above.
  py::tuple reduce_args() const;
  std::string describe() const;

  static constexpr auto kSlice = std::chrono::milliseconds(50);

 private:
  void check_open(const char* operation) const;
  void finish_task_unchecked() noexcept;

  QueueKind kind_;
  ByteQueue queue_;
  JoinableState* joinable_ = nullptr;  // in the segment; JoinableQueue only
  std::uint64_t joinable_offset_ = 0;
  bool closed_ = false;
};

// Looks up what the framing needs (pickle.dumps/loads, queue.Full/Empty); call once at import.
void init_queue_core();
// Raises a Python exception of `type` with `message` (as error_already_set).
[[noreturn]] void raise_python(PyObject* type, const std::string& message);
PyObject* queue_full_type() noexcept;
PyObject* queue_empty_type() noexcept;

}  // namespace ringfork::python
