"""Is the process that writes a trace file still alive? It decides `running` vs `interrupted`.

graphtrace's files are named ``traces-<UTC yyyymmddTHHMMSS>-<host>-<pid>-<seq>.jsonl``. On the
same host the pid answers the question: ``os.kill(pid, 0)`` says whether the process exists, and
on Linux its start time (``/proc/<pid>/stat``) must not be later than the file's stamp, which
rules out a recycled pid. A writer on another host (a shared directory) is taken as alive while
its files changed within :data:`REMOTE_SILENCE` seconds. Files with other names (written by other
tools) have no live writer: graphtrace's pending records are the only open spans there are.

File mtimes are not used on the same host: a process whose runs all wait at gates writes
nothing for as long as the person takes to answer.
"""

from __future__ import annotations

import calendar
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from exporters.file import _hostname

__all__ = ["REMOTE_SILENCE", "WriterName", "WriterState", "parse_name", "writer_alive"]

REMOTE_SILENCE: Final = 300.0

_NAME = re.compile(r"^traces-(\d{8}T\d{6})-(.+)-(\d+)-(\d+)\.jsonl$")


@dataclass(frozen=True, slots=True)
class WriterName:
    """What a graphtrace trace file's name says about the process that writes it."""

    stamp: float  # epoch seconds the writer started (UTC, whole seconds)
    host: str
    pid: int
    seq: int

    @property
    def key(self) -> str:
        """Names every file of one writer (its rotated files share it)."""
        return f"{self.host}-{self.pid}-{int(self.stamp)}"


def parse_name(name: str) -> WriterName | None:
    """The writer of a file named like graphtrace's, else None."""
    match = _NAME.match(name)
    if match is None:
        return None
    try:
        stamp = calendar.timegm(time.strptime(match[1], "%Y%m%dT%H%M%S"))
    except ValueError:
        return None
    return WriterName(float(stamp), match[2], int(match[3]), int(match[4]))


@dataclass(frozen=True, slots=True)
class WriterState:
    """Alive or not, and until when it wrote (epoch ns) if not."""

    alive: bool
    last_write_ns: int


def writer_alive(path: Path, *, now: float | None = None) -> bool:
    """Whether the process writing ``path`` may still add to it (see the module doc)."""
    writer = parse_name(path.name)
    if writer is None:
        return False
    if writer.host != _hostname():
        try:
            modified = path.stat().st_mtime
        except OSError:
            return False
        return (time.time() if now is None else now) - modified < REMOTE_SILENCE
    return _pid_alive(writer.pid, writer.stamp)


def _pid_alive(pid: int, stamp: float) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return False
    started = _process_start(pid)
    # The writer names its file just after it starts; a process that started later holds a
    # recycled pid. Two seconds of slack for the whole-second stamp and clock rounding.
    return started is None or started <= stamp + 2.0


_BOOT_TIME: list[float] = []


def _process_start(pid: int) -> float | None:
    """Epoch seconds when ``pid`` started (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        if not _BOOT_TIME:
            with open("/proc/stat", "rb") as f:
                for line in f:
                    if line.startswith(b"btime "):
                        _BOOT_TIME.append(float(line.split()[1]))
                        break
        # Field 22 (starttime, in clock ticks since boot) counts from after the ")" closing
        # the command name, which may itself contain spaces.
        fields = stat[stat.rindex(b")") + 2 :].split()
        ticks = int(fields[19])
        return _BOOT_TIME[0] + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
