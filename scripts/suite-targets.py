#!/usr/bin/env python3
"""Prints the ninja targets of the programs a meson test suite runs.

`make tsan` builds only these: the TSan build runs one suite, and building everything else
(logscan, the Python module, examples) under TSan only costs CI time.
"""
import json
import os
import subprocess
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: suite-targets.py BUILD_DIR SUITE")
    build, suite = sys.argv[1], sys.argv[2]
    tests = json.loads(subprocess.run(["meson", "introspect", build, "--tests"],
                                      check=True, capture_output=True, text=True).stdout)
    root = os.path.realpath(build)
    targets = set()
    for test in tests:
        if not any(s == suite or s.endswith(":" + suite) for s in test["suite"]):
            continue
        program = os.path.realpath(test["cmd"][0])
        if os.path.commonpath([program, root]) != root:
            sys.exit(f"suite-targets.py: {test['name']} runs {program}, not a target of {build}")
        targets.add(os.path.relpath(program, root))
    if not targets:
        sys.exit(f"suite-targets.py: no test in suite '{suite}' in {build}")
    print(" ".join(sorted(targets)))


if __name__ == "__main__":
    main()
