#!/usr/bin/env python3
"""logscan-scan-profile scans what logscan scans: on a loggen corpus, for every range size,
its byte and line counts equal logscan's report; a file it cannot read exits 1, bad usage 2.

  scan_profile_check.py --logscan PATH --loggen PATH --scan-profile PATH
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    for tool in ("--logscan", "--loggen", "--scan-profile"):
        ap.add_argument(tool, required=True)
    args = ap.parse_args()
    problems = []
    with tempfile.TemporaryDirectory(prefix="logscan-scan-profile-") as tmp:
        corpus = pathlib.Path(tmp) / "corpus"
        subprocess.run([args.loggen, "--bytes", "3000000", "--seed", "5", "--files", "2",
                        corpus], check=True, stdout=subprocess.DEVNULL)
        files = sorted(str(p) for p in corpus.iterdir())
        report = json.loads(subprocess.run([args.logscan, "-j", "1", *files], check=True,
                                           capture_output=True).stdout)
        for range_bytes in ("1", "4096", "4194304"):
            done = subprocess.run([args.scan_profile, "--range-bytes", range_bytes, *files],
                                  capture_output=True, text=True)
            got = json.loads(done.stdout) if done.returncode == 0 else {}
            if (got.get("bytes"), got.get("lines")) != (report["bytes"], report["lines"]):
                problems.append(f"--range-bytes {range_bytes}: exit {done.returncode}, {got} "
                                f"against logscan's {report['bytes']} bytes, "
                                f"{report['lines']} lines")
        for cmd, status in (([files[0], str(corpus / "missing.log")], 1), ([], 2),
                            (["--range-bytes", "0", files[0]], 2)):
            done = subprocess.run([args.scan_profile, *cmd], capture_output=True)
            if done.returncode != status:
                problems.append(f"{cmd}: exit {done.returncode}, expected {status}")
    for problem in problems:
        print("FAIL", problem)
    print("ok" if not problems else f"{len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
