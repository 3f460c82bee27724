#!/usr/bin/env python3
"""logscan on bad input: counted per shared/LOGFORMAT.md, never a crash, never a hang.

Generates, in a temporary directory, the inputs a fleet's logs are never entirely free of:
an empty file, binary garbage with NUL bytes, NUL bytes inside records, files without a
final newline, a 100 MB line (a valid and a malformed JSON payload), JSON nested 1024
(valid), 1025 and 10^5 deep (malformed), XML nested 10^5 deep, and mixes of them across
files; then missing and unreadable paths. Each case states the exact report the contract
gives, derived by hand below; the C++ logscan (also in small read chunks) and the Python
reference must both print it. Every run has a timeout, so a hang fails the case.

    bad_input.py --logscan PATH --python-logscan PATH [--jobs 1,2] [CASE...]

--jobs: worker counts to run logscan with, each passed as `-j N`; without it, logscan
runs without -j (today's sequential CLI).
"""
import argparse
import json
import os
import pathlib
import random
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from check_rules import first_difference  # noqa: E402  (the same report comparison)

TS = "2024-03-01T10:00:00.000Z"
TS_40 = "2024-03-01T10:00:00.040Z"  # 40 ms after TS: the latency of a pair TS -> TS_40
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
BIG = 100 << 20  # the "100 MB line"
DEEP = 10 ** 5


def report(files, size, lines, blank=0, malformed=0, levels=None, calls=None):
    """The contract's report, every key present, zeros included."""
    return {"files": files, "bytes": size, "lines": lines, "blank": blank,
            "malformed": malformed, "levels": {lv: (levels or {}).get(lv, 0) for lv in LEVELS},
            "calls": calls or {}}


def call(requests=0, responses=0, errors=0, status=None, payload=None, latency=(),
         unmatched_requests=0, unmatched_responses=0):
    """One entry of `calls`; `latency` lists the counted values (percentiles by nearest
    rank, computed here for the few values a case has)."""
    values = sorted(latency)
    rank = lambda p: values[(p * len(values) + 99) // 100 - 1] if values else None
    return {"requests": requests, "responses": responses, "errors": errors,
            "status": {k: (status or {}).get(k, 0)
                       for k in ("2xx", "3xx", "4xx", "5xx", "other", "missing")},
            "payload": {k: (payload or {}).get(k, 0)
                        for k in ("none", "json", "xml", "other", "malformed_json",
                                  "malformed_xml")},
            "latency_ms": {"count": len(values), "p50": rank(50), "p90": rank(90),
                           "p99": rank(99), "max": values[-1] if values else None},
            "unmatched_requests": unmatched_requests, "unmatched_responses": unmatched_responses}


def combine(*reports):
    """The report of several inputs whose call names differ (no pairing between them)."""
    out = report(0, 0, 0)
    for r in reports:
        for key in ("files", "bytes", "lines", "blank", "malformed"):
            out[key] += r[key]
        for lv in LEVELS:
            out["levels"][lv] += r["levels"][lv]
        assert not set(out["calls"]) & set(r["calls"]), "combine() needs distinct call names"
        out["calls"].update(r["calls"])
    out["calls"] = dict(sorted(out["calls"].items()))
    return out


# ---- the inputs, each with its expected report ---------------------------------------

def empty_file():
    return {"empty.log": b""}, report(1, 0, 0)


def binary_garbage():
    # Random bytes, NUL runs and CR/LF pairs: every non-empty line is malformed, since no
    # line starts with a 24-byte timestamp (asserted, so the expectation is justified).
    data = bytearray(random.Random(7).randbytes(1 << 16))
    data[1000:1100] = b"\0" * 100
    data[2000:2006] = b"\r\n\r\n\n\n"
    data += b"\0\0\0"  # and no final newline
    lines = data.split(b"\n")
    body = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines[:-1]] + [lines[-1]]
    assert not any(re.match(rb"\d{4}-\d\d-\d\dT", ln) for ln in body)
    blank = sum(1 for ln in body if not ln)
    return ({"garbage.bin": bytes(data)},
            report(1, len(data), len(body), blank=blank, malformed=len(body) - blank))


def nul_bytes():
    # NUL is an ordinary byte in hosts, keys' values and call names; only a payload's
    # checker may object (JSON strings forbid raw control characters; XML forbids U+0000).
    text = (f"{TS} INFO [h\0st] call=n\0ul dir=request req_id=r\0 payload={{\"k\":\"\0\"}}\n"
            f"{TS_40} INFO [h] call=n\0ul dir=response req_id=r\0 status=200 payload=<a>\0</a>\n"
            f"{TS} INFO [h] call=n\0ul dir=request payload=\0{{}}\n"
            "\0\n"                      # length 1: malformed, not blank
            f"{TS}\0INFO [h]\n"         # NUL does not separate tokens
            f"{TS} INFO [h] \0=1\n"     # a key is [a-z_] only
            f"{TS} INFO [h] k=\0\n").encode()
    return {"nul.log": text}, report(1, len(text), 7, malformed=3, levels={"INFO": 4}, calls={
        "n\0ul": call(requests=2, responses=1, status={"2xx": 1}, latency=[40],
                      payload={"json": 1, "malformed_json": 1, "xml": 1, "malformed_xml": 1,
                               "other": 1})})


def no_final_newline():
    # Each file's last line ends there even without a newline; lines never join across
    # files, yet records pair across them. A final \r of an unterminated line stays in it.
    files = {"a.log": f"{TS} INFO [h] call=tail dir=request req_id=1".encode(),
             "b.log": (f"{TS_40} WARN [h] call=tail dir=response req_id=1 status=503\n"
                       f"{TS} ERROR [h] msg=end").encode(),
             "c.log": f"{TS} DEBUG [h] k=v\r".encode(),  # value "v\r": still well formed
             "d.log": b"\r"}                              # line "\r": malformed
    size = sum(len(v) for v in files.values())
    return files, report(4, size, 5, malformed=1,
                         levels={"INFO": 1, "WARN": 1, "ERROR": 1, "DEBUG": 1},
                         calls={"tail": call(requests=1, responses=1, errors=1,
                                             status={"5xx": 1}, payload={"none": 2},
                                             latency=[40])})


def line_100mb():
    # One 100 MB line each: a valid JSON payload (with an error member, so the parse is
    # seen to have happened) and the same text cut short (malformed, so not an error).
    body = b'{"error":"boom","data":"' + b"x" * BIG
    head = f"{TS} INFO [h] call=big.%s dir=request req_id=b payload=".encode()
    # And a line of 100 MB of NULs (as a crash leaves in a preallocated log): malformed from its
    # first byte, counted without being held whole.
    files = {"valid.log": head % b"valid" + body + b'"}\n',
             "malformed.log": head % b"malformed" + body + b"\n",
             "nuls.log": b"\0" * BIG + b"\n" + f"{TS} WARN [h] msg=after\n".encode()}
    size = sum(len(v) for v in files.values())
    return files, report(3, size, 4, malformed=1, levels={"INFO": 2, "WARN": 1}, calls={
        "big.malformed": call(requests=1, payload={"json": 1, "malformed_json": 1},
                              unmatched_requests=1),
        "big.valid": call(requests=1, errors=1, payload={"json": 1}, unmatched_requests=1)})


def json_depth():
    # RFC 8259 lets a parser limit nesting; the contract sets 1024: deeper is malformed,
    # and a malformed payload's error member does not count.
    nest = lambda n: "[" * n + "]" * n
    docs = [nest(1024),                                        # valid
            nest(1025),                                        # malformed
            '{"error":true,"x":' + nest(1023) + "}",           # 1024 deep, valid, an error
            '{"error":true,"x":' + nest(1024) + "}",           # 1025 deep, malformed
            nest(DEEP),                                        # malformed
            '{"a":' * DEEP + "1" + "}" * DEEP,                 # malformed
            "[" * DEEP]                                        # unclosed, malformed
    text = "".join(f"{TS} INFO [h] call=deep.json dir=request payload={d}\n"
                   for d in docs).encode()
    return {"deep_json.log": text}, report(1, len(text), 7, levels={"INFO": 7}, calls={
        "deep.json": call(requests=7, errors=1, payload={"json": 7, "malformed_json": 5})})


def xml_depth():
    # The contract sets no XML depth limit: 10^5 nested elements are well formed, and an
    # error element at the bottom counts; one end tag short is malformed.
    docs = ["<a>" * DEEP + "<error/>" + "</a>" * DEEP,
            "<a>" * DEEP + "</a>" * (DEEP - 1)]
    text = "".join(f"{TS} INFO [h] call=deep.xml dir=response status=200 payload={d}\n"
                   for d in docs).encode()
    return {"deep_xml.log": text}, report(1, len(text), 2, levels={"INFO": 2}, calls={
        "deep.xml": call(responses=2, errors=1, status={"2xx": 2},
                         payload={"xml": 2, "malformed_xml": 1})})


def mix():
    # The small cases side by side in one directory tree: the report is their sum.
    parts = [empty_file(), binary_garbage(), nul_bytes(), no_final_newline(), json_depth(),
             xml_depth()]
    files = {}
    for i, (part_files, _) in enumerate(parts):
        files.update({f"part{i}/{name}": data for name, data in part_files.items()})
    return files, combine(*(expected for _, expected in parts))


CASES = {f.__name__: f for f in (empty_file, binary_garbage, nul_bytes, no_final_newline,
                                 line_100mb, json_depth, xml_depth, mix)}


# ---- running -------------------------------------------------------------------------

def run(cmd, timeout):
    """(exit status, stdout, stderr); a timeout is a hang and fails the case."""
    try:
        done = subprocess.run([str(c) for c in cmd], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"no answer within {timeout} s (a hang?): {cmd}")
    return done.returncode, done.stdout, done.stderr.decode(errors="replace")


def report_of(cmd, timeout, status=0):
    code, out, err = run(cmd, timeout)
    if code != status:
        raise AssertionError(f"exit status {code}, expected {status}: {err.strip()[-500:]}")
    return json.loads(out)


class Runner:
    def __init__(self, args):
        self.args = args
        self.jobs = [None] if args.jobs is None else [int(j) for j in args.jobs.split(",")]

    def logscans(self, big=False):
        """(name, command prefix) for every logscan variant a case runs under."""
        chunk = "65536" if big else "256"  # tiny chunks: most lines cross a read boundary
        for j in self.jobs:
            jobs = [] if j is None else ["-j", str(j)]
            suffix = "" if j is None else f" -j {j}"
            yield f"logscan{suffix}", [self.args.logscan, *jobs]
            yield f"logscan{suffix} --chunk-bytes {chunk}", [self.args.logscan, *jobs,
                                                             "--chunk-bytes", chunk]
        if self.args.no_python:
            return
        yield "python_logscan -j 1", [sys.executable, self.args.python_logscan, "-j", "1"]
        if not big:
            yield "python_logscan -j 2", [sys.executable, self.args.python_logscan, "-j", "2"]

    def check_case(self, name, tmp):
        files, expected = CASES[name]()
        root = tmp / name
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        del files  # the 100 MB case: keep one copy, on disk
        problems = []
        for variant, cmd in self.logscans(big=name == "line_100mb"):
            try:
                diff = first_difference(expected, report_of(cmd + [root], self.args.timeout))
            except (AssertionError, ValueError) as e:
                diff = str(e)
            if diff:
                problems.append(f"  {variant}: {diff}")
        return problems

    def check_paths(self, tmp):
        """Missing and unreadable paths: exit 2, the path named on stderr, no report unless
        --keep-going, which reports the readable rest and still exits 2."""
        root = tmp / "paths"
        (root / "tree").mkdir(parents=True)
        good = root / "tree" / "good.log"
        good.write_bytes(f"{TS} INFO [h] msg=ok\n".encode())
        good_report = report(1, good.stat().st_size, 1, levels={"INFO": 1})
        missing = root / "missing.log"
        dangling = root / "tree" / "dangling.log"  # a symlink to nothing: even root can't read
        os.symlink(root / "nowhere", dangling)
        not_dir = good / "x"  # a path under a file: ENOTDIR
        problems = []
        for variant, cmd in self.logscans():
            for bad, args, bad_name in [
                    (missing, [missing, good], missing),
                    (dangling, [dangling, good], dangling),
                    (not_dir, [not_dir, good], not_dir),
                    (dangling, [root / "tree"], dangling)]:  # found inside a directory
                label = f"  {variant} {bad.relative_to(root)}"
                code, out, err = run(cmd + args, self.args.timeout)
                if code != 2 or out or str(bad_name) not in err:
                    problems.append(f"{label}: expected exit 2, no report and the path on "
                                    f"stderr; got {code}, {len(out)} bytes, {err.strip()!r}")
                code, out, err = run(cmd + ["--keep-going"] + args, self.args.timeout)
                try:
                    diff = first_difference(good_report, json.loads(out))
                except ValueError as e:
                    diff = f"no report: {e}"
                if code != 2 or diff or str(bad_name) not in err:
                    problems.append(f"{label} --keep-going: expected exit 2, the path on "
                                    f"stderr and the rest's report; got {code}, {diff}, "
                                    f"{err.strip()!r}")
        return problems

    def check_options(self, tmp):
        """The command line: every spelling of an option gives the same report, options may
        follow the PATHs, and misuse exits 2 naming the option, with no report."""
        root = tmp / "options"
        root.mkdir(parents=True)
        log = root / "a.log"
        log.write_bytes(f"{TS} INFO [h] msg=ok\n{TS} WARN [h] msg=hm\n".encode())
        expected = report(1, log.stat().st_size, 2, levels={"INFO": 1, "WARN": 1})
        problems = []
        logscan = self.args.logscan
        for args in (["-j1"], ["-j", "1"], ["--jobs=2"], ["--jobs", "2"], ["-j2", "--no-progress"],
                     ["--chunk-bytes=256"], ["--format=json"], ["--direct"], ["--", log]):
            cmd = [logscan, *args] + ([] if "--" in args else [log])
            try:
                diff = first_difference(expected, report_of(cmd, self.args.timeout))
            except (AssertionError, ValueError) as e:
                diff = str(e)
            if diff:
                problems.append(f"  {args}: {diff}")
        code, out, _ = run([logscan, log, "-j", "1", "--format", "table"], self.args.timeout)
        if code != 0 or b"WARN" not in out:
            problems.append(f"  options after the PATH: exit {code}, {out[:200]!r}")
        for args, named in [(["-x"], "-x"), (["--no-progress", "-xv"], "'-x'"),
                            (["--bogus"], "--bogus"), (["-j0"], "-j"),
                            (["--jobs=abc"], "-j"), (["-j", "257"], "-j"),
                            (["--format=xml"], "--format"), (["--chunk-bytes", "255"],
                                                             "--chunk-bytes"),
                            (["--partial="], "--partial"), (["--help=x"], "--help=x"),
                            (["--direct", "--chunk-bytes", "4096"], "--direct")]:
            code, out, err = run([logscan, *args, log], self.args.timeout)
            if code != 2 or out or named not in err:
                problems.append(f"  {args}: expected exit 2, no report and {named!r} on "
                                f"stderr; got {code}, {len(out)} bytes, {err.strip()!r}")
        code, out, err = run([logscan, log, "--jobs"], self.args.timeout)
        if code != 2 or out or "--jobs" not in err:
            problems.append(f"  a missing value: got {code}, {len(out)} bytes, {err.strip()!r}")
        problems += self.check_unwritable_report(root)
        return problems

    def check_unwritable_report(self, root):
        """A report that cannot be written exits 1 and says so. Reports of a buffer or more
        go to write(2) at once, and stdio drops them when it fails, so only checking the
        flush used to exit 0 for them: both sizes are tried."""
        problems = []
        many = root / "many-calls.log"
        many.write_bytes("".join(f"{TS} INFO [h] call=c{i} dir=request req_id=r{i}\n"
                                 for i in range(200)).encode())
        for path in (root / "a.log", many):
            with open("/dev/full", "wb") as full:
                try:
                    done = subprocess.run([str(self.args.logscan), str(path)], stdout=full,
                                          stderr=subprocess.PIPE, timeout=self.args.timeout)
                except subprocess.TimeoutExpired:
                    problems.append(f"  report to /dev/full: no answer (a hang?)")
                    continue
            err = done.stderr.decode(errors="replace")
            if done.returncode != 1 or "cannot write the report" not in err:
                problems.append(f"  report of {path.name} to /dev/full: expected exit 1 and "
                                f"'cannot write the report'; got {done.returncode}, {err!r}")
        return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--logscan", required=True)
    ap.add_argument("--python-logscan", required=True)
    ap.add_argument("--jobs", help="comma list of N for `logscan -j N` (default: no -j)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds a run may take")
    ap.add_argument("--no-python", action="store_true",
                    help="logscan only (sanitized builds: the plain build cross-checks Python)")
    ap.add_argument("cases", nargs="*", help=f"of {', '.join(CASES)}, paths, options")
    args = ap.parse_args()
    runner = Runner(args)
    names = args.cases or list(CASES) + ["paths", "options"]
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="logscan-bad-input-") as tmp:
        for name in names:
            checks = {"paths": runner.check_paths, "options": runner.check_options}
            check = checks.get(name, lambda tmp: runner.check_case(name, tmp))
            problems = check(pathlib.Path(tmp))
            if problems:
                failed += 1
                print(f"FAIL {name}\n" + "\n".join(problems), flush=True)
            else:
                passed += 1
                print(f"ok   {name}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
