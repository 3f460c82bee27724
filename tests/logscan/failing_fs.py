#!/usr/bin/python3
"""A read-only FUSE view of a directory in which one file's reads fail with EIO.

    failing_fs.py SOURCE MOUNTPOINT --fail NAME --at OFFSET [--direct-io]

Mirrors SOURCE at MOUNTPOINT (in the foreground, until SIGTERM or an unmount). A read of
NAME that covers byte OFFSET fails with EIO, as a disk's bad sector would make it; every
other read returns the source's bytes. By default reads go through the kernel's page cache,
which asks for whole pages (read-ahead included): a reader sees its read stop short at the
failing page, then EIO there. With --direct-io the kernel passes reads through as they come,
split into requests of up to 128 KiB: on Linux 6.18 an io_uring read whose middle request
fails then completes with the full count, part of its buffer never written, which is why
UringReader reads FUSE files 128 KiB at a time.

Runs under Debian's /usr/bin/python3, whose python3-fusepy package (import name `fusepy`)
scripts/install-deps.sh installs; read_error.py starts it and skips when it cannot mount.
"""
import argparse
import errno
import os
import sys

try:
    import fusepy
except ImportError:  # fusepy from PyPI names its module `fuse`
    import fuse as fusepy


class FailingView(fusepy.Operations):
    def __init__(self, source, fail_name, fail_at):
        self.source = source
        self.fail_path = "/" + fail_name
        self.fail_at = fail_at

    def _real(self, path):
        return os.path.join(self.source, path.lstrip("/"))

    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self._real(path))
        except OSError as error:
            raise fusepy.FuseOSError(error.errno)
        return {key: getattr(st, key) for key in ("st_mode", "st_nlink", "st_size", "st_uid",
                                                  "st_gid", "st_atime", "st_mtime", "st_ctime")}

    def readdir(self, path, fh):
        return [".", ".."] + sorted(os.listdir(self._real(path)))

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise fusepy.FuseOSError(errno.EROFS)
        return os.open(self._real(path), os.O_RDONLY)

    def read(self, path, size, offset, fh):
        if path == self.fail_path and offset <= self.fail_at < offset + size:
            raise fusepy.FuseOSError(errno.EIO)
        return os.pread(fh, size, offset)

    def release(self, path, fh):
        os.close(fh)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("mountpoint")
    parser.add_argument("--fail", required=True, help="file name (in SOURCE) whose read fails")
    parser.add_argument("--at", type=int, required=True, help="byte offset the failing read covers")
    parser.add_argument("--direct-io", action="store_true", help="mount with direct_io")
    args = parser.parse_args()
    fusepy.FUSE(FailingView(os.path.abspath(args.source), args.fail, args.at), args.mountpoint,
                foreground=True, ro=True, direct_io=args.direct_io)
    return 0


if __name__ == "__main__":
    sys.exit(main())
