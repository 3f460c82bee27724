#!/usr/bin/env python3
"""logscan's multi-process pipeline under faults, and its terminal behaviour.

- A worker that dies while scanning a chunk (killed through the test hook, at chosen file
  offsets) fails the run with exit status 3, a message naming the chunk's file and byte
  range, and no report on stdout: a report without that chunk would be wrong.
- Workers SIGKILLed from outside at random moments: every run either fails that way or
  (the worker was idle, the pool replaced it) prints exactly the reference report. Never a
  hang, never a wrong report.
- After every run, including the failed ones, no process of the run is left (no orphan
  worker, no template) and nothing is left in /dev/shm.
- The progress line appears on a terminal (bytes, rate, ETA) and never on a pipe.

    pipeline_faults.py --logscan PATH --loggen PATH [--trials N]
"""
import argparse
import json
import os
import pty
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from procfs import children_of, process_table, session_members  # noqa: E402  (tests/procfs.py)

ARGS = None
TIMEOUT = 120


def workers_of(pid):
    """The grandchildren of `pid`: logscan's direct child is the template, which forks the
    workers."""
    table = process_table()
    templates = children_of(pid, table)
    return [p for p, stat in table.items() if stat.parent in templates]


class Corpus:
    """Two loggen corpora and their reports from a single-worker run."""


def make_corpus(name, size, seed, files):
    path = os.path.join(Corpus.tmp.name, name)
    subprocess.run([ARGS.loggen, "--bytes", str(size), "--seed", str(seed), "--files",
                    str(files), path], check=True, capture_output=True, timeout=TIMEOUT)
    done = subprocess.run([ARGS.logscan, "-j", "1", path], capture_output=True,
                          timeout=TIMEOUT, check=True)
    return path, json.loads(done.stdout)


def setUpModule():
    Corpus.tmp = tempfile.TemporaryDirectory(prefix="logscan-faults-")
    Corpus.path, Corpus.reference = make_corpus("corpus", 24 << 20, 11, 3)
    # A larger one for the random kills, so that most kills land inside a run.
    Corpus.large, Corpus.large_reference = make_corpus("large", ARGS.large_mb << 20, 12, 6)


def tearDownModule():
    Corpus.tmp.cleanup()


class PipelineFaults(unittest.TestCase):
    def start(self, *args, env=None):
        # A session of its own, so that every process the run made can be found afterwards.
        return subprocess.Popen([ARGS.logscan, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True,
                                env=dict(os.environ, **(env or {})))

    def finish(self, process):
        try:
            out, err = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            self.fail(f"logscan hung (killed after {TIMEOUT} s)")
        self.assertNoLeftovers(process.pid)
        return process.returncode, out, err.decode(errors="replace")

    def assertNoLeftovers(self, sid):
        deadline = time.monotonic() + 5  # the template may take a moment after the parent
        while session_members(sid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(session_members(sid), [], "processes of the run outlived it")

    def test_worker_killed_at_offset_fails_run_naming_chunk(self):
        files = sorted(os.listdir(Corpus.path))
        for jobs, offset in [(1, 0), (2, 5_000_000), (2, 7_999_999), (3, 1)]:
            with self.subTest(jobs=jobs, offset=offset):
                process = self.start("-j", str(jobs), "--chunk-bytes", str(1 << 20),
                                     Corpus.path,
                                     env={"LOGSCAN_TEST_KILL_WORKER_AT": str(offset)})
                status, out, err = self.finish(process)
                self.assertEqual(status, 3, err)
                self.assertEqual(out, b"", "a report was printed for an incomplete run")
                match = re.search(r"killed by signal 9 .*while scanning '([^']+)' bytes (\d+)\.\.(\d+)",
                                  err)
                self.assertIsNotNone(match, err)
                self.assertIn(os.path.basename(match.group(1)), files)
                self.assertLessEqual(int(match.group(2)), offset)
                self.assertLess(offset, int(match.group(3)))

    def test_workers_killed_at_random_never_hang_or_misreport(self):
        rng = random.Random(ARGS.seed)
        failed_runs = kills = 0
        for trial in range(ARGS.trials):
            with self.subTest(trial=trial):
                process = self.start("-j", "2", "--chunk-bytes", str(1 << 20), Corpus.large)
                time.sleep(rng.uniform(0.02, 0.3))
                victims = workers_of(process.pid)
                if victims:
                    try:
                        os.kill(rng.choice(victims), signal.SIGKILL)
                        kills += 1
                    except ProcessLookupError:
                        pass
                status, out, err = self.finish(process)
                if status == 0:  # the worker was idle: the pool replaced it, nothing was lost
                    self.assertEqual(json.loads(out), Corpus.large_reference)
                else:
                    failed_runs += 1
                    self.assertEqual(status, 3, err)
                    self.assertEqual(out, b"")
                    self.assertRegex(err, r"while scanning '.+' bytes \d+\.\.\d+")
        print(f"\n{ARGS.trials} runs, {kills} workers killed: {failed_runs} runs failed "
              f"cleanly, {ARGS.trials - failed_runs} completed with the exact report",
              file=sys.stderr)
        self.assertGreater(failed_runs, 0, "no kill landed in a run: the test tested nothing")

    def test_more_workers_than_chunks(self):
        small = os.path.join(Corpus.tmp.name, "small.log")
        with open(small, "wb") as out:
            out.write(b"2024-02-29T23:59:59.999Z INFO [h] call=a dir=request req_id=1\n"
                      b"2024-02-29T23:59:59.999Z INFO [h] call=a dir=response req_id=1 status=200")
        process = self.start("-j", "8", small)
        status, out, err = self.finish(process)
        self.assertEqual(status, 0, err)
        report = json.loads(out)
        self.assertEqual((report["files"], report["lines"]), (1, 2))
        self.assertEqual(report["calls"]["a"]["latency_ms"]["count"], 1)

    def test_no_progress_line_on_a_pipe(self):
        status, out, err = self.finish(self.start("-j", "2", Corpus.path))
        self.assertEqual(status, 0, err)
        self.assertEqual(err, "")
        self.assertEqual(json.loads(out), Corpus.reference)

    def test_progress_line_on_a_terminal(self):
        # stderr is a pseudo-terminal; stdout stays a pipe, so the report is clean.
        controller, terminal = pty.openpty()
        process = subprocess.Popen([ARGS.logscan, "-j", "1", "--chunk-bytes", str(64 << 10),
                                    Corpus.path, Corpus.path, Corpus.path],
                                   stdout=subprocess.PIPE, stderr=terminal,
                                   start_new_session=True)
        os.close(terminal)
        shown = b""
        while True:
            try:
                data = os.read(controller, 4096)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not data:
                break
            shown += data
        out, _ = process.communicate(timeout=TIMEOUT)
        os.close(controller)
        self.assertEqual(process.returncode, 0)
        self.assertEqual(json.loads(out)["files"], 9)
        text = shown.decode(errors="replace")
        self.assertRegex(text, r"logscan: [\d.]+ [kMG]?B of [\d.]+ MB \(\d+%\), [\d.]+ [kMG]?B/s, ETA")
        self.assertTrue(text.endswith("\r\x1b[K"), "the progress line is not erased at the end")


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--logscan", required=True)
    parser.add_argument("--loggen", required=True)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--large-mb", type=int, default=96,
                        help="size of the corpus the random kills run on")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    ARGS, rest = parser.parse_known_args()
    print(f"pipeline_faults: seed {ARGS.seed}", file=sys.stderr)
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
