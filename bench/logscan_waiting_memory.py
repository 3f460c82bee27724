#!/usr/bin/env python3
"""What logscan holds per unpaired record: a corpus whose every pair is far apart.

  python3 bench/logscan_waiting_memory.py --build build [--pairs 2000000]

Writes requests.log (N requests) and responses.log (their N responses) so that every
request waits for its partner until the second file is scanned: the waiting records are the
only state that grows with the input, and here all N wait at once. Reports the peak memory of
the whole process tree (sum of PSS) against a run over the same number of lines whose pairs
sit side by side, and the size of a --partial file over requests.log alone. JSON on stdout.
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from logscan_bench import run_all  # noqa: E402

LINE = "2024-03-01T10:{m:02d}:{s:02d}.{ms:03d}Z INFO [api-{h}] call=payment.authorize dir={d} req_id=r{i:09d}{extra}\n"


def write(path, pairs, interleaved, which):
    with open(path, "w") as out:
        for i in range(pairs):
            stamp = dict(m=(i // 60000) % 60, s=(i // 1000) % 60, ms=i % 1000, h=i % 7, i=i)
            if which in ("request", "both"):
                out.write(LINE.format(d="request", extra="", **stamp))
            if which in ("response", "both"):
                out.write(LINE.format(d="response", extra=" status=200", **stamp))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--pairs", type=int, default=2_000_000)
    args = parser.parse_args()
    logscan = str(Path(args.build).resolve() / "examples" / "logscan" / "logscan")
    with tempfile.TemporaryDirectory(prefix="logscan-waiting-") as tmp:
        far, near = os.path.join(tmp, "far"), os.path.join(tmp, "near")
        os.makedirs(far)
        os.makedirs(near)
        write(os.path.join(far, "1-requests.log"), args.pairs, False, "request")
        write(os.path.join(far, "2-responses.log"), args.pairs, False, "response")
        write(os.path.join(near, "pairs.log"), args.pairs, True, "both")
        _, far_out, far_rss, far_pss = run_all([[logscan, "-j", "2", far]], None, True)
        _, near_out, near_rss, near_pss = run_all([[logscan, "-j", "2", near]], None, True)
        assert json.loads(far_out)["calls"] == json.loads(near_out)["calls"], "reports differ"
        partial = os.path.join(tmp, "requests.partial")
        run_all([[logscan, "-j", "2", "--partial", partial, os.path.join(far, "1-requests.log")]],
                None, False)
        result = {
            "pairs": args.pairs,
            "far_peak_pss": far_pss, "near_peak_pss": near_pss,
            "far_peak_rss_sum": far_rss, "near_peak_rss_sum": near_rss,
            "bytes_per_waiting_record": (far_pss - near_pss) / args.pairs,
            "partial_file_bytes_per_waiting_record": os.path.getsize(partial) / args.pairs,
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
