"""The process table as /proc shows it, for tests that check what a run leaves behind:
children still around, zombies, members of a session.

Shared by tests/logscan/pipeline_faults.py and tests/python/test_queue.py; each puts tests/
on sys.path from its own location, since meson runs one as a script and the other with
`python3 -m unittest` from tests/python/.
"""

import os
from typing import NamedTuple


class ProcStat(NamedTuple):
    """The fields of /proc/PID/stat these tests use."""
    state: str  # R, S, D, T, Z, ...
    parent: int
    session: int


def read_stat(pid):
    """ProcStat of `pid`, or None if it has gone (it may exit while the table is read)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name (field 2) is in parentheses and may itself hold spaces and ')':
            # the fields after the last ')' are state, ppid, pgrp, session, ...
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return ProcStat(state=fields[0], parent=int(fields[1]), session=int(fields[3]))


def process_table():
    """{pid: ProcStat} of every process now."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_stat(entry)
            if stat is not None:
                table[int(entry)] = stat
    return table


def children_of(pid, table=None):
    """{pid: ProcStat} of the processes whose parent is `pid` (zombies included)."""
    table = process_table() if table is None else table
    return {child: stat for child, stat in table.items() if stat.parent == pid}


def session_members(sid, table=None):
    """Pids of the processes in session `sid`."""
    table = process_table() if table is None else table
    return [pid for pid, stat in table.items() if stat.session == sid]


def command_line(pid):
    """The command line of `pid`, arguments joined by spaces; '' for a zombie (its memory,
    which held the arguments, is gone), None if the process has gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
