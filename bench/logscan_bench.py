#!/usr/bin/env python3
"""logscan's throughput against the Python reference, on one corpus, in one run.

  python3 bench/logscan_bench.py --build build [--gigabytes 1] [--repetitions 3] [--quick]

Makes a loggen corpus once (BUILD/bench/logscan-corpus-<size>, kept for later runs), then
times `logscan -j 1`, `logscan -j 2`, `logscan -j 1` pinned to each of the first two CPUs
(their sum, `logscan/j1_two_cpus`, is what -j 2 would reach if two workers cost nothing over
one, on CPUs of those speeds), two half runs with `--partial` plus `logscan merge`,
`mpirun -np 2 logscan --mpi-split -j 1` (if OpenMPI is installed) and
`bench/python_logscan.py -j 2` over it (page cache warm: one untimed pass first), and checks
that all of them print the same report. The repetitions take turns (j1, j2, ..., then j1 again),
so that the host's drift over minutes falls on every variant alike. Memory is measured in one
more run of each, untimed: sampling the whole process tree's RSS (which counts shared blocks
once per process that touched them) and PSS (which splits them) every 20 ms costs CPU that the
timed runs, `-j 2` most, would otherwise share their cores with. Prints JSON on stdout in
bench/run_bench.py's format: rates are bytes per second.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def tree_of(root):
    """Pids of `root` and every process below it."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    tree, todo = [root], [root]
    while todo:
        parent = todo.pop()
        for pid, ppid in parents.items():
            if ppid == parent:
                tree.append(pid)
                todo.append(pid)
    return tree


def memory_of(pids):
    """(sum of RSS, sum of PSS) in bytes over `pids`."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, pss


def run_all(cmds, env, sample_memory):
    """(seconds, last stdout, peak RSS sum, peak PSS sum) of running `cmds` one after another;
    the memory figures are 0 unless `sample_memory`."""
    seconds, rss, pss = 0.0, 0, 0
    for cmd in cmds:
        took, out, cmd_rss, cmd_pss = run_command(cmd, env, sample_memory)
        seconds, rss, pss = seconds + took, max(rss, cmd_rss), max(pss, cmd_pss)
    return seconds, out, rss, pss


def run_command(cmd, env, sample_memory):
    peak = [0, 0]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    stop = threading.Event()

    def sample():
        while not stop.wait(0.02):
            rss, pss = memory_of(tree_of(proc.pid))
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_memory:
        sampler.start()
    out, err = proc.communicate()
    seconds = time.monotonic() - started
    stop.set()
    if sample_memory:
        sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}: "
                           f"{err.decode(errors='replace')[-300:]}")
    return seconds, out, peak[0], peak[1]


def ensure_corpus(build, size, progress):
    corpus = build / "bench" / f"logscan-corpus-{size}"
    done = corpus.with_name(corpus.name + ".done")
    if not done.exists():
        progress(f"writing a {size / 1e9:.1f} GB loggen corpus to {corpus} (once)")
        subprocess.run(["rm", "-rf", str(corpus)], check=True)
        subprocess.run([str(build / "examples" / "logscan" / "loggen"), "--bytes", str(size),
                        "--seed", "7", "--files", "8", str(corpus)], check=True,
                       stdout=subprocess.DEVNULL)
        done.touch()
    return corpus, sum(p.stat().st_size for p in corpus.iterdir())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200 MB corpus, 2 repetitions")
    parser.add_argument("--no-python", action="store_true", help="logscan only")
    args = parser.parse_args()
    if args.quick:
        args.gigabytes, args.repetitions = 0.2, 2
    build = Path(args.build).resolve()
    logscan = build / "examples" / "logscan" / "logscan"

    def progress(text):
        print(f"logscan_bench: {text}", file=sys.stderr, flush=True)

    corpus, size = ensure_corpus(build, int(args.gigabytes * 1e9), progress)
    files = sorted(str(p) for p in corpus.iterdir())
    halves = [files[: len(files) // 2], files[len(files) // 2:]]
    partials = [str(build / "bench" / f"logscan-half{i}.partial") for i in (0, 1)]
    # name -> the commands that make one run (timed together)
    runs = {
        "logscan/j1": [[str(logscan), "-j", "1", str(corpus)]],
        "logscan/j2": [[str(logscan), "-j", "2", str(corpus)]],
        # Two half scans writing partials, then merge: the cost of going through files.
        "logscan/partial_merge_j2": [
            [str(logscan), "-j", "2", "--partial", partials[0], *halves[0]],
            [str(logscan), "-j", "2", "--partial", partials[1], *halves[1]],
            [str(logscan), "merge", *partials]],
    }
    # The two CPUs' own speeds, measured the way -j 1 runs (worker and parent on the one CPU):
    # their sum is what -j 2 could reach if it lost nothing to running two workers. A VM's
    # vCPUs can differ by 1.5x for minutes (see cpu_speed.py), and then -j 2 / -j 1 depends on
    # which CPU -j 1 got; -j 2 against this sum does not.
    pinned_cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(pinned_cpus) == 2 and shutil.which("taskset"):
        for cpu in pinned_cpus:
            runs[f"logscan/j1_cpu{cpu}"] = [["taskset", "-c", str(cpu), str(logscan), "-j", "1",
                                             str(corpus)]]
    else:
        pinned_cpus = []
        progress("fewer than 2 CPUs or no taskset: no per-CPU -j 1 rows")
    mpirun = shutil.which("mpirun")
    if mpirun:  # two ranks of one worker each against one process with two workers
        runs["logscan/mpi_split_np2"] = [[mpirun, "--allow-run-as-root", "-np", "2",
                                          str(logscan), "--mpi-split", "-j", "1", str(corpus)]]
    else:
        progress("mpirun not found: no fleet row (make deps installs OpenMPI)")
    if not args.no_python:
        runs["py_logscan/j2"] = [[sys.executable, str(HERE / "python_logscan.py"), "-j", "2",
                                  str(corpus)]]
    mpi_env = dict(os.environ, OMPI_MCA_btl_vader_single_copy_mechanism="none")
    subprocess.run(runs["logscan/j2"][0], check=True, stdout=subprocess.DEVNULL)  # warm the cache
    reports, reps, memory = {}, {name: [] for name in runs}, {}
    # The Python reference takes minutes a pass: once is enough (noise only slows it).
    for rep in range(args.repetitions):
        for name, cmd in runs.items():
            if name.startswith("py_") and rep > 0:
                continue
            progress(f"{name} ({rep + 1}/{args.repetitions}) on {size / 1e6:.0f} MB")
            seconds, out, _, _ = run_all(cmd, mpi_env, sample_memory=False)
            reports[name] = json.loads(out)
            reps[name].append({"seconds": seconds, "bytes_per_second": size / seconds})
    for name, cmd in runs.items():
        if name.startswith("logscan/j1_cpu"):
            continue  # the same processes as logscan/j1
        progress(f"{name}: its memory (one more run, untimed)")
        _, out, rss, pss = run_all(cmd, mpi_env, sample_memory=True)
        if json.loads(out) != reports[name]:
            reports[name + " (memory run)"] = json.loads(out)
        memory[name] = {"peak_rss_sum": rss, "peak_pss_sum": pss}
    if pinned_cpus:  # the sum within each round, so that both CPUs sample the same stretch
        reps["logscan/j1_two_cpus"] = [
            {"bytes_per_second": sum(reps[f"logscan/j1_cpu{cpu}"][rep]["bytes_per_second"]
                                     for cpu in pinned_cpus)} for rep in range(args.repetitions)]
    benchmarks = []
    for name in reps:
        rates = [r["bytes_per_second"] for r in reps[name]]
        benchmarks.append({"name": name, "reps": reps[name], **memory.get(name, {}),
                           "best": max(rates), "median": statistics.median(rates), "bytes": size})
    names = list(reports)
    agree = all(reports[n] == reports[names[0]] for n in names)
    print(json.dumps({"corpus": str(corpus), "bytes": size, "reports_agree": agree,
                      "benchmarks": benchmarks}, indent=1))
    if not agree:
        progress("ERROR: the reports differ: " + ", ".join(names))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
