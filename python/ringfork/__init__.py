"""ringfork: multiprocessing's queues in shared memory, without the join() deadlock.

    from ringfork import Queue      # instead of: from multiprocessing import Queue

``Queue``, ``SimpleQueue`` and ``JoinableQueue`` keep multiprocessing's contracts
(``queue.Full`` / ``queue.Empty``, ``maxsize``, ``block`` / ``timeout``), but ``put()`` returns
once the object is in a shared-memory segment: there is no feeder thread and no pipe, so a
child that puts and exits can be joined before anyone reads. Objects are pickled (protocol 5)
in ``put()`` itself, so an unpicklable one fails there; ``bytes``, ``bytearray`` and
``memoryview`` travel unpickled. ``join_thread()`` and ``cancel_join_thread()`` exist for
compatibility and do nothing, having no thread to join.

The segment is made on the first queue and inherited by children forked afterwards
(``multiprocessing.get_context('fork')`` or ``os.fork``); ``spawn`` and ``forkserver``
children do not share it, and passing them a queue raises a clear ``RuntimeError``.
``configure(capacity=, max_bytes=, max_backlog=)`` sizes the segment before the first queue.
"""

import atexit as _atexit

from ._ringfork import (JoinableQueue, Queue, SimpleQueue, configure, reclaim,
                        segment_info)
from ._ringfork import _attach, _flush

__all__ = ["Queue", "SimpleQueue", "JoinableQueue", "configure", "segment_info", "reclaim"]


def _rebuild(kind, offset, joinable_offset, token):
    """Unpickles a queue: re-attaches it by offset in the inherited shared segment."""
    return _attach(kind, offset, joinable_offset, token)


class _AfterFork:
    """The object multiprocessing's after-fork hook is registered on (it holds a weak one)."""


_after_fork = _AfterFork()


def _register_flush():
    # Blocks a process frees are cached per process; hand them back to the shared pool when
    # it ends, or the next process would carve new ones. multiprocessing's children leave by
    # os._exit() after running their finalizers, so register there as well as with atexit.
    # A child starts with no finalizers (multiprocessing clears the parent's after the fork),
    # so each child registers its own, from the after-fork hook that runs after the clearing;
    # without it every child's cached blocks were lost to the pool until put() failed.
    _atexit.register(_flush)
    try:
        from multiprocessing import util
    except ImportError:  # pragma: no cover - multiprocessing is part of the stdlib
        return

    def finalize_flush(_=None):
        util.Finalize(None, _flush, exitpriority=-100)

    finalize_flush()
    util.register_after_fork(_after_fork, finalize_flush)


_register_flush()
