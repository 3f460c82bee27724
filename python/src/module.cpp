// The `ringfork._ringfork` extension: Queue, SimpleQueue and JoinableQueue with
// multiprocessing's contracts, over ringfork's shared-memory ByteQueue.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cerrno>
#include <optional>
#include <string>
#include <system_error>

#include "queue_core.h"
#include "ringfork/ring_common.h"
#include "shared_runtime.h"

namespace py = pybind11;

namespace ringfork::python {
namespace {

// One C++ type per Python class (pybind11 binds a type once).
struct Queue : QueueCore {
  using QueueCore::QueueCore;
};
struct JoinableQueue : Queue {
  using Queue::Queue;
};
struct SimpleQueue : QueueCore {
  using QueueCore::QueueCore;
};

// multiprocessing's Queue(maxsize, *, ctx): a ctx whose start method is not fork could not
// share the queue, so refuse it at once.
void check_context(const py::object& ctx) {
  if (ctx.is_none()) return;
  const std::string method = py::str(ctx.attr("get_start_method")());
  if (method != "fork") {
    raise_python(PyExc_ValueError, "ringfork queues need the 'fork' start method, got a '" +
                                       method +
                                       "' context: pass multiprocessing.get_context('fork')");
  }
}

py::object attach(int kind, std::uint64_t offset, std::uint64_t joinable_offset,
                  std::uint64_t token) {
  switch (static_cast<QueueKind>(kind)) {
    case QueueKind::kQueue:
      return py::cast(Queue(QueueKind::kQueue, offset, 0, token));
    case QueueKind::kJoinable:
      return py::cast(JoinableQueue(QueueKind::kJoinable, offset, joinable_offset, token));
    case QueueKind::kSimple:
      return py::cast(SimpleQueue(QueueKind::kSimple, offset, 0, token));
  }
  raise_python(PyExc_ValueError, "unknown ringfork queue kind " + std::to_string(kind));
}

template <class Class>
py::tuple reduce(const py::object& self) {
  // A Python-level function: pybind11's functions do not pickle by reference.
  return py::make_tuple(py::module_::import("ringfork").attr("_rebuild"),
                        self.cast<const Class&>().reduce_args());
}

void configure(std::optional<std::size_t> capacity, std::optional<std::size_t> max_bytes,
               std::optional<std::size_t> max_backlog) {
  RuntimeOptions options = SharedRuntime::options();
  if (capacity) options.capacity = *capacity;
  if (max_bytes) options.max_bytes = *max_bytes;
  if (max_backlog) options.max_backlog = *max_backlog;
  SharedRuntime::configure(options);
}

py::dict segment_info() {
  py::dict info;
  const RuntimeOptions& options = SharedRuntime::options();
  info["max_bytes"] = options.max_bytes;
  info["max_backlog"] = options.max_backlog;
  SharedRuntime* runtime = SharedRuntime::existing();
  info["created"] = runtime != nullptr;
  info["capacity"] = runtime != nullptr ? runtime->segment().capacity() : options.capacity;
  if (runtime == nullptr) return info;
  info["backing"] = to_string(runtime->segment().backing());
  info["fd"] = runtime->segment().fd();
  info["name"] = runtime->segment().name();
  info["committed"] = runtime->segment().committed();
  info["arena_used"] = runtime->arena().used_bytes();
  info["creator_pid"] = runtime->creator();
  return info;
}

std::size_t reclaim(pid_t pid) {
  SharedRuntime* runtime = SharedRuntime::existing();
  if (runtime == nullptr) return 0;
  if (pid <= 0 || pid == ::getpid() || process_alive(pid)) {
    raise_python(PyExc_ValueError, "reclaim(" + std::to_string(pid) +
                                       "): the process must have exited and been reaped (join it)");
  }
  return runtime->pool().reclaim(pid);
}

void flush() noexcept {
  if (SharedRuntime* runtime = SharedRuntime::existing()) runtime->pool().flush_local_cache();
}

void translate(std::exception_ptr error) {
  try {
    if (error) std::rethrow_exception(error);
  } catch (const Full& full) {
    PyErr_SetString(queue_full_type(), full.what());
  } catch (const Empty& empty) {
    PyErr_SetString(queue_empty_type(), empty.what());
  } catch (const QueueClosed& closed) {
    PyErr_SetString(PyExc_ValueError, closed.what());
  } catch (const std::system_error& system) {
    if (system.code() == std::errc::not_enough_memory) {
      PyErr_SetString(PyExc_MemoryError, system.what());
    } else {
      PyErr_SetObject(PyExc_OSError, py::make_tuple(system.code().value(), system.what()).ptr());
    }
  }
}

// The ring's statistics, for diagnostics and benchmarks.
py::dict counters(const QueueCore& queue) {
  const RingCounters c = queue.counters();
  py::dict out;
  out["puts"] = c.puts;
  out["gets"] = c.gets;
  out["full_waits"] = c.full_waits;
  out["empty_waits"] = c.empty_waits;
  out["wakes"] = c.wakes;
  out["high_water"] = c.high_water;
  out["dead_producer_slots"] = c.dead_producer_slots;
  out["dead_consumer_slots"] = c.dead_consumer_slots;
  return out;
}

// put/get/put_nowait/get_nowait are the per-message calls: they bypass pybind11's generic
// dispatcher (about 200 ns a call) for METH_FASTCALL methods that parse their few
// arguments by hand. Installed on the classes after pybind11 made them.
QueueCore& core_of(PyObject* self) {
  // The method descriptor has already checked that self is an instance of the class.
  auto* instance = reinterpret_cast<py::detail::instance*>(self);
  return *static_cast<QueueCore*>(instance->get_value_and_holder().value_ptr());
}

// Parses (block=True, timeout=None) from positional arguments starting at `first` and
// keywords; returns false with a TypeError set on anything else.
bool parse_block_timeout(const char* name, PyObject* const* args, Py_ssize_t nargs,
                         PyObject* kwnames, Py_ssize_t first, bool& block,
                         std::optional<double>& timeout) {
  PyObject* values[2] = {nullptr, nullptr};
  if (nargs - first > 2) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %zd positional arguments", name, first + 2);
    return false;
  }
  for (Py_ssize_t i = first; i < nargs; ++i) values[i - first] = args[i];
  const Py_ssize_t keywords = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  for (Py_ssize_t i = 0; i < keywords; ++i) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, i);
    int slot = -1;
    if (PyUnicode_CompareWithASCIIString(key, "block") == 0) slot = 0;
    if (PyUnicode_CompareWithASCIIString(key, "timeout") == 0) slot = 1;
    if (first == 1 && PyUnicode_CompareWithASCIIString(key, "obj") == 0 && nargs == 0) {
      PyErr_Format(PyExc_TypeError, "%s(): pass obj positionally", name);
      return false;
    }
    if (slot < 0 || values[slot] != nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected or repeated keyword argument %R", name,
                   key);
      return false;
    }
    values[slot] = args[nargs + i];
  }
  if (values[0] != nullptr) {
    const int truth = PyObject_IsTrue(values[0]);
    if (truth < 0) return false;
    block = truth != 0;
  }
  if (values[1] != nullptr && values[1] != Py_None) {
    const double seconds = PyFloat_AsDouble(values[1]);
    if (seconds == -1.0 && PyErr_Occurred()) return false;
    timeout = seconds;
  }
  return true;
}

// Runs `body`, turning C++ exceptions into Python ones as pybind11 would.
template <class Body>
PyObject* guarded(Body&& body) noexcept {
  try {
    return body();
  } catch (py::error_already_set& error) {
    error.restore();
  } catch (py::builtin_exception& error) {
    error.set_error();
  } catch (...) {
    try {
      translate(std::current_exception());
    } catch (...) {
    }
    if (!PyErr_Occurred()) {
      try {
        throw;
      } catch (const std::invalid_argument& error) {
        PyErr_SetString(PyExc_ValueError, error.what());
      } catch (const std::exception& error) {
        PyErr_SetString(PyExc_RuntimeError, error.what());
      } catch (...) {
        PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception");
      }
    }
  }
  return nullptr;
}

PyObject* fast_put(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError, "put() missing the object to put");
    return nullptr;
  }
  bool block = true;
  std::optional<double> timeout;
  if (!parse_block_timeout("put", args, nargs, kwnames, 1, block, timeout)) return nullptr;
  return guarded([&]() -> PyObject* {
    core_of(self).put(args[0], block, timeout);
    Py_RETURN_NONE;
  });
}

PyObject* fast_get(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  bool block = true;
  std::optional<double> timeout;
  if (!parse_block_timeout("get", args, nargs, kwnames, 0, block, timeout)) return nullptr;
  return guarded([&] { return core_of(self).get(block, timeout).release().ptr(); });
}

PyObject* fast_put_nowait(PyObject* self, PyObject* object) {
  return guarded([&]() -> PyObject* {
    core_of(self).put(object, false, std::nullopt);
    Py_RETURN_NONE;
  });
}

PyObject* fast_get_nowait(PyObject* self, PyObject*) {
  return guarded([&] { return core_of(self).get(false, std::nullopt).release().ptr(); });
}

PyObject* fast_simple_put(PyObject* self, PyObject* object) {
  return guarded([&]() -> PyObject* {
    core_of(self).put(object, true, std::nullopt);
    Py_RETURN_NONE;
  });
}

PyObject* fast_simple_get(PyObject* self, PyObject*) {
  return guarded([&] { return core_of(self).get(true, std::nullopt).release().ptr(); });
}

PyMethodDef kQueueMethods[] = {
    {"put", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fast_put)),
     METH_FASTCALL | METH_KEYWORDS,
     "put(obj, block=True, timeout=None): queue.Full if a bounded queue stays full."},
    {"get", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fast_get)),
     METH_FASTCALL | METH_KEYWORDS,
     "get(block=True, timeout=None): queue.Empty if nothing comes in time."},
    {"put_nowait", fast_put_nowait, METH_O, "put(obj, False)"},
    {"get_nowait", fast_get_nowait, METH_NOARGS, "get(False)"},
};
PyMethodDef kSimpleQueueMethods[] = {
    {"put", fast_simple_put, METH_O, "put(obj): never blocks (unbounded)."},
    {"get", fast_simple_get, METH_NOARGS, "get(): blocks until an object comes."},
};

template <std::size_t N>
void install_methods(py::handle type, PyMethodDef (&methods)[N]) {
  for (PyMethodDef& method : methods) {
    auto descriptor = py::reinterpret_steal<py::object>(
        PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(type.ptr()), &method));
    if (!descriptor) throw py::error_already_set();
    py::setattr(type, method.ml_name, descriptor);
  }
}

const char kQueueDoc[] =
    "A drop-in for multiprocessing.Queue that lives in shared memory.\n\n"
    "put() returns once the object is in shared memory (there is no feeder thread), so a\n"
    "child may exit, and be joined, whether or not anyone has read what it put. Objects are\n"
    "pickled (protocol 5) in put() itself; bytes, bytearray and memoryview travel unpickled.\n"
    "Share it with children made by multiprocessing's 'fork' context or os.fork.";

}  // namespace
}  // namespace ringfork::python

PYBIND11_MODULE(_ringfork, m) {
  namespace rp = ringfork::python;
  using rp::QueueCore;
  using rp::QueueKind;
  m.doc() = "ringfork's shared-memory queues for multiprocessing programs";
  rp::init_queue_core();
  py::register_exception_translator(&rp::translate);

  const auto kNone = py::none();
  // Registered (with no methods of its own) so the classes' methods can take QueueCore&.
  py::class_<QueueCore>(m, "_QueueCore");
  auto queue_class = py::class_<rp::Queue, QueueCore>(m, "Queue", rp::kQueueDoc);
  rp::install_methods(queue_class, rp::kQueueMethods);
  queue_class
      .def(py::init([](long maxsize, const py::object& ctx) {
             rp::check_context(ctx);
             return rp::Queue(QueueKind::kQueue, maxsize);
           }),
           py::arg("maxsize") = 0, py::kw_only(), py::arg("ctx") = kNone)
      .def("qsize", &QueueCore::qsize)
      .def("empty", &QueueCore::empty)
      .def("full", &QueueCore::full)
      .def("close", &QueueCore::close)
      // No feeder thread: put() has finished with the data when it returns, so there is
      // nothing to wait for at exit and nothing to cancel.
      .def("join_thread", [](QueueCore&) {})
      .def("cancel_join_thread", [](QueueCore&) {})
      .def("_counters", &rp::counters)
      .def_property_readonly("_maxsize", &QueueCore::maxsize)
      .def_property_readonly("_closed", &QueueCore::closed)
      .def("__reduce__", &rp::reduce<rp::Queue>)
      .def("__repr__", &QueueCore::describe);

  py::class_<rp::JoinableQueue, rp::Queue>(m, "JoinableQueue",
                                           "multiprocessing.JoinableQueue over ringfork.Queue; "
                                           "the unfinished-task count lives in shared memory.")
      .def(py::init([](long maxsize, const py::object& ctx) {
             rp::check_context(ctx);
             return rp::JoinableQueue(QueueKind::kJoinable, maxsize);
           }),
           py::arg("maxsize") = 0, py::kw_only(), py::arg("ctx") = kNone)
      .def("task_done", &QueueCore::task_done)
      .def("join", &QueueCore::join)
      .def("__reduce__", &rp::reduce<rp::JoinableQueue>);

  auto simple_class =
      py::class_<rp::SimpleQueue, QueueCore>(
          m, "SimpleQueue", "multiprocessing.SimpleQueue over ringfork's shared memory.")
          .def(py::init([](const py::object& ctx) {
                 rp::check_context(ctx);
                 return rp::SimpleQueue(QueueKind::kSimple, 0);
               }),
               py::kw_only(), py::arg("ctx") = kNone)
          .def("empty", &QueueCore::empty)
          .def("close", &QueueCore::close)
          .def_property_readonly("_closed", &QueueCore::closed)
          .def("__reduce__", &rp::reduce<rp::SimpleQueue>)
          .def("__repr__", &QueueCore::describe);
  rp::install_methods(simple_class, rp::kSimpleQueueMethods);

  m.def("_attach", &rp::attach, "Rebuilds a pickled queue (fork children only).");
  m.def("configure", &rp::configure, py::kw_only(), py::arg("capacity") = kNone,
        py::arg("max_bytes") = kNone, py::arg("max_backlog") = kNone,
        "Sets the shared segment's sizes; call before the first queue is made.\n"
        "capacity: address space reserved (default 64 GiB); max_bytes: payload memory cap "
        "(4 GiB); max_backlog: messages an unbounded queue may hold (2**21).");
  m.def("segment_info", &rp::segment_info, "The shared segment's settings and usage.");
  m.def("reclaim", &rp::reclaim, py::arg("pid"),
        "Returns to the pool the shared blocks a dead (and reaped) process held.");
  m.def("_flush", &rp::flush, "Returns this process's cached blocks to the shared pool.");
}
