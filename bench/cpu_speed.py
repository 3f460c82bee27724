#!/usr/bin/env python3
"""How fast each CPU this process may run on is, by one fixed single-threaded job pinned to it.

  python3 bench/cpu_speed.py            # prints JSON: per CPU bytes/s, and slowest / fastest

A VM's vCPUs need not be equal: on this project's 2-vCPU development machine one of them has
run the same compiled code 1.5x slower than the other for minutes at a time (a host thread
sharing its core, most likely). Then a row whose two sides run on different CPUs, or a
2-worker run compared with a 1-worker run, measures the host as much as the code; run_bench.py
records this probe at the start and the end of a run so that the report says which it was.

The job is SHA-256 over 32 MiB in memory (hashlib, which runs OpenSSL's compiled code with
the GIL released): no I/O, no system calls, the same instructions on every CPU. Samples
alternate between the CPUs so that drift over the probe falls on each alike; the best
sample of each counts, since noise only slows a run.
"""
import hashlib
import json
import os
import sys
import time

DATA = bytes(range(256)) * (32 * 1024 * 1024 // 256)


def one_sample():
    start = time.perf_counter()
    hashlib.sha256(DATA).digest()
    return len(DATA) / (time.perf_counter() - start)


def measure(samples=3):
    """{"cpus": {cpu: best bytes/s}, "slowest_vs_fastest": ratio}, or {} without affinity."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return {}
    best = {cpu: 0.0 for cpu in allowed}
    try:
        for _ in range(samples):
            for cpu in allowed:
                os.sched_setaffinity(0, {cpu})
                best[cpu] = max(best[cpu], one_sample())
    finally:
        os.sched_setaffinity(0, allowed)
    fastest = max(best.values())
    return {"job": "sha256 of 32 MiB, best of %d, pinned" % samples,
            "cpus": {str(cpu): round(rate) for cpu, rate in best.items()},
            "slowest_vs_fastest": round(min(best.values()) / fastest, 3)}


def describe(probe):
    """A phrase for a report: 'cpu1 ran 0.66x as fast as cpu0', or 'equal within 5 % (...)'."""
    if not probe or len(probe["cpus"]) < 2:
        return "not measured"
    rates = probe["cpus"]
    fastest = max(rates, key=rates.get)
    slowest = min(rates, key=rates.get)
    ratio = probe["slowest_vs_fastest"]
    if ratio >= 0.95:
        return f"equal within 5 % (cpu{slowest} {ratio:.2f}x cpu{fastest})"
    return f"cpu{slowest} ran {ratio:.2f}x as fast as cpu{fastest}"


if __name__ == "__main__":
    result = measure()
    print(json.dumps(result))
    print(describe(result), file=sys.stderr)
