#!/usr/bin/env python3
"""The program that hangs with multiprocessing: a child puts every line of a 100 MB file on a
queue and the parent calls p.join() before reading any of them.

With multiprocessing.Queue the child cannot exit (its feeder thread waits for the parent to
drain the pipe) and join() never returns. With ringfork.Queue, put() returns once the line is
in shared memory: the child exits, join() returns at once, and the parent then reads and checks
every line. The only change from the multiprocessing program is the import below.
"""

import hashlib
import multiprocessing
import os
import sys
import tempfile
import time

# from multiprocessing import Queue
from ringfork import Queue

FILE_BYTES = 100 * 1000 * 1000


def write_corpus(path):
    """About 100 MB of log-like lines of varied length; returns (lines, sha256 of the text)."""
    digest = hashlib.sha256()
    lines = 0
    written = 0
    with open(path, "w") as out:
        while written < FILE_BYTES:
            chunk = []
            for _ in range(10_000):
                n = lines + len(chunk)
                line = f"{n:09d} GET /api/v1/items/{n * 7919 % 100003} status={200 + n % 5} " \
                       f"{'x' * (n % 61)}\n"
                chunk.append(line)
            text = "".join(chunk)
            out.write(text)
            digest.update(text.encode())
            written += len(text)
            lines += len(chunk)
    return lines, digest.hexdigest()


def producer(path, queue):
    with open(path) as lines:
        for line in lines:
            queue.put(line)


def main():
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="ringfork-example-") as tmp:
        path = os.path.join(tmp, "access.log")
        expected_lines, expected_digest = write_corpus(path)
        queue = Queue()
        started = time.monotonic()
        child = ctx.Process(target=producer, args=(path, queue))
        child.start()
        child.join()  # before reading anything: this is where multiprocessing hangs
        joined = time.monotonic()
        if child.exitcode != 0:
            print(f"queue_join: producer exited {child.exitcode}", file=sys.stderr)
            return 1
        digest = hashlib.sha256()
        got = 0
        while got < expected_lines:
            digest.update(queue.get(timeout=10).encode())
            got += 1
        if not queue.empty() or digest.hexdigest() != expected_digest:
            print("queue_join: lines differ from the file", file=sys.stderr)
            return 1
        print(f"queue_join: child put {got:,} lines ({FILE_BYTES / 1e6:.0f} MB) and exited; "
              f"join returned after {joined - started:.2f} s, all lines read back and verified "
              f"in {time.monotonic() - joined:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
