#!/usr/bin/env python3
"""logscan in plain Python: the reference implementation of shared/LOGFORMAT.md.

    python3 bench/python_logscan.py [-j N] [--format json|table] [--keep-going] PATH...

What the seeds' author would write: the input is cut into chunks at line ends, a
multiprocessing.Pool scans each chunk into a partial report (counts, exact latency
value -> count maps, records still waiting for their partner), and the parent merges the
partials in any order and prints the report. Standard library only. Where the json and
xml modules are laxer or stricter than the contract, the extra check says which rule it
enforces ("LOGFORMAT: ..."). It is also the speed baseline for the C++ logscan.
"""

import argparse
import json
import math
import multiprocessing
import os
import re
import sys
import xml.parsers.expat
from collections import Counter

VERSION = "0.1.0"
CHUNK_BYTES = 8 << 20
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
STATUS_KEYS = ("2xx", "3xx", "4xx", "5xx", "other", "missing")
PAYLOAD_KEYS = ("none", "json", "xml", "other", "malformed_json", "malformed_xml")
MAX_JSON_DEPTH = 1024
INT_MIN, INT_MAX = -(2 ** 63), 2 ** 64 - 1

# LOGFORMAT "Lines": timestamp, level, [host], then key=value tokens (non-empty [a-z_] key,
# value of any bytes but space), separated by runs of spaces; trailing spaces make no
# token. Bytes regex: \d is ASCII only. The payload= token is split off before this.
HEAD_RE = re.compile(
    rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z +"
    rb"(TRACE|DEBUG|INFO|WARN|ERROR|FATAL) +\[[^\] ]+\]((?: +[a-z_]+=[^ ]*)*) *",
    re.DOTALL)
KV_RE = re.compile(rb"([a-z_]+)=([^ ]*)")
SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F]")
JSON_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
JSON_BRACKET_RE = re.compile(r"[\[\]{}]")

# json.loads recurses once per nesting level and the default limit (1000) is below the
# contract's 1024; deeper texts never reach json.loads (see check_json).
sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * MAX_JSON_DEPTH))

DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def is_leap(year):
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_from_civil(y, m, d):
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def timestamp_ms(m):
    """Milliseconds since the epoch, or None unless a valid calendar date and time of day.

    LOGFORMAT: any four-digit year (0000 included, proleptic Gregorian, as ISO 8601
    counts), leap years by the Gregorian rule, no leap second (SS is 00..59)."""
    y, mo, d, hh, mi, ss, ms = (int(g) for g in m.group(1, 2, 3, 4, 5, 6, 7))
    if not 1 <= mo <= 12 or d < 1 or hh > 23 or mi > 59 or ss > 59:
        return None
    if d > (29 if mo == 2 and is_leap(y) else DAYS_IN_MONTH[mo]):
        return None
    return (((days_from_civil(y, mo, d) * 24 + hh) * 60 + mi) * 60 + ss) * 1000 + ms


def decimal(value, upper):
    """LOGFORMAT: a decimal integer is ASCII digits only, leading zeros at any length."""
    if not value or not value.isdigit():  # bytes.isdigit is ASCII-only; int() takes '_', ' '
        return None
    value = value.lstrip(b"0") or b"0"
    if len(value) > 9:  # int() refuses over 4300 digits; 10 digits exceed both limits anyway
        return None
    n = int(value)
    return n if n <= upper else None


# ---------------------------------------------------------------------------------------
# Payloads


class _Malformed(Exception):
    pass


class _Pairs(list):
    """An object's members in order: the contract's error rule looks at repeated names."""


def _parse_int(text):
    n = int(text)
    if not INT_MIN <= n <= INT_MAX:  # LOGFORMAT: an integer lies in -2^63 .. 2^64-1
        raise _Malformed
    return n


def _parse_float(text):
    x = float(text)
    if math.isinf(x):  # LOGFORMAT: any other number is a finite IEEE-754 double
        raise _Malformed
    return x


def _parse_constant(_name):
    raise _Malformed  # LOGFORMAT: NaN and Infinity are not JSON (json.loads accepts them)


def _json_depth(text):
    """Deepest nesting of arrays and objects, brackets inside strings left out."""
    depth = deepest = 0
    for bracket in JSON_BRACKET_RE.findall(JSON_STRING_RE.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _has_lone_surrogate(value):
    """json.loads keeps an unpaired \\uD800 as a lone surrogate, which UTF-8 cannot encode."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(v, list):  # arrays and _Pairs (objects)
            stack.extend(v)
        elif isinstance(v, tuple):  # a member: (name, value)
            stack.extend(v)
    return False


def check_json(doc):
    """(malformed, error) for a json payload, per LOGFORMAT "Payloads" and "Errors"."""
    try:
        text = doc.decode("utf-8")  # LOGFORMAT: valid UTF-8, no other encoding detected
    except UnicodeDecodeError:
        return True, False
    # LOGFORMAT: nesting at most 1024 deep. json.loads would raise RecursionError near
    # 1000 (raised below) and cannot parse 10^5 levels at all, so count first; the string
    # stripping regex only needs to be right for texts that then parse.
    if (text.count("[") + text.count("{") > MAX_JSON_DEPTH
            and _json_depth(text) > MAX_JSON_DEPTH):
        return True, False
    try:
        value = json.loads(text, object_pairs_hook=_Pairs, parse_int=_parse_int,
                           parse_float=_parse_float, parse_constant=_parse_constant)
    except (ValueError, _Malformed, RecursionError):
        return True, False
    # LOGFORMAT: a \u escape of a surrogate is part of a valid pair.
    if SURROGATE_ESCAPE_RE.search(text) and _has_lone_surrogate(value):
        return True, False
    # json.loads strips only JSON whitespace around the text; a BOM is not JSON whitespace
    # and json.loads rejects it ("Unexpected UTF-8 BOM"), as RFC 8259's grammar does.
    error = isinstance(value, _Pairs) and any(
        name == "error" and member is not None for name, member in value)
    return False, error


class _XmlVerdict:
    def __init__(self):
        self.depth = 0
        self.error = False

    def start(self, name, _attrs):
        self.depth += 1
        if name.rpartition(":")[2] in ("error", "Fault"):  # LOGFORMAT: local name
            self.error = True

    def end(self, _name):
        self.depth -= 1

    def pi(self, _target, _data):
        if self.depth == 0:  # LOGFORMAT: a processing instruction outside the element
            raise _Malformed

    def doctype(self, *_args):
        raise _Malformed  # LOGFORMAT: a DOCTYPE makes the payload malformed


def check_xml(doc):
    """(malformed, error) for an xml payload.

    ElementTree's parser always processes namespaces and so rejects an undeclared prefix,
    which LOGFORMAT allows ("well-formed XML 1.0, not Namespaces in XML"): this uses expat,
    the parser underneath xml.etree, without namespace processing. Expat enforces the rest
    (one element, closed and nested tags, quoted attributes, predefined or numeric
    entities, XML characters, the declaration first); the DOCTYPE and outside-PI rules are
    added through its handlers. encoding='UTF-8' overrides a declared encoding, as the
    contract reads the payload's bytes as they are."""
    verdict = _XmlVerdict()
    parser = xml.parsers.expat.ParserCreate(encoding="UTF-8")
    parser.StartElementHandler = verdict.start
    parser.EndElementHandler = verdict.end
    parser.ProcessingInstructionHandler = verdict.pi
    parser.StartDoctypeDeclHandler = verdict.doctype
    try:
        parser.Parse(doc, True)
    except (xml.parsers.expat.ExpatError, _Malformed):
        return True, False
    return False, verdict.error


# ---------------------------------------------------------------------------------------
# Partial reports


def new_call():
    return {"requests": 0, "responses": 0, "errors": 0,
            "status": dict.fromkeys(STATUS_KEYS, 0), "payload": dict.fromkeys(PAYLOAD_KEYS, 0),
            "latency": Counter()}


def new_partial():
    # waiting: (call, req_id) -> [request_ts or None, response (ts, has_dur) or None]
    return {"files": 0, "bytes": 0, "lines": 0, "blank": 0, "malformed": 0,
            "levels": dict.fromkeys(LEVELS, 0), "calls": {}, "waiting": {}}


def _wait(partial, key, request_ts, response):
    """Files a record with a req_id; pairs it when its partner is already waiting."""
    slot = partial["waiting"].get(key)
    if slot is None:
        partial["waiting"][key] = [request_ts, response]
        return
    if request_ts is not None:
        slot[0] = request_ts
    else:
        slot[1] = response
    if slot[0] is not None and slot[1] is not None:
        del partial["waiting"][key]
        _pair(partial, key[0], slot[0], slot[1])


def _pair(partial, call, request_ts, response):
    response_ts, has_dur = response
    if not has_dur:  # LOGFORMAT: dur_ms first; else the paired timestamps, if not negative
        latency = response_ts - request_ts
        if latency >= 0:
            partial["calls"][call]["latency"][latency] += 1


def scan_lines(data, partial):
    """Adds the lines of `data` (whole lines; the last one may lack its terminator)."""
    if not data:
        return
    lines = data.split(b"\n")
    terminated_last = lines[-1] == b""
    if terminated_last:
        lines.pop()
    partial["lines"] += len(lines)
    last = len(lines) - 1
    levels = partial["levels"]
    calls = partial["calls"]
    for i, line in enumerate(lines):
        # LOGFORMAT: a \r directly before \n is part of the terminator; a final \r of an
        # unterminated last line stays in the line.
        if line.endswith(b"\r") and (i < last or terminated_last):
            line = line[:-1]
        if not line:
            partial["blank"] += 1
            continue
        cut = line.find(b" payload=")
        if cut >= 0:
            head, payload = line[:cut], line[cut + 9:]
        else:
            head, payload = line, None
        m = HEAD_RE.fullmatch(head)
        ts = timestamp_ms(m) if m else None
        if ts is None:
            partial["malformed"] += 1
            continue
        levels[m.group(8).decode()] += 1
        fields = dict(KV_RE.findall(m.group(9)))  # LOGFORMAT: a repeated key, the last counts
        call = fields.get(b"call")
        direction = fields.get(b"dir")
        if not call or direction not in (b"request", b"response"):
            continue
        stats = calls.get(call)
        if stats is None:
            stats = calls[call] = new_call()
        is_response = direction == b"response"
        error = False
        status = decimal(fields.get(b"status"), 999)
        if is_response:
            stats["responses"] += 1
            if status is None:
                stats["status"]["missing"] += 1
            elif 200 <= status <= 599:
                stats["status"][f"{status // 100}xx"] += 1
            else:
                stats["status"]["other"] += 1
            error = status is not None and status >= 500
        else:
            stats["requests"] += 1

        # LOGFORMAT "Payloads": the surrounding spaces are not part of the document.
        doc = payload.strip(b" ") if payload is not None else b""
        if not doc:
            stats["payload"]["none"] += 1
        elif doc[0] in b"{[":
            stats["payload"]["json"] += 1
            malformed, payload_error = check_json(doc)
            stats["payload"]["malformed_json"] += malformed
            error = error or payload_error
        elif doc[0] == ord("<"):
            stats["payload"]["xml"] += 1
            malformed, payload_error = check_xml(doc)
            stats["payload"]["malformed_xml"] += malformed
            error = error or payload_error
        else:
            stats["payload"]["other"] += 1
        stats["errors"] += error

        dur = decimal(fields.get(b"dur_ms"), 86400000) if is_response else None
        if dur is not None:
            stats["latency"][dur] += 1
        req_id = fields.get(b"req_id")
        if req_id:  # LOGFORMAT: an empty req_id counts as none; such records never pair
            if is_response:
                _wait(partial, (call, req_id), None, (ts, dur is not None))
            else:
                _wait(partial, (call, req_id), ts, None)


def merge(into, other):
    for key in ("files", "bytes", "lines", "blank", "malformed"):
        into[key] += other[key]
    for level in LEVELS:
        into["levels"][level] += other["levels"][level]
    for call, stats in other["calls"].items():
        mine = into["calls"].get(call)
        if mine is None:
            into["calls"][call] = stats
            continue
        for key in ("requests", "responses", "errors"):
            mine[key] += stats[key]
        for group in ("status", "payload"):
            for key, n in stats[group].items():
                mine[group][key] += n
        mine["latency"].update(stats["latency"])
    for key, (request_ts, response) in other["waiting"].items():
        if request_ts is not None:
            _wait(into, key, request_ts, None)
        if response is not None:
            _wait(into, key, None, response)
    return into


def nearest_rank(histogram, count, p):
    """LOGFORMAT: the value at rank ceil(p/100 * n), 1-based, over (value, n) sorted."""
    rank = (p * count + 99) // 100  # the ceiling in integers: no rounding error
    seen = 0
    for value, n in histogram:
        seen += n
        if seen >= rank:
            return value
    raise AssertionError("rank beyond count")


def finish(partial):
    """The final report, keys in the contract's order, calls sorted by name."""
    calls = {}
    for call, stats in partial["calls"].items():
        name = call.decode("utf-8", "replace")  # maximal invalid sequence -> U+FFFD
        mine = calls.get(name)
        if mine is None:
            mine = calls[name] = new_call()
            mine["unmatched_requests"] = mine["unmatched_responses"] = 0
        merge_call(mine, stats)
    for (call, _), (request_ts, response) in partial["waiting"].items():
        mine = calls[call.decode("utf-8", "replace")]
        if request_ts is not None:
            mine["unmatched_requests"] += 1
        else:
            mine["unmatched_responses"] += 1
    out_calls = {}
    for name in sorted(calls):
        stats = calls[name]
        histogram = sorted(stats["latency"].items())
        count = sum(n for _, n in histogram)
        latency = {"count": count, "p50": None, "p90": None, "p99": None, "max": None}
        if count:
            latency.update(p50=nearest_rank(histogram, count, 50),
                           p90=nearest_rank(histogram, count, 90),
                           p99=nearest_rank(histogram, count, 99), max=histogram[-1][0])
        out_calls[name] = {
            "requests": stats["requests"], "responses": stats["responses"],
            "errors": stats["errors"], "status": stats["status"], "payload": stats["payload"],
            "latency_ms": latency,
            "unmatched_requests": stats["unmatched_requests"],
            "unmatched_responses": stats["unmatched_responses"]}
    return {"files": partial["files"], "bytes": partial["bytes"], "lines": partial["lines"],
            "blank": partial["blank"], "malformed": partial["malformed"],
            "levels": partial["levels"], "calls": out_calls}


def merge_call(mine, stats):
    for key in ("requests", "responses", "errors"):
        mine[key] += stats[key]
    for group in ("status", "payload"):
        for key, n in stats[group].items():
            mine[group][key] += n
    mine["latency"].update(stats["latency"])


# ---------------------------------------------------------------------------------------
# Input


def scan_chunk(task):
    path, offset, length = task
    partial = new_partial()
    with open(path, "rb") as f:
        f.seek(offset)
        scan_lines(f.read(length), partial)
    return partial


def chunks(path, size):
    """(path, offset, length) pieces of a file, each cut after a line end."""
    total = os.path.getsize(path)
    start = 0
    with open(path, "rb") as f:
        while start < total:
            end = start + size
            if end >= total:
                end = total
            else:
                f.seek(end)
                while True:
                    block = f.read(1 << 16)
                    if not block:
                        end = total
                        break
                    nl = block.find(b"\n")
                    if nl >= 0:
                        end += nl + 1
                        break
                    end += len(block)
            yield path, start, end - start
            start = end


def input_files(paths, keep_going):
    """Files under the given paths (directories recursively), or exit 2 naming a bad one."""
    files, failed = [], False
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files.extend(os.path.join(root, n) for n in sorted(names))
        elif os.access(path, os.R_OK) and os.path.exists(path):
            files.append(path)
        else:
            reason = "no such file or directory" if not os.path.exists(path) else "not readable"
            print(f"python_logscan: cannot read '{path}': {reason}", file=sys.stderr)
            failed = True
            if not keep_going:
                sys.exit(2)
    return files, failed


def format_table(report):
    lines = [f"files {report['files']}  bytes {report['bytes']}  lines {report['lines']}  "
             f"blank {report['blank']}  malformed {report['malformed']}",
             "levels  " + "  ".join(f"{k} {v}" for k, v in report["levels"].items()), ""]
    header = ("call", "req", "resp", "err", "2xx", "3xx", "4xx", "5xx", "oth", "miss",
              "json", "xml", "bad", "lat_n", "p50", "p90", "p99", "max", "unm_req",
              "unm_resp")
    rows = [header]
    for name, c in report["calls"].items():
        lat = c["latency_ms"]
        rows.append((name, c["requests"], c["responses"], c["errors"],
                     *c["status"].values(), c["payload"]["json"], c["payload"]["xml"],
                     c["payload"]["malformed_json"] + c["payload"]["malformed_xml"],
                     lat["count"], *("-" if lat[k] is None else lat[k]
                                     for k in ("p50", "p90", "p99", "max")),
                     c["unmatched_requests"], c["unmatched_responses"]))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w)
                               for i, (v, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python_logscan.py",
                                 description="Analyse application logs (shared/LOGFORMAT.md).")
    ap.add_argument("paths", nargs="+", metavar="PATH")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--format", choices=("json", "table"), default="json")
    ap.add_argument("--keep-going", action="store_true",
                    help="report unreadable paths, scan the rest, still exit 2")
    ap.add_argument("--version", action="version", version=f"python_logscan {VERSION}")
    args = ap.parse_args(argv)

    files, failed = input_files(args.paths, args.keep_going)
    total = new_partial()
    tasks = []
    for path in files:
        try:
            total["bytes"] += os.path.getsize(path)
            tasks.extend(chunks(path, CHUNK_BYTES))
        except OSError as e:
            print(f"python_logscan: cannot read '{path}': {e.strerror}", file=sys.stderr)
            if not args.keep_going:
                sys.exit(2)
            failed = True
            continue
        total["files"] += 1
    if args.jobs <= 1:
        partials = map(scan_chunk, tasks)
        for p in partials:
            merge(total, p)
    else:
        with multiprocessing.Pool(args.jobs) as pool:
            for p in pool.imap_unordered(scan_chunk, tasks, chunksize=1):
                merge(total, p)
    report = finish(total)
    if args.format == "json":
        text = json.dumps(report, indent=2, ensure_ascii=False)
    else:
        text = format_table(report)
    sys.stdout.buffer.write(text.encode("utf-8") + b"\n")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
