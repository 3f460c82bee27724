#!/usr/bin/env python3
"""The C++ logscan and bench/python_logscan.py agree on loggen corpora.

Several seeds, single- and multi-file, one with a multi-MB payload; the C++ side also
reads in small chunks with 1, 2 and 8 worker processes, so lines and pairs cross chunk
and worker boundaries, and with O_DIRECT (--direct). Reports must be equal as
JSON (and, as both print the same layout, byte for byte).

    cross_check.py --logscan PATH --loggen PATH --python-logscan PATH
"""
import argparse
import json
import subprocess
import sys
import tempfile

# (seed, files, bytes, big_every): big_every below bytes puts a multi-MB payload in.
CORPORA = [(1, 1, 3 << 20, 64 << 20), (2, 3, 3 << 20, 64 << 20), (3, 4, 4 << 20, 2 << 20),
           (4, 1, 2 << 20, 1 << 20), (5, 7, 3 << 20, 64 << 20)]
# (worker processes, read chunk bytes, more options): tiny chunks make lines and pairs cross
# chunk and worker boundaries everywhere; 8 workers on 2 cores shuffle the order chunks
# finish in; --direct reads with O_DIRECT, each range's reads widened to aligned blocks.
RUNS = [(1, None, []), (2, None, []), (8, None, []), (1, 256, []), (2, 4096, []), (8, 4096, []),
        (2, 1 << 20, []), (2, 16384, ["--direct"]), (8, 1 << 20, ["--direct"])]


def run(cmd):
    done = subprocess.run([str(c) for c in cmd], capture_output=True, timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"{cmd} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return done.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--logscan", required=True)
    ap.add_argument("--loggen", required=True)
    ap.add_argument("--python-logscan", required=True)
    args = ap.parse_args()
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="logscan-cross-") as tmp:
        for seed, files, size, big_every in CORPORA:
            corpus = f"{tmp}/seed{seed}"
            run([args.loggen, "--bytes", size, "--seed", seed, "--files", files,
                 "--big-every", big_every, corpus])
            again = f"{tmp}/seed{seed}-again"
            run([args.loggen, "--bytes", size, "--seed", seed, "--files", files,
                 "--big-every", big_every, again])
            name = f"seed {seed}, {files} file(s), {size >> 20} MiB"
            python_text = run([sys.executable, args.python_logscan, "-j", "2", corpus])
            expected = json.loads(python_text)
            problems = []
            if subprocess.run(["diff", "-rq", corpus, again], capture_output=True).returncode:
                problems.append("loggen is not deterministic: two runs of one seed differ")
            if expected["malformed"] == 0 or not expected["calls"]:
                problems.append("corpus lacks malformed lines or calls")
            for jobs, chunk, more in RUNS:
                cmd = [args.logscan, "-j", jobs, corpus, *more]
                cmd += [] if chunk is None else ["--chunk-bytes", chunk]
                text = run(cmd)
                what = f"logscan -j {jobs} (chunk {chunk}) {' '.join(more)}"
                if json.loads(text) != expected:
                    problems.append(f"{what} differs from python_logscan")
                elif text != python_text:
                    problems.append(f"{what} equal as JSON, not byte for byte")
            if problems:
                failed += 1
                print(f"FAIL {name}: " + "; ".join(problems))
            else:
                passed += 1
                print(f"ok   {name}: {expected['lines']} lines, "
                      f"{sum(c['requests'] + c['responses'] for c in expected['calls'].values())} "
                      f"call records")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
