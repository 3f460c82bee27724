#!/usr/bin/env python3
"""Python multiprocessing baselines that ringfork is measured against (stdlib only).

Measures, producer and consumer in different processes, every message counted and checked:
  py_queue/{64,4096}      multiprocessing.Queue, bytes payloads, messages/s
  py_pipe/{64,4096}       multiprocessing.Pipe (send_bytes/recv_bytes), messages/s
  py_process_fork         Process start+join, 'fork' context, processes/s
  py_process_forkserver   Process start+join, 'forkserver' context, processes/s
  py_pool_apply_async     Pool(2).apply_async of a trivial task, tasks/s
  py_pool_map             Pool(2).map(chunksize=1000) of a trivial function, items/s
Each is repeated; prints JSON to stdout:
  {"benchmarks": [{"name": ..., "items_per_second": best, "best": ..., "median": ...,
                   "reps": [...], "items": ...}, ...], "python": "3.x.y"}
`--quick` makes a short run (a few seconds); the default run stays under about a minute on
a 2-core machine.
"""

import argparse
import json
import multiprocessing as mp
import os
import statistics
import struct
import sys
import time

SEQ = struct.Struct("<Q")


def make_message(seq, size):
    """seq in the first 8 bytes, ~seq in the last 8, a pattern between: checked on receipt."""
    tail = SEQ.pack(~seq & 0xFFFFFFFFFFFFFFFF)
    return SEQ.pack(seq) + bytes([seq & 0xFF]) * (size - 16) + tail


def check_message(message, seq, size):
    return (len(message) == size and SEQ.unpack_from(message, 0)[0] == seq
            and SEQ.unpack_from(message, size - 8)[0] == (~seq & 0xFFFFFFFFFFFFFFFF))


def queue_consumer(queue, count, size):
    bad = 0
    for seq in range(count):
        if not check_message(queue.get(), seq, size):
            bad += 1
    sys.exit(1 if bad else 0)


def pipe_consumer(conn, count, size):
    bad = 0
    for seq in range(count):
        if not check_message(conn.recv_bytes(), seq, size):
            bad += 1
    conn.close()
    sys.exit(1 if bad else 0)


def run_channel(kind, count, size):
    """Messages/s from the first put to the consumer's exit (all checked)."""
    ctx = mp.get_context("fork")
    # Each message is built as it is sent, as a real producer would (about 0.3 us of the
    # several microseconds a message costs here).
    if kind == "queue":
        channel = ctx.Queue()
        consumer = ctx.Process(target=queue_consumer, args=(channel, count, size))
        send = channel.put
    else:
        receiver, channel = ctx.Pipe(duplex=False)
        consumer = ctx.Process(target=pipe_consumer, args=(receiver, count, size))
        send = channel.send_bytes
    consumer.start()
    if kind == "pipe":
        receiver.close()
    start = time.perf_counter()
    for seq in range(count):
        send(make_message(seq, size))
    consumer.join(timeout=120)
    elapsed = time.perf_counter() - start
    if kind == "queue":
        channel.close()
        channel.join_thread()
    else:
        channel.close()
    if consumer.exitcode != 0:
        consumer.kill()
        raise RuntimeError(f"py_{kind}/{size}: consumer failed (exit {consumer.exitcode})")
    return count / elapsed


def trivial():
    return None


def run_process(method, count):
    ctx = mp.get_context(method)
    if method == "forkserver":
        # Start the server outside the timed region, as a long-running program would.
        warm = ctx.Process(target=trivial)
        warm.start()
        warm.join()
    start = time.perf_counter()
    for _ in range(count):
        p = ctx.Process(target=trivial)
        p.start()
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"py_process_{method}: child exited {p.exitcode}")
    return count / (time.perf_counter() - start)


def square(x):
    return x * x


def run_apply_async(pool, count):
    start = time.perf_counter()
    results = [pool.apply_async(square, (i,)) for i in range(count)]
    total = sum(r.get(timeout=120) for r in results)
    elapsed = time.perf_counter() - start
    if total != sum(i * i for i in range(count)):
        raise RuntimeError("py_pool_apply_async: wrong results")
    return count / elapsed


def run_map(pool, count):
    start = time.perf_counter()
    out = pool.map(square, range(count), chunksize=1000)
    elapsed = time.perf_counter() - start
    if len(out) != count or out[-1] != (count - 1) ** 2:
        raise RuntimeError("py_pool_map: wrong results")
    return count / elapsed


def measure(name, reps, fn, items, log):
    rates = []
    for _ in range(reps):
        rates.append(fn())
    best, median = max(rates), statistics.median(rates)
    log(f"python_baseline: {name}: best {best:,.0f}/s, median {median:,.0f}/s")
    return {"name": name, "items_per_second": best, "best": best, "median": median,
            "reps": rates, "items": items, "unit": "items/s"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (a few seconds)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions of each measurement")
    args = parser.parse_args()

    quick = args.quick
    reps = args.reps or (2 if quick else 5)
    scale = 0.1 if quick else 1.0
    # About 1 s per repetition each on a 2-core machine: ~50 s in all by default.
    n_queue = {64: int(100_000 * scale), 4096: int(50_000 * scale)}
    n_pipe = {64: int(150_000 * scale), 4096: int(80_000 * scale)}
    n_procs = int(200 * scale) or 10
    n_forkserver = int(50 * scale) or 5
    n_apply = int(25_000 * scale)
    n_map = int(2_000_000 * scale)
    verbose = sys.stderr.isatty()

    def log(text):
        if verbose:
            print(text, file=sys.stderr, flush=True)

    results = []
    for kind, counts in (("queue", n_queue), ("pipe", n_pipe)):
        for size, count in counts.items():
            results.append(measure(f"py_{kind}/{size}", reps,
                                   lambda k=kind, c=count, s=size: run_channel(k, c, s), count, log))
    for method, count in (("fork", n_procs), ("forkserver", n_forkserver)):
        results.append(measure(f"py_process_{method}", reps,
                               lambda m=method, c=count: run_process(m, c), count, log))
    with mp.get_context("fork").Pool(2) as pool:
        results.append(measure("py_pool_apply_async", reps,
                               lambda: run_apply_async(pool, n_apply), n_apply, log))
        results.append(measure("py_pool_map", reps, lambda: run_map(pool, n_map), n_map, log))

    json.dump({"benchmarks": results, "python": sys.version.split()[0],
               "cpus": os.cpu_count(), "quick": quick}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
