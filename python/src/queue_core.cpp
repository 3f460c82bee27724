#include "queue_core.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <array>
#include <cstring>
#include <span>
#include <vector>

#include "ringfork/deadline.h"
#include "shared_runtime.h"

namespace ringfork::python {
namespace {

// Payloads at least this long are copied with the GIL released: other threads then run
// while a large object moves, and the release costs nothing next to the copy.
constexpr std::size_t kNoGilBytes = std::size_t{256} << 10;

// Set once by init_queue_core(), with the GIL held; strong references kept for the life of
// the process (the module cannot be unloaded).
PyObject* g_dumps = nullptr;
PyObject* g_loads = nullptr;
PyObject* g_protocol = nullptr;
PyObject* g_full = nullptr;
PyObject* g_empty = nullptr;

Deadline deadline_for(bool block, std::optional<double> timeout) {
  if (!block) return Deadline::now();
  if (!timeout) return Deadline::never();
  return Deadline::for_timeout(std::isnan(*timeout) ? *timeout : std::max(0.0, *timeout));
}

// Releases the GIL for a blocking wait or a long copy. A daemon thread still here when the
// interpreter finalizes must not take the GIL back: CPython ends such a thread with
// pthread_exit(), whose forced unwinding through this (noexcept) destructor aborted the
// whole process at exit. The thread is parked instead, as CPython means to leave it, and
// ends with the process.
class GilReleased {
 public:
  GilReleased() noexcept : state_(PyEval_SaveThread()) {}
  ~GilReleased() {
    while (interpreter_finalizing()) ::pause();
    PyEval_RestoreThread(state_);
  }
  GilReleased(const GilReleased&) = delete;
  GilReleased& operator=(const GilReleased&) = delete;

 private:
  static bool interpreter_finalizing() noexcept {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing() != 0;
#else
    return _Py_IsFinalizing() != 0;
#endif
  }
  PyThreadState* state_;
};

// Runs Python's signal handlers (the GIL is held); a KeyboardInterrupt they raise ends the
// wait.
void check_signals() {
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

std::span<const std::byte> byte_span(const void* data, std::size_t length) {
  return {static_cast<const std::byte*>(data), length};
}

// The bytes put() sends for one object, kept valid while the GIL is released: a bytes
// object is immutable, a bytearray cannot be resized while we hold its buffer export, and
// a pickle is ours. Raw buffers are framed (tag + bytes) on first use of framed(), which
// put() calls without the GIL for large payloads.
class OutgoingMessage {
 public:
  explicit OutgoingMessage(py::handle object) {
    PyObject* raw = object.ptr();
    if (PyBytes_CheckExact(raw)) {
      tag_ = kTagBytes;
      payload_ = byte_span(PyBytes_AS_STRING(raw), static_cast<std::size_t>(PyBytes_GET_SIZE(raw)));
    } else if (PyByteArray_CheckExact(raw) || PyMemoryView_Check(raw)) {
      tag_ = PyByteArray_CheckExact(raw) ? kTagByteArray : kTagBytes;
      if (PyObject_GetBuffer(raw, &view_, PyBUF_SIMPLE) == 0) {
        has_view_ = true;
        payload_ = byte_span(view_.buf, static_cast<std::size_t>(view_.len));
      } else {
        // A non-contiguous memoryview: tobytes() gathers it in C order.
        PyErr_Clear();
        owner_ = py::reinterpret_steal<py::object>(PyBytes_FromObject(raw));
        if (!owner_) throw py::error_already_set();
        payload_ = byte_span(PyBytes_AS_STRING(owner_.ptr()),
                             static_cast<std::size_t>(PyBytes_GET_SIZE(owner_.ptr())));
      }
    } else {
      // Pickled here, in the caller's thread: an unpicklable object fails in put() itself.
      PyObject* args[] = {raw, g_protocol};
      owner_ = py::reinterpret_steal<py::object>(PyObject_Vectorcall(g_dumps, args, 2, nullptr));
      if (!owner_) throw py::error_already_set();
      if (!PyBytes_Check(owner_.ptr()))
        throw std::runtime_error("pickle.dumps did not return bytes");
      tag_ = kTagPickle;
      framed_ = byte_span(PyBytes_AS_STRING(owner_.ptr()),
                          static_cast<std::size_t>(PyBytes_GET_SIZE(owner_.ptr())));
      if (framed_.empty() || static_cast<unsigned char>(framed_[0]) != kTagPickle) {
        throw std::runtime_error("pickle protocol 5 output does not start with PROTO");
      }
      is_framed_ = true;
    }
  }
  OutgoingMessage(const OutgoingMessage&) = delete;
  OutgoingMessage& operator=(const OutgoingMessage&) = delete;
  ~OutgoingMessage() {
    if (has_view_) PyBuffer_Release(&view_);
  }

  std::size_t size() const noexcept { return is_framed_ ? framed_.size() : payload_.size(); }
  bool large() const noexcept { return size() >= kNoGilBytes; }

  // Needs no GIL: touches only the buffers pinned above.
  std::span<const std::byte> framed() {
    if (is_framed_) return framed_;
    is_framed_ = true;
    if (tag_ == kTagBytes &&
        (payload_.empty() || !needs_tag(static_cast<unsigned char>(payload_[0])))) {
      framed_ = payload_;  // untagged: sent straight from the object's buffer
      return framed_;
    }
    std::byte* out = inline_frame_.data();
    if (payload_.size() + 1 > inline_frame_.size()) {
      heap_frame_.resize(payload_.size() + 1);
      out = heap_frame_.data();
    }
    out[0] = static_cast<std::byte>(tag_);
    if (!payload_.empty()) std::memcpy(out + 1, payload_.data(), payload_.size());
    framed_ = {out, payload_.size() + 1};
    return framed_;
  }

 private:
  unsigned char tag_ = kTagBytes;
  std::span<const std::byte> payload_;
  std::span<const std::byte> framed_;
  bool is_framed_ = false;
  py::object owner_;
  Py_buffer view_{};
  bool has_view_ = false;
  // Small raw payloads are framed here, without touching the heap.
  std::array<std::byte, 256> inline_frame_;
  std::vector<std::byte> heap_frame_;
};

// Turns a received message back into an object, reading its bytes where the producer left
// them: a pickle is unpickled in place, raw bytes are copied once, into the new object.
py::object decode(const ReceivedMessage& message) {
  const std::size_t length = message.size();
  if (length == 0) return py::bytes();
  const auto tag = static_cast<unsigned char>(message.first_byte());
  if (tag == kTagPickle) {
    py::object contiguous;  // a chained pickle (larger than the largest block), gathered
    std::span<const std::byte> bytes = message.bytes();
    if (message.chained()) {
      contiguous = py::reinterpret_steal<py::object>(
          PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(length)));
      if (!contiguous) throw py::error_already_set();
      auto* out = reinterpret_cast<std::byte*>(PyBytes_AS_STRING(contiguous.ptr()));
      bool copied = false;
      {
        // Nobody else sees the new object yet: safe to fill without the GIL.
        GilReleased nogil;
        copied = message.copy_to(out);
      }
      if (!copied) throw std::runtime_error("corrupt ringfork queue message: a broken chain");
      bytes = {out, length};
    }
    auto view = py::reinterpret_steal<py::object>(PyMemoryView_FromMemory(
        reinterpret_cast<char*>(const_cast<std::byte*>(bytes.data())),
        static_cast<Py_ssize_t>(length), PyBUF_READ));
    if (!view) throw py::error_already_set();
    PyObject* args[] = {view.ptr()};
    auto result = py::reinterpret_steal<py::object>(PyObject_Vectorcall(g_loads, args, 1, nullptr));
    // The view points into memory freed after we return: invalidate it, so a reference that
    // unpickling code kept raises ValueError instead of reading freed memory. loads() has
    // released its buffer by now, so this cannot fail for want of exports.
    // The error loads() raised is set aside meanwhile: calling into Python with an error
    // pending lost it (a failed unpickling surfaced as pybind11's "error indicator not set").
    PyObject *error_type = nullptr, *error_value = nullptr, *error_trace = nullptr;
    if (!result) PyErr_Fetch(&error_type, &error_value, &error_trace);
    PyObject* released = PyObject_CallMethod(view.ptr(), "release", nullptr);
    if (!result) {
      if (released == nullptr) PyErr_Clear();  // keep the error loads() raised
      Py_XDECREF(released);
      PyErr_Restore(error_type, error_value, error_trace);
      throw py::error_already_set();
    }
    if (released == nullptr) throw py::error_already_set();
    Py_DECREF(released);
    return result;
  }
  if (needs_tag(tag) && tag != kTagBytes && tag != kTagByteArray) {
    throw std::runtime_error("corrupt ringfork queue message: unknown tag " + std::to_string(tag));
  }
  // Untagged bytes are the whole message; a tag is skipped.
  const std::size_t skip = needs_tag(tag) ? 1 : 0;
  const auto payload = static_cast<Py_ssize_t>(length - skip);
  py::object result;
  char* out = nullptr;
  if (tag != kTagByteArray) {
    result = py::reinterpret_steal<py::object>(PyBytes_FromStringAndSize(nullptr, payload));
    if (result) out = PyBytes_AS_STRING(result.ptr());
  } else {
    result = py::reinterpret_steal<py::object>(PyByteArray_FromStringAndSize(nullptr, payload));
    if (result) out = PyByteArray_AS_STRING(result.ptr());
  }
  if (!result) throw py::error_already_set();
  bool copied = false;
  if (length >= kNoGilBytes) {
    // Nobody else sees the new object yet: safe to fill without the GIL.
    GilReleased nogil;
    copied = message.copy_to(reinterpret_cast<std::byte*>(out), skip);
  } else {
    copied = message.copy_to(reinterpret_cast<std::byte*>(out), skip);
  }
  if (!copied) throw std::runtime_error("corrupt ringfork queue message: a broken chain");
  return result;
}

std::size_t checked_maxsize(long maxsize) {
  // multiprocessing treats maxsize <= 0 as "no limit".
  return maxsize <= 0 ? 0 : static_cast<std::size_t>(maxsize);
}

ByteQueue create_queue(long maxsize) {
  SharedRuntime& runtime = SharedRuntime::instance();
  return ByteQueue::create(runtime.arena(), runtime.pool(),
                           QueueOptions{.maxsize = checked_maxsize(maxsize),
                                        .max_backlog = SharedRuntime::options().max_backlog});
}

const char kForkOnly[] =
    "ringfork queues live in a shared-memory segment that only processes forked from its "
    "creator inherit: use multiprocessing.get_context('fork') (or os.fork) for processes "
    "that use them";

SharedRuntime& runtime_for_attach(std::uint64_t token) {
  SharedRuntime* runtime = SharedRuntime::existing();
  if (runtime == nullptr || runtime->token() != token) {
    raise_python(PyExc_RuntimeError,
                 std::string("cannot unpickle a ringfork queue in this process (pid ") +
                     std::to_string(::getpid()) + "): it does not share the queue's segment. " +
                     kForkOnly);
  }
  return *runtime;
}

ByteQueue attach_queue(std::uint64_t offset, std::uint64_t token) {
  SharedRuntime& runtime = runtime_for_attach(token);
  return ByteQueue::attach(runtime.arena(), runtime.pool(), offset);
}

}  // namespace

void raise_python(PyObject* type, const std::string& message) {
  PyErr_SetString(type, message.c_str());
  throw py::error_already_set();
}

PyObject* queue_full_type() noexcept { return g_full; }
PyObject* queue_empty_type() noexcept { return g_empty; }

void init_queue_core() {
  py::module_ pickle = py::module_::import("pickle");
  py::module_ queue = py::module_::import("queue");
  g_dumps = py::object(pickle.attr("dumps")).release().ptr();
  g_loads = py::object(pickle.attr("loads")).release().ptr();
  g_protocol = py::int_(5).release().ptr();
  g_full = py::object(queue.attr("Full")).release().ptr();
  g_empty = py::object(queue.attr("Empty")).release().ptr();
}

QueueCore::QueueCore(QueueKind kind, long maxsize) : kind_(kind), queue_(create_queue(maxsize)) {
  if (kind_ != QueueKind::kJoinable) return;
  SharedArena& arena = SharedRuntime::instance().arena();
  joinable_offset_ = arena.allocate_or_throw(sizeof(JoinableState), kCacheLineSize,
                                             "a JoinableQueue's task count");
  // The arena hands out zeroed memory: a zero count and a ready EventCount.
  joinable_ = new (arena.segment().at(Offset<JoinableState>{joinable_offset_})) JoinableState{};
  joinable_->magic = JoinableState::kMagic;
  joinable_->version = JoinableState::kVersion;
}

QueueCore::QueueCore(QueueKind kind, std::uint64_t offset, std::uint64_t joinable_offset,
                     std::uint64_t token)
    : kind_(kind), queue_(attach_queue(offset, token)), joinable_offset_(joinable_offset) {
  if (kind_ != QueueKind::kJoinable) return;
  // Checked like every offset read from outside: it came through a pickle.
  auto* state = SharedRuntime::instance().segment().try_at(Offset<JoinableState>{joinable_offset});
  if (state == nullptr || state->magic != JoinableState::kMagic ||
      state->version != JoinableState::kVersion) {
    raise_python(PyExc_ValueError, "no JoinableQueue task count at segment offset " +
                                       std::to_string(joinable_offset));
  }
  joinable_ = state;
}

void QueueCore::check_open(const char* operation) const {
  if (closed_) raise_python(PyExc_ValueError, describe() + " is closed (" + operation + ")");
}

void QueueCore::put(py::handle object, bool block, std::optional<double> timeout) {
  check_open("put");
  const Deadline deadline = deadline_for(block, timeout);
  OutgoingMessage message(object);
  // Counted before the message can be seen, so a consumer's task_done() never finds 0.
  // relaxed: the ring's release publish of the message orders it for the consumer.
  if (joinable_ != nullptr) joinable_->unfinished.fetch_add(1, std::memory_order_relaxed);
  RingStatus status = RingStatus::kOk;
  try {
    if (message.large()) {
      GilReleased nogil;
      status = queue_.put_nowait(message.framed());
    } else {
      status = queue_.put_nowait(message.framed());
    }
    // Only a bounded queue waits for room; an unbounded one at its backlog cap is full of
    // memory, not of messages, and waiting would not help.
    while (status == RingStatus::kFull && queue_.maxsize() != 0 && !deadline.expired()) {
      {
        GilReleased nogil;
        try {
          queue_.put(message.framed(), deadline.min(Deadline::after(kSlice)));
          status = RingStatus::kOk;
        } catch (const Full&) {
        }
      }
      if (status == RingStatus::kOk) break;
      check_signals();
    }
  } catch (...) {
    finish_task_unchecked();
    throw;
  }
  if (status == RingStatus::kOk) return;
  finish_task_unchecked();
  switch (status) {
    case RingStatus::kFull:
      if (queue_.maxsize() != 0) {
        PyErr_SetNone(g_full);
        throw py::error_already_set();
      }
      raise_python(PyExc_MemoryError,
                   "ringfork queue holds " + std::to_string(queue_.qsize()) +
                       " messages, its backlog cap: read from it, or raise "
                       "ringfork.configure(max_backlog=...) before the first queue is made");
    case RingStatus::kClosed:
      raise_python(PyExc_ValueError, describe() + " was closed");
    default:
      raise_python(PyExc_MemoryError,
                   "ringfork shared memory exhausted putting a message of " +
                       std::to_string(message.size()) +
                       " bytes: read from the queues, or raise ringfork.configure(max_bytes=...) "
                       "before the first queue is made");
  }
}

py::object QueueCore::get(bool block, std::optional<double> timeout) {
  check_open("get");
  // Held on this frame, so a get() re-entered from unpickling code (or a signal handler)
  // takes a message of its own; the blocks are freed when it goes out of scope.
  ReceivedMessage message;
  RingStatus status = queue_.get_nowait(message);
  if (status == RingStatus::kEmpty && block) {
    const Deadline deadline = deadline_for(block, timeout);
    for (;;) {
      {
        GilReleased nogil;
        try {
          queue_.get(message, deadline.min(Deadline::after(kSlice)));
          status = RingStatus::kOk;
        } catch (const Empty&) {
        }
      }
      if (status == RingStatus::kOk || deadline.expired()) break;
      check_signals();
    }
  }
  if (status == RingStatus::kOk) {
    // Out of memory while unpickling: the message stays, and this thread's next get returns
    // it. Any other error consumes it, as in multiprocessing (else one bad message would
    // fail every get after it).
    try {
      return decode(message);
    } catch (py::error_already_set& error) {
      if (error.matches(PyExc_MemoryError)) queue_.hold_back(message);
      throw;
    } catch (const std::bad_alloc&) {
      queue_.hold_back(message);
      throw;
    }
  }
  if (status == RingStatus::kClosed) raise_python(PyExc_ValueError, describe() + " was closed");
  PyErr_SetNone(g_empty);
  throw py::error_already_set();
}

void QueueCore::finish_task_unchecked() noexcept {
  if (joinable_ == nullptr) return;
  // acq_rel: as task_done.
  if (joinable_->unfinished.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    joinable_->all_done.notify_all();
  }
}

void QueueCore::task_done() {
  std::uint64_t count = joinable_->unfinished.load(std::memory_order_relaxed);
  do {
    if (count == 0) raise_python(PyExc_ValueError, "task_done() called too many times");
    // acq_rel: the release half orders this task's work before a join() that sees zero
    // (join's acquire load); the acquire half keeps the count's history consistent.
  } while (!joinable_->unfinished.compare_exchange_weak(count, count - 1, std::memory_order_acq_rel,
                                                        std::memory_order_relaxed));
  if (count == 1) joinable_->all_done.notify_all();
}

void QueueCore::join() {
  for (;;) {
    // acquire: pairs with task_done's release, so the tasks' effects are visible on return.
    if (joinable_->unfinished.load(std::memory_order_acquire) == 0) return;
    {
      GilReleased nogil;
      const EventCount::Key key = joinable_->all_done.prepare_wait();
      if (joinable_->unfinished.load(std::memory_order_acquire) == 0) {
        joinable_->all_done.cancel_wait();
      } else {
        joinable_->all_done.commit_wait(key, Deadline::after(kSlice));
      }
    }
    check_signals();
  }
}

py::tuple QueueCore::reduce_args() const {
  // Under spawn or forkserver, multiprocessing pickles a Process's arguments for a process
  // that will not have the segment: say so now rather than fail in the child.
  py::object spawning = py::module_::import("multiprocessing.context").attr("get_spawning_popen")();
  if (!spawning.is_none()) raise_python(PyExc_RuntimeError, kForkOnly);
  const SharedRuntime& runtime = SharedRuntime::instance();
  return py::make_tuple(static_cast<int>(kind_), queue_.offset(), joinable_offset_,
                        runtime.token());
}

std::string QueueCore::describe() const {
  static constexpr const char* kNames[] = {"Queue", "SimpleQueue", "JoinableQueue"};
  return std::string("<ringfork.") + kNames[static_cast<int>(kind_)] + " at segment offset " +
         std::to_string(queue_.offset()) +
         (queue_.maxsize() ? ", maxsize " + std::to_string(queue_.maxsize()) : std::string()) +
         (closed_ ? ", closed>" : ">");
}

}  // namespace ringfork::python
