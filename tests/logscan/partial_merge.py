#!/usr/bin/env python3
"""logscan past one machine: partial reports, `logscan merge`, and fleet runs on OpenMPI.

- For random splits of a corpus's files into groups (one file per group included, so that
  requests and responses sit in different partials), `merge` of the groups' partials prints
  exactly the single run's report; so do random trees of merges of merges.
- A partial file truncated at every length, with any single byte flipped, of another version
  or not a partial at all: `merge` fails with exit status 2, a message naming the file, and
  nothing on stdout.
- `mpirun -np 3 logscan --mpi` with a directory per rank (standing for its host), and
  `--mpi-split` over one shared list, print the single run's report; a rank given a missing
  path fails the run cleanly naming the rank, host and path; a rank SIGKILLed mid-run makes
  the job fail within a bounded time with no report. Skipped, loudly, without OpenMPI.

    partial_merge.py --logscan PATH --loggen PATH
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ARGS = None
TIMEOUT = 120
MPIRUN = shutil.which("mpirun")
# As root inside a container: allow it, and avoid the cross-memory-attach copy that
# containers usually forbid (its failure is a warning per message, not an error).
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none", OMPI_MCA_rmaps_base_oversubscribe="1")
# In sanitized builds the ranks run without leak checking: OpenMPI's components, loaded with
# dlopen and unloaded in MPI_Finalize, leave allocations whose stacks LeakSanitizer can no
# longer name (so no suppression can match them). logscan's own leaks are still checked by
# every run above that does not go through MPI.
if "ASAN_OPTIONS" in MPI_ENV:
    MPI_ENV["ASAN_OPTIONS"] += ":detect_leaks=0"


def run(cmd, expect=0, env=None):
    done = subprocess.run([str(c) for c in cmd], capture_output=True, timeout=TIMEOUT, env=env)
    if expect is not None and done.returncode != expect:
        raise AssertionError(f"{cmd} exited {done.returncode}, not {expect}: "
                             f"{done.stderr.decode(errors='replace')[-2000:]}")
    return done


class Corpora:
    """loggen corpora, each with its files and its single-run report (bytes of JSON)."""
    sets = []


def setUpModule():
    Corpora.tmp = tempfile.TemporaryDirectory(prefix="logscan-partial-")
    for seed, files in [(21, 5), (22, 7), (23, 3)]:
        path = os.path.join(Corpora.tmp.name, f"seed{seed}")
        run([ARGS.loggen, "--bytes", 6 << 20, "--seed", seed, "--files", files,
             "--big-every", 3 << 20, path])
        names = sorted(os.path.join(path, f) for f in os.listdir(path))
        report = run([ARGS.logscan, "-j", "2", path]).stdout
        Corpora.sets.append((seed, names, report))


def tearDownModule():
    Corpora.tmp.cleanup()


class PartialMerge(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=Corpora.tmp.name)
        self.count = 0

    def partial_of(self, inputs, merge=False):
        self.count += 1
        out = os.path.join(self.dir, f"p{self.count}")
        run([ARGS.logscan, *(["merge"] if merge else ["-j", "2"]), "--partial", out, *inputs])
        return out

    def test_merge_of_any_split_equals_single_run(self):
        rng = random.Random(ARGS.seed)
        for seed, files, report in Corpora.sets:
            splits = [[[f] for f in files]]  # one file per partial
            for _ in range(3):
                groups = rng.randint(2, len(files))
                split = [[] for _ in range(groups)]
                for f in files:
                    split[rng.randrange(groups)].append(f)
                splits.append([g for g in split if g])
            for split in splits:
                with self.subTest(seed=seed, split=[[os.path.basename(f) for f in g] for g in split]):
                    partials = [self.partial_of(group) for group in split]
                    rng.shuffle(partials)  # merging is order-independent
                    self.assertEqual(run([ARGS.logscan, "merge", *partials]).stdout, report)

    def test_merges_of_merges_equal_single_run(self):
        rng = random.Random(ARGS.seed + 1)
        for seed, files, report in Corpora.sets:
            with self.subTest(seed=seed):
                level = [self.partial_of([f]) for f in files]
                while len(level) > 1:  # random pairings and triples up to the root
                    rng.shuffle(level)
                    take = rng.randint(2, min(3, len(level)))
                    level = [self.partial_of(level[:take], merge=True)] + level[take:]
                self.assertEqual(run([ARGS.logscan, "merge", level[0]]).stdout, report)

    def assertRejected(self, path, why):
        done = run([ARGS.logscan, "merge", path], expect=None)
        self.assertEqual(done.returncode, 2, f"{why}: exit {done.returncode}")
        self.assertEqual(done.stdout, b"", f"{why}: printed a report")
        err = done.stderr.decode(errors="replace")
        self.assertIn(path, err, f"{why}: message does not name the file")
        self.assertNotIn("Sanitizer", err, why)

    def test_truncated_flipped_foreign_and_other_version_files_are_clear_errors(self):
        small = os.path.join(self.dir, "small.log")
        with open(small, "wb") as out:
            out.write(b"2024-01-01T00:00:00.000Z INFO [h] call=a dir=request req_id=1\n"
                      b"2024-01-01T00:00:00.120Z INFO [h] call=a dir=response req_id=1 status=200\n"
                      b"2024-01-01T00:00:00.120Z INFO [h] call=b dir=request req_id=2\n")
        good = self.partial_of([small])
        with open(good, "rb") as partial:
            data = partial.read()
        self.assertEqual(run([ARGS.logscan, "merge", good]).stdout,
                         run([ARGS.logscan, small]).stdout)
        bad = os.path.join(self.dir, "bad")
        # Sanitized builds: the whole header, then every eighth length and byte of the body
        # (each run there costs 150 ms of sanitizer start-up; the plain build tries them all).
        positions = [p for p in range(len(data)) if not ARGS.sanitized or p < 40 or p % 8 == 0]
        for length in positions:
            with open(bad, "wb") as out:
                out.write(data[:length])
            self.assertRejected(bad, f"truncated to {length} bytes")
        for position in positions:
            with open(bad, "wb") as out:
                out.write(data[:position] + bytes([data[position] ^ 0x5A]) + data[position + 1:])
            # The reserved header bytes are not checked, and a flipped byte there is harmless.
            if 28 <= position < 40:
                continue
            self.assertRejected(bad, f"byte {position} flipped")
        with open(bad, "wb") as out:
            out.write(data[:8] + (99).to_bytes(4, "little") + data[12:])
        self.assertRejected(bad, "version 99")
        with open(bad, "wb") as out:
            out.write(data + b"x")
        self.assertRejected(bad, "a byte appended")
        self.assertRejected(small, "a log file, not a partial")
        self.assertRejected(os.path.join(self.dir, "missing"), "a missing file")
        # Refused before being read whole: a directory (its read error used not to name it,
        # exit 1), a device that never ends, a FIFO nobody writes (would block).
        self.assertRejected(self.dir, "a directory")
        self.assertRejected("/dev/zero", "an endless device")
        fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(fifo)
        self.assertRejected(fifo, "a FIFO")


@unittest.skipUnless(MPIRUN, "OpenMPI's mpirun is not installed (make deps installs it)")
class Fleet(unittest.TestCase):
    def mpirun(self, *apps, expect=0):
        """apps: one argument list per rank (MPMD), or a single ["-np", N, ...]."""
        cmd = [MPIRUN, "--allow-run-as-root", "--oversubscribe"]
        for i, app in enumerate(apps):
            cmd += ([":"] if i else []) + list(app)
        return run(cmd, expect=expect, env=MPI_ENV)

    def host_dirs(self, files, tmp):
        """Three 'hosts', each a directory holding a share of the files."""
        dirs = [os.path.join(tmp, f"host{r}") for r in range(3)]
        for r, d in enumerate(dirs):
            os.makedirs(d)
            for f in files[r::3]:
                os.symlink(f, os.path.join(d, os.path.basename(f)))
        return dirs

    def test_mpi_ranks_with_their_own_directories_equal_single_run(self):
        for seed, files, report in Corpora.sets:
            with self.subTest(seed=seed), tempfile.TemporaryDirectory(dir=Corpora.tmp.name) as tmp:
                dirs = self.host_dirs(files, tmp)
                done = self.mpirun(*[["-np", "1", ARGS.logscan, "--mpi", "-j", "1", d] for d in dirs])
                self.assertEqual(done.stdout, report)

    def test_mpi_split_equals_single_run(self):
        for seed, files, report in Corpora.sets:
            with self.subTest(seed=seed):
                corpus = os.path.dirname(files[0])
                done = self.mpirun(["-np", "3", ARGS.logscan, "--mpi-split", "-j", "1", corpus])
                self.assertEqual(done.stdout, report)

    def test_rank_with_missing_path_fails_the_run_naming_it(self):
        _, files, _ = Corpora.sets[0]
        missing = os.path.join(Corpora.tmp.name, "no-such-host-dir")
        done = self.mpirun(["-np", "1", ARGS.logscan, "--mpi", "-j", "1", files[0]],
                           ["-np", "1", ARGS.logscan, "--mpi", "-j", "1", missing],
                           ["-np", "1", ARGS.logscan, "--mpi", "-j", "1", files[1]], expect=None)
        self.assertEqual(done.returncode, 2)
        self.assertEqual(done.stdout, b"")
        err = done.stderr.decode(errors="replace")
        self.assertRegex(err, r"rank 1 on \S+: cannot read '" + missing + "'")
        self.assertIn("no report", err)

    def test_rank_killed_fails_the_run_within_bounded_time(self):
        with tempfile.TemporaryDirectory(dir=Corpora.tmp.name) as tmp:
            big = os.path.join(tmp, "big")
            run([ARGS.loggen, "--bytes", 160 << 20, "--seed", 31, "--files", 4, big])
            cmd = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-np", "3", ARGS.logscan,
                   "--mpi", "-j", "1", "--chunk-bytes", str(1 << 20), big]
            job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=MPI_ENV, start_new_session=True)
            ranks = []
            deadline = time.monotonic() + 30
            while len(ranks) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
                ranks = subprocess.run(["pgrep", "-x", "-P", str(job.pid), "logscan"],
                                       capture_output=True, text=True).stdout.split()
            self.assertEqual(len(ranks), 3, "the ranks did not start")
            time.sleep(0.3)
            os.kill(int(ranks[1]), signal.SIGKILL)
            killed_at = time.monotonic()
            try:
                out, err = job.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(job.pid, signal.SIGKILL)
                job.communicate()
                self.fail("the job hung after a rank was killed")
            self.assertNotEqual(job.returncode, 0)
            self.assertEqual(out, b"", "a report was printed without a rank's share")
            self.assertIn(b"signal 9", err)
            print(f"\nkilled rank ended the job in {time.monotonic() - killed_at:.1f} s",
                  file=sys.stderr)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--logscan", required=True)
    parser.add_argument("--loggen", required=True)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--sanitized", action="store_true",
                        help="a sanitized build: corrupt a sample of positions, not all")
    ARGS, rest = parser.parse_known_args()
    print(f"partial_merge: seed {ARGS.seed}; mpirun: {MPIRUN or 'NOT FOUND, fleet tests skipped'}",
          file=sys.stderr)
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
