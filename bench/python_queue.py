#!/usr/bin/env python3
"""ringfork.Queue against multiprocessing's Queue, SimpleQueue and Pipe (issue 10).

Measures, producer (this process) and consumer (a forked child) in different processes, every
message counted and checked by the consumer, messages/s from the first put to the consumer's
exit:
  rf_queue/{64,4096,dict}        ringfork.Queue
  mp_queue/{64,4096,dict}        multiprocessing.Queue
  mp_simplequeue/{64,4096,dict}  multiprocessing.SimpleQueue
  mp_pipe/{64,4096,dict}         multiprocessing.Pipe (send_bytes/recv_bytes; send/recv for dict)
64 and 4096 are bytes payloads built and checked as in python_baseline.py; dict is a small
dict of five fields (pickled by every channel). The channels take turns within each
repetition, so a noisy neighbour slows all of them alike. Prints JSON in python_baseline.py's
shape:
  {"benchmarks": [{"name": ..., "items_per_second": best, "best": ..., "median": ...,
                   "reps": [...], "items": ...}, ...], "python": "3.x.y"}
Needs the ringfork module on the path: PYTHONPATH=build/python python3 bench/python_queue.py.
`--quick` makes a short run (a few seconds); the default run takes about a minute.
"""

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from python_baseline import check_message, make_message  # noqa: E402

import ringfork  # noqa: E402

CTX = mp.get_context("fork")


def make_dict(seq):
    return {"seq": seq, "name": "sensor-7", "value": seq * 0.5, "ok": True, "tags": ("a", "b")}


def check_dict(message, seq):
    return message["seq"] == seq and message["value"] == seq * 0.5 and message["tags"] == ("a", "b")


def consume(receive, count, size):
    bad = 0
    if size == "dict":
        for seq in range(count):
            if not check_dict(receive(), seq):
                bad += 1
    else:
        for seq in range(count):
            if not check_message(receive(), seq, size):
                bad += 1
    sys.exit(1 if bad else 0)


def run_channel(kind, count, size, rf_queue):
    """Messages/s from the first put to the consumer's exit (all checked by the consumer)."""
    pipe_bytes = kind == "mp_pipe" and size != "dict"
    if kind == "rf_queue":
        channel = rf_queue
        receive, send = channel.get, channel.put
    elif kind == "mp_queue":
        channel = CTX.Queue()
        receive, send = channel.get, channel.put
    elif kind == "mp_simplequeue":
        channel = CTX.SimpleQueue()
        receive, send = channel.get, channel.put
    else:
        reader, writer = CTX.Pipe(duplex=False)
        receive = reader.recv_bytes if pipe_bytes else reader.recv
        send = writer.send_bytes if pipe_bytes else writer.send
    consumer = CTX.Process(target=consume, args=(receive, count, size))
    consumer.start()
    if kind == "mp_pipe":
        reader.close()
    make = make_dict if size == "dict" else (lambda seq: make_message(seq, size))
    start = time.perf_counter()
    for seq in range(count):
        send(make(seq))
    consumer.join(timeout=300)
    elapsed = time.perf_counter() - start
    if kind == "mp_queue":
        channel.close()
        channel.join_thread()
    elif kind == "mp_simplequeue":
        channel.close()
    elif kind == "mp_pipe":
        writer.close()
    if consumer.exitcode != 0:
        consumer.kill()
        consumer.join()
        raise RuntimeError(f"{kind}/{size}: consumer failed (exit {consumer.exitcode})")
    return count / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (a few seconds)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions of each measurement")
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 5)
    scale = 0.1 if args.quick else 1.0
    # About 0.2-0.5 s per measurement on a 2-core machine.
    counts = {
        "rf_queue": {64: 300_000, 4096: 200_000, "dict": 150_000},
        "mp_queue": {64: 30_000, 4096: 20_000, "dict": 30_000},
        "mp_simplequeue": {64: 50_000, 4096: 30_000, "dict": 40_000},
        "mp_pipe": {64: 60_000, 4096: 40_000, "dict": 50_000},
    }
    verbose = sys.stderr.isatty()
    rf_queue = ringfork.Queue()
    rates = {}
    for _ in range(reps):
        for size in (64, 4096, "dict"):
            for kind, per_size in counts.items():
                count = max(1000, int(per_size[size] * scale))
                rate = run_channel(kind, count, size, rf_queue)
                rates.setdefault((kind, size), (count, []))[1].append(rate)
    results = []
    for (kind, size), (count, values) in rates.items():
        best, median = max(values), statistics.median(values)
        name = f"{kind}/{size}"
        if verbose:
            print(f"python_queue: {name}: best {best:,.0f}/s, median {median:,.0f}/s",
                  file=sys.stderr, flush=True)
        results.append({"name": name, "items_per_second": best, "best": best, "median": median,
                        "reps": values, "items": count, "unit": "items/s"})
    json.dump({"benchmarks": results, "python": sys.version.split()[0], "cpus": os.cpu_count(),
               "quick": args.quick, "segment": ringfork.segment_info()}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
