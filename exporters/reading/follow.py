"""Following a trace directory live: the complete lines appended to its files, as they come.

What ``graphtrace tail`` reads. Each file is known by its device and inode, not its name, and
keeps its own offset (the end of its last complete line), so:

- several writers append to files of their own and each file is read on its own;
- a torn last line (a writer caught mid-``write``, or one that writes in pieces) is held back,
  its bytes kept, until its newline arrives; nothing is decoded twice or half;
- a new file (another writer starts, graphtrace rotates to ``...-001.jsonl``) is read from its
  start as soon as a scan of the directory sees it;
- a file renamed away (``logrotate``'s create mode) is read to its end through the descriptor
  still open on it, and the new file at the old name from its start; a file truncated in place
  (``copytruncate``) is read again from its start.

Files are read in the order they were first seen, and a file with more than one poll reads
(:data:`READ_LIMIT`) holds back the files seen after it until it has been read to its end: a
writer's records are read in the order it wrote them, across its rotated files too.

Existing files are taken from their end (the end of their last complete line), or from a given
offset (the place up to which an index has read them, so nothing falls between), or from their
start. Pretty-printed documents (``json.dump(..., indent=2)``) are not live output: a new one is
read whole once, and an existing one is left where it is.

New files are seen at the first poll after they appear: each poll looks at the directory's
modification time (one ``stat``), and lists the directory when it has changed, and in any case
every :data:`SCAN_INTERVAL` (a file system whose times are coarse may not show every change).

Cost when nothing is written: one ``stat`` of the directory and one ``fstat`` per active file per
poll, and a directory listing every :data:`SCAN_INTERVAL`; files quiet for :data:`QUIET_AFTER`
seconds are closed and looked at (``stat``) once per :data:`QUIET_CHECK` only.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from exporters.reading.lines import Chunk, SkipTally, sniff_mode, split_documents

__all__ = [
    "FOLLOW_PATTERNS",
    "Followed",
    "FollowedFile",
    "Follower",
    "Start",
]

FOLLOW_PATTERNS: Final = ("*.jsonl", "*.json")
SCAN_INTERVAL: Final = 0.2  # seconds between directory listings (new and renamed files)
QUIET_AFTER: Final = 5.0  # a file that has not grown for this long is closed
QUIET_CHECK: Final = 1.0  # and looked at this often
READ_LIMIT: Final = 2**20  # bytes read from one file per poll: bounds memory on a backlog
_WHITESPACE: Final = b" \t\r\n"

# Where existing files begin: "end" or "start" for all of them, or (offset, line number) per path:
# the place an index has read each up to (a file it does not name was not there for the index,
# so it begins at its start).
Start = Mapping[Path, tuple[int, int]] | str


@dataclass(slots=True, eq=False)
class FollowedFile:
    """One file being followed: where it is, how far it has been read, and what is held back."""

    id: int  # 1, 2, 3… in the order the files were first seen
    path: Path  # its name when last seen (it may have been renamed or removed since)
    dev: int
    ino: int
    offset: int  # the end of the last complete line read
    line: int  # the number of the line that starts at ``offset``
    partial: bytes = b""  # bytes after ``offset`` with no newline yet
    fd: int = -1  # open while the file is active
    last_growth: float = 0.0  # monotonic
    last_check: float = 0.0
    gone: bool = False  # no longer in the directory under any name we follow
    documents: bool = False  # pretty-printed: read whole, once
    skipped: SkipTally = field(default_factory=SkipTally)

    @property
    def key(self) -> tuple[int, int]:
        return (self.dev, self.ino)


@dataclass(slots=True)
class Followed:
    """What one poll found: complete documents, each with the file it came from."""

    chunks: list[tuple[FollowedFile, Chunk]] = field(default_factory=list)
    new_files: list[FollowedFile] = field(default_factory=list)
    more: bool = False  # a file has more bytes than one poll reads: poll again at once
    grew: bool = False  # a file had new bytes (perhaps no complete line yet): a writer is busy


class Follower:
    """The complete lines appended to the trace files of ``directory`` since the last poll.

    ``start`` says where existing files begin (see :data:`Start`); files that appear later are
    always read from their start. Not thread-safe: one caller polls.
    """

    def __init__(
        self,
        directory: Path,
        *,
        start: Start = "end",
        patterns: tuple[str, ...] = FOLLOW_PATTERNS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.patterns = patterns
        self.clock = clock
        self.files: dict[tuple[int, int], FollowedFile] = {}
        self._next_id = 1
        self._last_scan = -1e9
        self._listed_mtime = -1  # the directory's mtime (ns) when it was last listed
        self._initial = start
        self._started = False

    # -- the directory ----------------------------------------------------------------------

    def _listing(self) -> dict[tuple[int, int], Path]:
        """(dev, ino) -> path of every followed-pattern file in the directory now."""
        out: dict[tuple[int, int], Path] = {}
        try:
            entries = list(os.scandir(self.directory))
        except (FileNotFoundError, NotADirectoryError):
            return out  # not there yet (or gone): nothing to follow until it is
        for entry in entries:
            if not any(fnmatch.fnmatchcase(entry.name, p) for p in self.patterns):
                continue
            try:
                info = entry.stat()  # follows links, like open() does
            except OSError:
                continue  # removed since it was listed
            if not _is_regular(info.st_mode):
                continue
            out[(info.st_dev, info.st_ino)] = Path(entry.path)
        return out

    def _mtime(self) -> int:
        try:
            return os.stat(self.directory).st_mtime_ns
        except OSError:
            return -1  # not there (yet): the scan interval looks again

    def _scan(self, now: float, found: Followed) -> None:
        self._last_scan = now
        # taken before the listing: a file that appears while it is made changes it again
        self._listed_mtime = self._mtime()
        listing = self._listing()
        for key, path in sorted(listing.items(), key=lambda item: item[1].name):
            known = self.files.get(key)
            if known is not None:
                known.path = path  # renamed within the patterns: same file, same offset
                known.gone = False
                continue
            file = self._add(key, path, now)
            if file is not None:
                found.new_files.append(file)
        for key, file in list(self.files.items()):
            if key not in listing:
                file.gone = True
                if file.fd < 0:
                    del self.files[key]  # nothing open on it: it cannot be read any more

    def _add(self, key: tuple[int, int], path: Path, now: float) -> FollowedFile | None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if (info.st_dev, info.st_ino) != key:
                os.close(fd)
                return None  # replaced between the listing and the open: the next scan sees it
            offset, line, documents = self._begin(path, fd, info.st_size)
        except OSError:
            os.close(fd)
            return None
        file = FollowedFile(self._next_id, path, key[0], key[1], offset, line, fd=fd)
        file.documents = documents
        file.last_growth = file.last_check = now
        self._next_id += 1
        self.files[key] = file
        return file

    def _begin(self, path: Path, fd: int, size: int) -> tuple[int, int, bool]:
        """(offset, line number, pretty-printed?) where a file begins for us."""
        initial = self._initial
        if self._started or initial == "start":
            # a file that appears later, or every file with "start": all of it
            return 0, 1, bool(size) and sniff_mode(path, size) == "documents"
        if isinstance(initial, Mapping):
            given = initial.get(path)
            if given is None:
                # not read by the index, so written since: all of it is new
                return 0, 1, bool(size) and sniff_mode(path, size) == "documents"
            if 0 <= given[0] <= size:
                return given[0], given[1], False
        end = _last_line_end(fd, size)
        if size and end == 0 and sniff_mode(path, size) == "documents":
            return size, 1, False  # an existing pretty-printed document: nothing more will come
        return end, _count_lines(fd, end) + 1, False

    # -- polling ----------------------------------------------------------------------------

    def poll(self, *, thorough: bool = False) -> Followed:
        """Read what was appended since the last poll (the first poll also lists the files).

        ``thorough`` lists the directory and looks at every file now, quiet ones too: what is
        not found then was not written before the call.
        """
        now = self.clock()
        found = Followed()
        if (
            thorough
            or not self._started
            or now - self._last_scan >= SCAN_INTERVAL
            or self._mtime() != self._listed_mtime
        ):
            self._scan(now, found)
            self._started = True
        for file in list(self.files.values()):  # in the order they were first seen
            if found.more:
                # a file was read only in part (a backlog): the files seen after it wait for the
                # next poll, which comes at once, so that a writer's next file after a rotation
                # never comes before the rest of the one it filled
                break
            if file.fd < 0:
                if not thorough and now - file.last_check < QUIET_CHECK:
                    continue
                file.last_check = now
                if not self._reopen(file):
                    continue
            self._read(file, now, found)
        return found

    def _reopen(self, file: FollowedFile) -> bool:
        """Open a quiet file again if it has grown (or shrunk) since it was closed."""
        try:
            info = os.stat(file.path)
        except OSError:
            return False
        if (info.st_dev, info.st_ino) != file.key:
            return False  # another file has its name now: the scan takes that one
        if info.st_size == file.offset + len(file.partial):
            return False
        try:
            file.fd = os.open(file.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return False
        return True

    def _read(self, file: FollowedFile, now: float, found: Followed) -> None:
        try:
            size = os.fstat(file.fd).st_size
        except OSError:
            self._close(file)
            return
        if file.documents:
            self._read_documents(file, size, found)
            return
        have = file.offset + len(file.partial)
        if size < have:
            # truncated in place (copytruncate): what is there now is new
            file.offset, file.line, file.partial = 0, 1, b""
            have = 0
        if size == have:
            # a file renamed away may still get the lines its writer had in hand: it is read
            # until it has been quiet as long as any other
            if now - file.last_growth >= QUIET_AFTER:
                file.last_check = now
                self._close(file)
            return
        file.last_growth = now
        found.grew = True
        want = min(size - have, READ_LIMIT)
        try:
            data = os.pread(file.fd, want, have)
        except OSError:
            self._close(file)
            return
        if len(data) < size - have:
            found.more = True
        if file.partial:
            data = file.partial + data
        cut = data.rfind(b"\n") + 1
        if not cut:
            file.partial = data  # no newline yet: keep the bytes, wait for the rest
            return
        base = file.offset
        start = 0
        line = file.line
        chunks = found.chunks
        while start < cut:
            newline = data.index(b"\n", start)
            if newline > start:
                text = data[start:newline]  # one copy: lines may be long (a writer's batch)
                if text.strip(_WHITESPACE):
                    chunks.append((file, Chunk(base + start, newline - start, line, text)))
            line += 1
            start = newline + 1
        file.offset = base + cut
        file.line = line
        file.partial = data[cut:]

    def _read_documents(self, file: FollowedFile, size: int, found: Followed) -> None:
        try:
            data = os.pread(file.fd, size, 0)
        except OSError:
            self._close(file)
            return
        split = split_documents(data)
        file.skipped.merge(split.skipped)
        found.chunks.extend((file, chunk) for chunk in split.chunks)
        file.offset, file.line = len(data), data.count(b"\n") + 1
        file.documents = False
        self._close(file)  # a document file is not appended to: once is enough

    def _close(self, file: FollowedFile) -> None:
        if file.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(file.fd)
            file.fd = -1
        if file.gone:
            self.files.pop(file.key, None)

    def close(self) -> None:
        """Close every file."""
        for file in list(self.files.values()):
            self._close(file)
        self.files.clear()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def _count_lines(fd: int, end: int) -> int:
    """Newlines before ``end`` (so the line numbers of what follows are the file's own)."""
    count = 0
    position = 0
    while position < end:
        data = os.pread(fd, min(8 * 2**20, end - position), position)
        if not data:
            break
        count += data.count(b"\n")
        position += len(data)
    return count


def _last_line_end(fd: int, size: int) -> int:
    """The offset just after the last newline of the file (0 when it has none)."""
    position = size
    block = 64 * 1024
    while position > 0:
        start = max(0, position - block)
        data = os.pread(fd, position - start, start)
        newline = data.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0
