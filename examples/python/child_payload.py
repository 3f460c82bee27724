#!/usr/bin/env python3
"""The other program that hangs with multiprocessing: a child puts one payload of unpredictable
size (0 to 64 MiB) and the parent calls p.join(10) before reading it.

With multiprocessing.Queue a payload larger than the pipe's buffer keeps the child alive until
someone reads, so join(10) times out and the program is stuck with a child that cannot exit.
With ringfork.Queue the child exits as soon as put() returns, join(10) returns at once, and the
payload is read back and checked. The only change from the multiprocessing program is the
import below.
"""

import hashlib
import multiprocessing
import random
import sys
import time

# from multiprocessing import Queue
from ringfork import Queue

MAX_BYTES = 64 << 20


def payload_for(seed, size):
    return random.Random(seed).randbytes(size)


def producer(queue, seed, size):
    payload = payload_for(seed, size)
    queue.put({"seed": seed, "size": size, "sha256": hashlib.sha256(payload).hexdigest(),
               "payload": payload})


def main():
    ctx = multiprocessing.get_context("fork")
    rng = random.Random()
    # The edges, then sizes nobody can predict.
    sizes = [0, MAX_BYTES] + [rng.randrange(MAX_BYTES + 1) for _ in range(3)]
    queue = Queue()
    for round_, size in enumerate(sizes):
        seed = rng.getrandbits(32)
        child = ctx.Process(target=producer, args=(queue, seed, size))
        started = time.monotonic()
        child.start()
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join()
            print(f"child_payload: join(10) timed out with {size:,} bytes", file=sys.stderr)
            return 1
        joined = time.monotonic() - started
        message = queue.get(timeout=10)
        payload = message["payload"]
        if (child.exitcode != 0 or message["seed"] != seed or len(payload) != size
                or hashlib.sha256(payload).hexdigest() != message["sha256"]
                or payload != payload_for(seed, size)):
            print(f"child_payload: round {round_}: wrong payload", file=sys.stderr)
            return 1
        print(f"child_payload: {size:>10,} bytes: child joined after {joined:.2f} s, "
              f"payload verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
