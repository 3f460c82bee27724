#!/usr/bin/env python3
"""Side by side: the target rows of several `make bench` reports, one column per run.

  python3 bench/compare_runs.py RUN1/report.json RUN2/report.json ...   # markdown on stdout

On a 2-vCPU VM the host decides, for minutes at a time, how far apart the two vCPUs are and
whether either shares its core: the same binary's cross-process rows move 2-3x between runs
an hour apart. One report cannot show that; this puts runs next to each other, each with
what tells its placement (the bare ping-pong's one-way latency, the vCPU speed probe).
Ratios are ringfork / baseline within one run, as run_bench.py computes them; a cell reads
"median (best)", and a target counts as met when the median meets it.
"""
import json
import sys
from pathlib import Path

PLACEMENT_ROW = "BM_LatencySpin/bare"  # one cache-line handoff between the two vCPUs


def load(path):
    report = json.loads(Path(path).read_text())
    return report, {(p["ours"], p["baseline"]): p for p in report["pairs"]}


def cell(pair):
    if pair is None or pair.get("median_ratio") is None:
        return "-"
    text = f"{pair['median_ratio']:.3g}x ({pair['ratio']:.3g}x)"
    target = pair.get("target")
    if target is None:
        return text
    median = pair["median_ratio"]
    met = median >= target if pair["metric"] == "rate" else median <= target
    return text if met else f"**{text}**"


def target_text(pair):
    if pair.get("target") is None:
        return "info"
    return (">= " if pair["metric"] == "rate" else "<= ") + f"{pair['target']:g}x"


def placement(report):
    row = report["benchmarks"].get(PLACEMENT_ROW, {})
    median = row.get("median", {}).get("one_way_median_ns")
    return f"{median:.0f} ns" if median else "-"


def main(paths):
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    runs = [load(path) for path in paths]
    keys = list(runs[0][1])
    for _, pairs in runs[1:]:
        keys += [key for key in pairs if key not in keys]
    header = [f"run {i + 1}: {report['machine'].get('commit', '?')}, "
              f"{report['machine']['date'][:16].replace('T', ' ')}" for i, (report, _) in
              enumerate(runs)]
    lines = ["| ringfork | vs | " + " | ".join(header) + " | target |",
             "| --- | --- | " + " | ".join("---:" for _ in runs) + " | --- |"]
    for key in keys:
        pairs = [pairs.get(key) for _, pairs in runs]
        known = next(p for p in pairs if p is not None)
        lines.append(f"| `{key[0]}` | `{key[1]}` | " + " | ".join(cell(p) for p in pairs) +
                     f" | {target_text(known)} |")
    lines.append(f"| placement: bare ping-pong one way, median | | " +
                 " | ".join(placement(report) for report, _ in runs) + " | |")
    lines.append("| vCPU speeds (start / end, slowest vs fastest) | | " + " | ".join(
        " / ".join(f"{report['machine'].get(k, {}).get('slowest_vs_fastest', '-')}"
                   for k in ("cpu_speed_at_start", "cpu_speed")) for report, _ in runs) + " | |")
    lines.append("")
    lines.append("Cells: ratio at the median (at the best); **bold**: the median misses the target.")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
