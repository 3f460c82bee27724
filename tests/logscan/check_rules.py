#!/usr/bin/env python3
"""One hand-written input per rule of shared/LOGFORMAT.md, with its expected report.

For every tests/logscan/rules/<rule>.expected.json, the input is rules/<rule>.log (or the
directory rules/<rule>/, for rules across files). Both implementations must print the
expected report (compared as JSON): the C++ logscan, also with tiny read chunks (256 B) so that
lines and pairs cross chunk and worker boundaries, and bench/python_logscan.py with one and two processes.

    check_rules.py --logscan PATH --python-logscan PATH [RULE...]
"""
import argparse
import json
import pathlib
import subprocess
import sys

RULES = pathlib.Path(__file__).resolve().parent / "rules"


def run(cmd):
    done = subprocess.run(cmd, capture_output=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {done.returncode}: "
                             f"{done.stderr.decode(errors='replace').strip()}")
    return json.loads(done.stdout)


def first_difference(expected, actual, path="report"):
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in list(expected) + [k for k in actual if k not in expected]:
            if key not in actual or key not in expected:
                return f"{path}[{key!r}]: expected {expected.get(key, '(absent)')!r}, got {actual.get(key, '(absent)')!r}"
            diff = first_difference(expected[key], actual[key], f"{path}[{key!r}]")
            if diff:
                return diff
        return None
    return None if expected == actual and type(expected) is type(actual) else \
        f"{path}: expected {expected!r}, got {actual!r}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--logscan", required=True)
    ap.add_argument("--python-logscan", required=True)
    ap.add_argument("rules", nargs="*")
    args = ap.parse_args()
    expected_files = sorted(RULES.glob("*.expected.json"))
    if args.rules:
        expected_files = [f for f in expected_files if f.name[:-len(".expected.json")] in args.rules]
    passed = failed = 0
    for expected_file in expected_files:
        rule = expected_file.name[: -len(".expected.json")]
        source = RULES / f"{rule}.log"
        if not source.exists():
            source = RULES / rule
        expected = json.loads(expected_file.read_text())
        runs = {
            "logscan -j 1": [args.logscan, "-j", "1", source],
            "logscan -j 3 --chunk-bytes 256": [args.logscan, "-j", "3", "--chunk-bytes", "256",
                                               source],
            "python_logscan -j 1": [sys.executable, args.python_logscan, "-j", "1", source],
            "python_logscan -j 2": [sys.executable, args.python_logscan, "-j", "2", source],
        }
        problems = []
        for name, cmd in runs.items():
            try:
                diff = first_difference(expected, run(cmd))
            except (AssertionError, ValueError, subprocess.TimeoutExpired) as e:
                diff = str(e)
            if diff:
                problems.append(f"  {name}: {diff}")
        if problems:
            failed += 1
            print(f"FAIL {rule}\n" + "\n".join(problems))
        else:
            passed += 1
            print(f"ok   {rule}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
