#!/usr/bin/env python3
"""logscan when a disk read fails in the middle of a file.

A FUSE view of a loggen corpus (failing_fs.py) fails the reads of one file at one byte
offset with EIO, as a bad sector would. Then:
- `logscan` (-j 1 and -j 2, default and small chunks) exits 1 with a message naming the
  file, the offset of the failed read (at or before the bad byte, within read-ahead of it) and
  the error, and prints no report: one without those lines would be wrong.
- With --keep-going it reports the other file in full and the failing one not at all
  (`files` counts only the file read whole), and still exits 1.
- Through the same view, the good file's report equals the source's: the view is faithful,
  so the failures above come from the injected error alone.
All of it twice: through the page cache, and with the view mounted direct_io (reads reach
the view as asked; a read spanning several FUSE requests once came back "complete" with a
hole where the failing request was, and a wrong report).

Needs root, /dev/fuse and Debian's python3-fusepy (scripts/install-deps.sh installs it);
without them it says what is missing and exits 77, which meson counts as skipped.

    read_error.py --logscan PATH --loggen PATH
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
FUSE_PYTHON = "/usr/bin/python3"  # Debian's: python3-fusepy is installed for it
ARGS = None
TIMEOUT = 120
BAD_OFFSET = 5_000_123  # in app-000.log: inside its second 4 MiB range, far from either end


def fuse_missing():
    """Why a FUSE view cannot be mounted here, or None."""
    if os.geteuid() != 0:
        return "not root"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    probe = subprocess.run([FUSE_PYTHON, "-c", "import fusepy"], capture_output=True)
    if probe.returncode != 0:
        return f"{FUSE_PYTHON} cannot import fusepy (python3-fusepy)"
    return None


class FailingView:
    """failing_fs.py mounted over `source`, failing `name` at `offset`; unmounted on exit."""

    def __init__(self, source, mountpoint, name, offset, direct_io):
        self.mountpoint = mountpoint
        self.server = subprocess.Popen(
            [FUSE_PYTHON, str(HERE / "failing_fs.py"), source, mountpoint, "--fail", name,
             "--at", str(offset)] + (["--direct-io"] if direct_io else []),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not os.path.ismount(mountpoint):
            if self.server.poll() is not None or time.monotonic() > deadline:
                self.close()
                output = self.server.stdout.read().decode(errors="replace")
                raise unittest.SkipTest(f"the FUSE view did not mount: {output}")
            time.sleep(0.05)

    def close(self):
        if os.path.ismount(self.mountpoint):
            subprocess.run(["umount", self.mountpoint], capture_output=True)
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        if os.path.ismount(self.mountpoint):  # the server died holding it: detach it
            subprocess.run(["umount", "-l", self.mountpoint], capture_output=True)


def logscan(*args):
    return subprocess.run([ARGS.logscan, "--no-progress", *args], capture_output=True,
                          timeout=TIMEOUT)


class MidFileReadError(unittest.TestCase):
    DIRECT_IO = False

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="logscan-read-error-")
        cls.source = os.path.join(cls.tmp.name, "source")
        subprocess.run([ARGS.loggen, "--bytes", str(12 << 20), "--seed", "17", "--files", "2",
                        cls.source], check=True, capture_output=True, timeout=TIMEOUT)
        cls.bad = os.path.join(cls.source, "app-000.log")
        cls.good = os.path.join(cls.source, "app-001.log")
        assert os.path.getsize(cls.bad) > BAD_OFFSET + (1 << 20)
        cls.good_report = json.loads(logscan("-j", "1", cls.good).stdout)
        cls.mountpoint = os.path.join(cls.tmp.name, "view")
        os.mkdir(cls.mountpoint)
        cls.view = FailingView(cls.source, cls.mountpoint, "app-000.log", BAD_OFFSET,
                               cls.DIRECT_IO)

    @classmethod
    def tearDownClass(cls):
        cls.view.close()
        cls.tmp.cleanup()

    def viewed(self, name):
        return os.path.join(self.mountpoint, name)

    def test_view_serves_the_good_file_faithfully(self):
        done = logscan("-j", "2", self.viewed("app-001.log"))
        self.assertEqual(done.returncode, 0, done.stderr.decode())
        self.assertEqual(json.loads(done.stdout), self.good_report)

    def expect_failure_named(self, stderr):
        message = stderr.decode(errors="replace")
        self.assertIn(self.viewed("app-000.log"), message)
        self.assertIn("Input/output error", message)
        match = re.search(r"reading at offset (\d+)", message)
        self.assertIsNotNone(match, message)
        offset = int(match.group(1))
        # The page cache reads whole pages (and reads ahead): the failed read starts at the bad
        # byte's page or a little before it, never after it.
        self.assertLessEqual(offset, BAD_OFFSET, message)
        self.assertLess(BAD_OFFSET - offset, 1 << 20, message)

    def test_run_fails_naming_file_and_offset_without_a_report(self):
        for extra in (["-j", "1"], ["-j", "2"], ["-j", "2", "--chunk-bytes", "262144"]):
            with self.subTest(args=extra):
                done = logscan(*extra, self.mountpoint)
                self.assertEqual(done.returncode, 1, done.stderr.decode())
                self.assertEqual(done.stdout, b"", "a report that lacks the unread lines")
                self.expect_failure_named(done.stderr)

    def test_keep_going_reports_the_other_file_and_exits_1(self):
        # The failing file is left out whole: not its lines before the error either (those
        # used to count while `files` left the file out). Its ranges before the bad one read
        # fine, so small chunks make sure there are several of them.
        for extra in (["-j", "1"], ["-j", "2"], ["-j", "2", "--chunk-bytes", "262144"]):
            with self.subTest(args=extra):
                done = logscan(*extra, "--keep-going", self.mountpoint)
                self.assertEqual(done.returncode, 1, done.stderr.decode())
                self.expect_failure_named(done.stderr)
                self.assertEqual(json.loads(done.stdout), self.good_report)


class MidFileReadErrorDirectIoView(MidFileReadError):
    DIRECT_IO = True


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logscan", required=True)
    parser.add_argument("--loggen", required=True)
    ARGS, rest = parser.parse_known_args()
    missing = fuse_missing()
    if missing:
        print(f"read_error.py: {missing}: the mid-file read error is NOT TESTED")
        return 77
    program = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2)
    result = program.result
    if result.wasSuccessful() and result.skipped:
        return 77  # the view never mounted
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
