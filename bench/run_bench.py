#!/usr/bin/env python3
"""Runs ringfork's benchmarks and their baselines, and prints the report (`make bench`).

  python3 bench/run_bench.py --build build [--quick] [--filter REGEX] [--no-python]

Runs every benchmark of BUILD/bench/ringfork-bench (each repetition in its own process, so
a crash loses one figure, not the run) with repetitions taken in rounds: every benchmark
once, then every benchmark again, so that a pair's two sides sample the same stretches of
the run (the host's noise and vCPU placement drift over minutes, and a benchmark's
repetitions back to back would all land in one stretch). Then bench/python_baseline.py,
python_queue.py and logscan_bench.py, starting
iox-roudi for the iceoryx rows if it is installed (and always stopping it). For each
benchmark it keeps the best repetition (max items/s, min time and latency: noise only slows
a run) and the median, and prints one markdown table: each ringfork figure against the
baselines measured in this same invocation, with the DESIGN.md targets. Writes
BUILD/bench/report.json (every figure, every repetition, the machine) and
BUILD/bench/report.md (the table). Exits non-zero only if a benchmark program fails, never
because a target is missed.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cpu_speed

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


# What each ringfork benchmark is compared with. metric: "rate" compares items/s (ratio =
# ours / theirs, higher is better); "time" compares ns per item and "latency" the median
# one-way latency counter (ratio = ours / theirs, lower is better). target None = for
# information. Add a row here when a new benchmark has a baseline.
@dataclass(frozen=True)
class Pair:
    ours: str
    baseline: str
    metric: str  # "rate" | "time" | "latency"
    target: float | None = None
    what: str = ""


PEERS_64 = ["BM_BoostMqXproc/64", "BM_ZmqIpcXproc/64", "BM_IceoryxXproc/64"]
PEERS_4096 = ["BM_BoostMqXproc/4096", "BM_ZmqIpcXproc/4096", "BM_IceoryxXproc/4096"]
PEER_LATENCY = ["BM_LatencySpin/boost", "BM_LatencySpin/zmq", "BM_LatencySpin/iceoryx"]

PAIRS = [
    Pair("BM_SpscXprocBatch/64", "BM_BareSpinXproc/64", "rate", 0.7, "SPSC batched vs bare ring"),
    Pair("BM_SpscXprocBatch/64", "py_queue/64", "rate", 300, "SPSC batched vs Python Queue"),
    Pair("BM_SpscXproc/64", "BM_BareSpinXprocEach/64", "rate", 0.7, "SPSC per message vs bare ring"),
    Pair("BM_SpscXproc/64", "BM_PipeXproc/64", "rate", 100, "SPSC per message vs pipe"),
    Pair("BM_QueueXproc/64", "py_queue/64", "rate", 300, "Queue vs Python Queue"),
    Pair("BM_QueueXproc/4096", "py_queue/4096", "rate", None, "Queue vs Python Queue"),
    Pair("BM_MpmcXproc/64/1/1", "BM_MoodycamelInproc/64/1/1", "rate", 1.0, "MPMC vs moodycamel"),
    Pair("BM_MpmcXproc/64/2/2", "BM_MoodycamelInproc/64/2/2", "rate", 1.0, "MPMC vs moodycamel"),
    # One MpmcRing shared by every producer (BM_MpmcXproc gives each producer a lane).
    Pair("BM_MpmcOneRingXproc/64/1/1", "BM_MoodycamelInproc/64/1/1", "rate", None,
         "one shared MPMC ring vs moodycamel"),
    Pair("BM_MpmcOneRingXproc/64/2/2", "BM_MoodycamelInproc/64/2/2", "rate", None,
         "one shared MPMC ring vs moodycamel"),
    *[Pair("BM_QueueXproc/64", peer, "rate", 1.0, "Queue vs peer") for peer in PEERS_64],
    *[Pair("BM_SpscXproc/64", peer, "rate", 1.0, "SPSC vs peer") for peer in PEERS_64],
    *[Pair("BM_QueueXproc/4096", peer, "rate", 1.0, "Queue vs peer") for peer in PEERS_4096],
    Pair("BM_LatencySpin/ringfork", "BM_LatencySpin/bare", "latency", 1.3, "latency vs floor"),
    *[Pair("BM_LatencySpin/ringfork", peer, "latency", 1.0, "latency vs peer")
      for peer in PEER_LATENCY],
    Pair("BM_LatencySleep/ringfork", "BM_LatencySleep/pipe", "latency", 1.0, "sleeping wake vs pipe"),
    Pair("BM_WakeRoundtripFutex", "BM_WakeRoundtripPipe", "time", 1.0, "futex vs pipe wake"),
    Pair("BM_PoolAllocFree/64", "BM_MimallocFree/64", "time", 2.0, "block pool vs mimalloc"),
    Pair("BM_SpawnJoinTemplate", "py_process_fork", "rate", None, "spawn+join vs Python"),
    Pair("BM_PoolApplyAsync", "py_pool_apply_async", "rate", 100, "Pool.apply_async vs Python"),
    Pair("BM_PoolMap/1000", "py_pool_map", "rate", 20, "Pool.map vs Python"),
    Pair("BM_UringReader", "BM_ReadSyscall", "rate", 0.9, "io_uring reader vs read(2), bytes"),
    # Python ringfork.Queue (bench/python_queue.py, which measures its baselines in the same run).
    Pair("rf_queue/64", "mp_queue/64", "rate", 10, "Python ringfork.Queue vs mp.Queue, bytes"),
    Pair("rf_queue/4096", "mp_queue/4096", "rate", 10, "Python ringfork.Queue vs mp.Queue, bytes"),
    Pair("rf_queue/dict", "mp_queue/dict", "rate", 3, "Python ringfork.Queue vs mp.Queue, dict"),
    *[Pair(f"rf_queue/{size}", f"{peer}/{size}", "rate", None, "Python ringfork.Queue vs peer")
      for peer in ("mp_simplequeue", "mp_pipe") for size in (64, 4096, "dict")],
    # logscan (bench/logscan_bench.py; rates are bytes/s of one corpus).
    Pair("logscan/j2", "py_logscan/j2", "rate", 60, "logscan -j 2 vs python_logscan.py -j 2, bytes"),
    Pair("logscan/j2", "logscan/j1", "rate", 1.8, "logscan 2 workers vs 1, bytes"),
    Pair("logscan/j2", "logscan/j1_two_cpus", "rate", None,
         "logscan -j 2 vs -j 1 pinned to each CPU, added (what the two CPUs can do)"),
    Pair("logscan/partial_merge_j2", "logscan/j2", "rate", None, "two --partial halves + merge vs one run"),
    Pair("logscan/mpi_split_np2", "logscan/j2", "rate", None, "mpirun -np 2 --mpi-split vs -j 2"),
]

# Suffixes Google Benchmark appends to a name that do not change what is measured.
NAME_SUFFIX = re.compile(r"(/(real_time|manual_time|process_time|repeats:\d+|min_time:[\d.]+s?"
                         r"|iterations:\d+))+$")
TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
LATENCY_COUNTER = "one_way_median_ns"


def base_name(name):
    return NAME_SUFFIX.sub("", name)


class Progress:
    """One status line on stderr, only when stderr is a terminal."""

    def __init__(self):
        self.tty = sys.stderr.isatty()

    def show(self, text):
        if self.tty:
            sys.stderr.write("\r\033[K" + text[:150])
            sys.stderr.flush()

    def note(self, text):
        """A line that stays (warnings and failures), shown whether or not on a terminal."""
        if self.tty:
            sys.stderr.write("\r\033[K")
        print(text, file=sys.stderr, flush=True)

    def done(self):
        if self.tty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


# ---- iox-roudi ----------------------------------------------------------------------------

class Roudi:
    """Starts iox-roudi (if installed) for the iceoryx rows; stop() always ends it by PID."""

    def __init__(self, log_path, progress):
        self.proc = None
        self.status = "iox-roudi not installed"
        exe = shutil.which("iox-roudi")
        if exe is None:
            return
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([exe], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir(),
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                # Most likely another RouDi already serves this machine: use it.
                self.status = f"iox-roudi exited at once ({self.proc.returncode}); see {log_path}"
                progress.note(f"run_bench: {self.status}")
                self.proc = None
                return
            if "RouDi is ready for clients" in Path(log_path).read_text(errors="replace"):
                self.status = f"iox-roudi started (pid {self.proc.pid})"
                return
            time.sleep(0.1)
        self.status = "iox-roudi did not report ready within 10 s"
        progress.note(f"run_bench: {self.status}")

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.log.close()


# ---- Running ------------------------------------------------------------------------------

def list_benchmarks(binary, regex):
    args = [str(binary), "--benchmark_list_tests"]
    if regex:
        args.append(f"--benchmark_filter={regex}")
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        if "Failed to match any benchmarks" in out.stderr + out.stdout:
            return []
        raise RuntimeError(f"{binary} --benchmark_list_tests failed: {out.stderr.strip()}")
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def run_one(binary, full_name, args, out_dir, stderr_log, timeout):
    """Runs one repetition of one benchmark in its own process; returns (json runs, failure
    text or None)."""
    out_file = out_dir / "one.json"
    out_file.unlink(missing_ok=True)
    cmd = [str(binary), f"--benchmark_filter=^{re.escape(full_name)}$",
           "--benchmark_repetitions=1",
           "--benchmark_report_aggregates_only=false",
           f"--benchmark_min_time={args.min_time}",
           f"--benchmark_out={out_file}", "--benchmark_out_format=json",
           "--benchmark_format=json"]
    stderr_log.write(f"==== {full_name}\n")
    stderr_log.flush()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=stderr_log,
                              stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [], f"failed: timed out after {timeout} s"
    runs = []
    if out_file.exists():
        try:
            runs = json.loads(out_file.read_text()).get("benchmarks", [])
        except json.JSONDecodeError:
            runs = []
    if proc.returncode != 0:
        how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exited {proc.returncode}")
        return runs, f"failed: ringfork-bench {how} (stderr in the log)"
    return runs, None


def summarize(name, runs, failure):
    """Best and median over the repetitions of one benchmark."""
    reps = []
    error = failure
    for run in runs:
        if run.get("error_occurred"):
            error = run.get("error_message") or "error"
            continue
        if run.get("run_type", "iteration") != "iteration":
            continue
        scale = TO_NS.get(run.get("time_unit", "ns"), 1.0)
        rep = {"real_time_ns": run["real_time"] * scale, "cpu_time_ns": run["cpu_time"] * scale,
               "iterations": run.get("iterations")}
        for key, value in run.items():
            if isinstance(value, (int, float)) and (key.endswith("_per_second") or key.endswith("_ns")
                                                    or key.endswith("_frac")):
                rep[key] = value
        reps.append(rep)
    entry = {"name": name, "source": "ringfork-bench", "reps": reps}
    if error and not reps:
        entry["error"] = error
        return entry
    rates = [1e9 / r["real_time_ns"] if "items_per_second" not in r else r["items_per_second"]
             for r in reps]
    times = [1e9 / rate for rate in rates]  # ns per item
    entry["best"] = {"items_per_second": max(rates), "ns_per_item": min(times)}
    entry["median"] = {"items_per_second": statistics.median(rates),
                       "ns_per_item": statistics.median(times)}
    for counter in (LATENCY_COUNTER, "one_way_p99_ns"):
        values = [r[counter] for r in reps if counter in r]
        if values:
            entry["best"][counter] = min(values)
            entry["median"][counter] = statistics.median(values)
    if error:
        entry["error"] = error
    return entry


def run_script(script, cmd, progress, what, timeout, env=None):
    """Runs a Python benchmark script printing run_bench's JSON; ({name: entry}, failure)."""
    progress.show(f"running {script} ({what})")
    proc = subprocess.run([sys.executable, str(HERE / script)] + cmd, capture_output=True,
                          text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        return {}, f"failed: {script} exited {proc.returncode}: {proc.stderr.strip()[-300:]}"
    results = {}
    for b in json.loads(proc.stdout)["benchmarks"]:
        results[b["name"]] = {
            "name": b["name"], "source": script, "reps": b["reps"],
            "best": {"items_per_second": b["best"], "ns_per_item": 1e9 / b["best"]},
            "median": {"items_per_second": b["median"], "ns_per_item": 1e9 / b["median"]},
        }
        for peak in ("peak_rss_sum", "peak_pss_sum"):  # logscan_bench's memory run
            if peak in b:
                results[b["name"]][peak] = b[peak]
    return results, None


def run_python(args, progress):
    return run_script("python_baseline.py", ["--quick"] if args.quick else [], progress,
                      "multiprocessing baselines", 600)


def run_python_queue(args, build, progress):
    """bench/python_queue.py against the build's ringfork module (BUILD/python)."""
    module_dir = build / "python"
    if not (module_dir / "ringfork" / "__init__.py").exists():
        return {}, f"skipped python_queue.py: {module_dir}/ringfork not built"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(module_dir), env.get("PYTHONPATH")) if p)
    return run_script("python_queue.py", ["--quick"] if args.quick else [], progress,
                      "ringfork.Queue vs multiprocessing", 900, env)


def run_logscan(args, build, progress):
    """bench/logscan_bench.py: logscan -j 1 / -j 2 and the Python reference, one corpus."""
    if not (build / "examples" / "logscan" / "logscan").exists():
        return {}, f"skipped logscan_bench.py: {build}/examples/logscan/logscan not built"
    cmd = ["--build", str(build)] + (["--quick"] if args.quick else [])
    return run_script("logscan_bench.py", cmd, progress,
                      "logscan vs python_logscan.py on one corpus", 1800)


# ---- The report ---------------------------------------------------------------------------

def fmt_rate(v):
    for scale, unit in ((1e9, "G/s"), (1e6, "M/s"), (1e3, "k/s")):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} /s"


def fmt_ns(v):
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "us")):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} ns"


def figure(entry, which, metric):
    """(value, text) of one benchmark's best or median for a metric, or (None, why)."""
    if entry is None:
        return None, "not built"
    if "best" not in entry:
        return None, entry.get("error", "no result")
    fig = entry[which]
    if metric == "rate":
        return fig["items_per_second"], fmt_rate(fig["items_per_second"])
    if metric == "time":
        return fig["ns_per_item"], fmt_ns(fig["ns_per_item"])
    if LATENCY_COUNTER not in fig:
        return None, f"no {LATENCY_COUNTER} counter"
    return fig[LATENCY_COUNTER], fmt_ns(fig[LATENCY_COUNTER])


def evaluate(pair, results):
    ours, theirs = results.get(pair.ours), results.get(pair.baseline)
    row = {"ours": pair.ours, "baseline": pair.baseline, "metric": pair.metric,
           "target": pair.target, "what": pair.what}
    for side, entry in (("ours", ours), ("baseline", theirs)):
        for which in ("best", "median"):
            row[f"{side}_{which}"], row[f"{side}_{which}_text"] = figure(entry, which, pair.metric)
    ratio = median_ratio = None
    if row["ours_best"] and row["baseline_best"]:
        ratio = row["ours_best"] / row["baseline_best"]
        median_ratio = row["ours_median"] / row["baseline_median"]
    row["ratio"], row["median_ratio"] = ratio, median_ratio
    # A target counts as met when the median meets it: the best of five rounds can come from
    # one lucky placement of the two vCPUs.
    higher_better = pair.metric == "rate"
    if pair.target is None or median_ratio is None:
        row["met"] = None
    else:
        row["met"] = median_ratio >= pair.target if higher_better else median_ratio <= pair.target
    return row


def target_text(pair):
    if pair.target is None:
        return "info"
    if pair.metric == "rate":
        return f">= {pair.target:g}x"
    return f"<= {pair.target:g}x {'time' if pair.metric == 'time' else 'latency'}"


def render(rows, results, machine, command):
    unit = {"rate": "items/s", "time": "ns/item", "latency": "one-way median"}
    lines = ["## ringfork vs baselines (best of the repetitions; ratios from this run)", "",
             "| ringfork | best | median | vs baseline | best | median | ratio (best) "
             "| ratio (median) | target | met (median) |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for pair, row in rows:
        ratio = f"{row['ratio']:.3g}x" if row["ratio"] is not None else "-"
        median_ratio = f"{row['median_ratio']:.3g}x" if row["median_ratio"] is not None else "-"
        met = {True: "yes", False: "**NO**", None: "-"}[row["met"]]
        lines.append(f"| {pair.ours} ({unit[pair.metric]}) | {row['ours_best_text']} "
                     f"| {row['ours_median_text'] if row['ours_median'] else ''} "
                     f"| {pair.baseline} | {row['baseline_best_text']} "
                     f"| {row['baseline_median_text'] if row['baseline_median'] else ''} "
                     f"| {ratio} | {median_ratio} | {target_text(pair)} | {met} |")
    lines += ["", "## Every benchmark", "",
              "| benchmark | best items/s | median items/s | best ns/item | one-way median "
              "(best) | one-way p99 (best) | note |",
              "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name in sorted(results):
        e = results[name]
        if "best" not in e:
            lines.append(f"| {name} | | | | | | {e.get('error', 'no result')} |")
            continue
        b, m = e["best"], e["median"]
        lat = fmt_ns(b[LATENCY_COUNTER]) if LATENCY_COUNTER in b else ""
        p99 = fmt_ns(b["one_way_p99_ns"]) if "one_way_p99_ns" in b else ""
        lines.append(f"| {name} | {fmt_rate(b['items_per_second'])} "
                     f"| {fmt_rate(m['items_per_second'])} | {fmt_ns(b['ns_per_item'])} "
                     f"| {lat} | {p99} | {e.get('error', '')} |")
    lines += ["", f"Machine: {machine['model']}, {machine['cpus']} CPUs, Linux {machine['kernel']}, "
              f"load {machine['load_at_start']} at start and {machine['load']} at the end, "
              f"{machine['date']}{', commit ' + machine['commit'] if machine.get('commit') else ''}.",
              f"CPU speeds (bench/cpu_speed.py): {cpu_speed.describe(machine['cpu_speed_at_start'])} "
              f"at the start, {cpu_speed.describe(machine['cpu_speed'])} at the end.",
              f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


def machine_info():
    model = platform.processor() or "unknown"
    cpus = os.cpu_count()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
            elif key.strip() == "CPU(s)":
                cpus = int(value.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    commit = ""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"model": model, "cpus": cpus, "kernel": platform.release(), "load": load_average(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "commit": commit, "python": platform.python_version()}


def load_average():
    """The 1-minute load: on a shared 2-core machine, a busy neighbour explains a slow row."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stale_sources(build):
    """bench/*.cpp files that exist but are not in the configured build (fs.exists is read
    at configure time only)."""
    ninja = build / "build.ninja"
    if not ninja.exists():
        return []
    text = ninja.read_text(errors="replace")
    return [p.name for p in sorted(HERE.glob("*.cpp")) if f"bench/{p.name}" not in text]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default="build", help="meson build directory (default: build)")
    parser.add_argument("--filter", default="", help="regex passed to --benchmark_filter")
    parser.add_argument("--quick", action="store_true",
                        help="short run: fewer repetitions, short min time, quick Python baseline")
    parser.add_argument("--repetitions", type=int, default=None)
    parser.add_argument("--min-time", type=float, default=None,
                        help="seconds per repetition (--benchmark_min_time)")
    parser.add_argument("--no-python", action="store_true", help="skip python_baseline.py")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per benchmark")
    args = parser.parse_args()
    args.repetitions = args.repetitions or (3 if args.quick else 5)
    args.min_time = args.min_time if args.min_time is not None else (0.05 if args.quick else 0.3)

    build = Path(args.build).resolve()
    binary = build / "bench" / "ringfork-bench"
    out_dir = build / "bench"
    progress = Progress()
    if not binary.exists():
        print(f"run_bench: {binary} not found: build with benchmarks enabled "
              f"(meson setup {args.build} && ninja -C {args.build})", file=sys.stderr)
        return 2
    for name in stale_sources(build):
        progress.note(f"run_bench: WARNING: bench/{name} is not in {args.build}'s build: run "
                      f"`meson setup --reconfigure {args.build}` (its rows show as not built)")
    # SIGTERM (e.g. a killed make) unwinds like Ctrl-C, so RouDi is always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    command = "python3 bench/run_bench.py " + " ".join(sys.argv[1:])
    load_at_start = load_average()
    cpu_speed_at_start = cpu_speed.measure()
    failures = []
    results = {}
    started = time.monotonic()
    roudi = Roudi(out_dir / "iox-roudi.log", progress)
    try:
        names = list_benchmarks(binary, args.filter)
        with open(out_dir / "ringfork-bench.stderr.log", "w") as stderr_log, \
                tempfile.TemporaryDirectory(prefix="ringfork-bench-") as tmp:
            runs = {name: [] for name in names}
            failed = {}  # name -> the first failure; a benchmark that timed out is not rerun
            for round_number in range(1, args.repetitions + 1):
                for i, full_name in enumerate(names, 1):
                    if "timed out" in failed.get(full_name, ""):
                        continue
                    progress.show(f"[round {round_number}/{args.repetitions}] "
                                  f"[{i}/{len(names)}] {full_name} "
                                  f"({time.monotonic() - started:.0f} s)")
                    got, failure = run_one(binary, full_name, args, Path(tmp), stderr_log,
                                           args.timeout)
                    runs[full_name] += got
                    if failure and full_name not in failed:
                        failed[full_name] = failure
                        failures.append(f"{base_name(full_name)}: {failure}")
                        progress.note(f"run_bench: {base_name(full_name)}: {failure}")
            for full_name in names:
                name = base_name(full_name)
                results[name] = summarize(name, runs[full_name], failed.get(full_name))
    finally:
        roudi.stop()
    if not args.no_python:
        py_results, py_failure = run_python(args, progress)
        results.update(py_results)
        if py_failure:
            failures.append(py_failure)
            progress.note(f"run_bench: {py_failure}")
        for extra in (run_python_queue, run_logscan):
            extra_results, extra_failure = extra(args, build, progress)
            results.update(extra_results)
            if extra_failure:
                progress.note(f"run_bench: {extra_failure}")
                if not extra_failure.startswith("skipped"):
                    failures.append(extra_failure)
    progress.done()

    rows = [(pair, evaluate(pair, results)) for pair in PAIRS]
    machine = machine_info()
    machine["load_at_start"] = load_at_start
    machine["cpu_speed_at_start"], machine["cpu_speed"] = cpu_speed_at_start, cpu_speed.measure()
    report = render(rows, results, machine, command)
    (out_dir / "report.md").write_text(report)
    (out_dir / "report.json").write_text(json.dumps({
        "machine": machine, "command": command, "roudi": roudi.status,
        "repetitions": args.repetitions, "min_time_s": args.min_time,
        "elapsed_s": round(time.monotonic() - started, 1),
        "benchmarks": results, "pairs": [row for _, row in rows], "failures": failures,
    }, indent=1, default=str) + "\n")
    print(report)
    print(f"Wrote {out_dir / 'report.md'} and {out_dir / 'report.json'} "
          f"({time.monotonic() - started:.0f} s).")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
