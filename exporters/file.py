"""Appends JSON lines to size-rotated files, one set of files per writing process.

Every :meth:`JsonlFileWriter.write_lines` call hands its whole lines to the OS in one ``write``
(per file), so a reader that opens the file sees them at once and a process killed with
``kill -9`` leaves only complete lines, except possibly a torn last one. There is no fsync: the
aim is visibility to readers and surviving the process, not surviving a power cut.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DEFAULT_MAX_BYTES", "JsonlFileWriter", "TraceDirError"]

DEFAULT_MAX_BYTES = 64 * 2**20

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class TraceDirError(OSError):
    """The trace directory cannot be created or written; message says which path and why.

    ``errno`` and ``filename`` are those of the underlying OS error.
    """

    def __init__(self, message: str, *, errno: int | None = None, filename: str | None = None):
        super().__init__(message)
        self.message = message
        self.errno = errno
        self.filename = filename

    def __str__(self) -> str:
        # OSError.__str__ would print "[Errno N] None: 'path'" once errno is set.
        return self.message


def _hostname() -> str:
    name = _UNSAFE_NAME_CHARS.sub("_", socket.gethostname().split(".")[0])
    return name or "host"


def _trace_dir_error(directory: Path, path: Path, action: str, error: OSError) -> TraceDirError:
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOTDIR, errno.EEXIST):
        # "Not a directory" alone does not say which component is the culprit.
        for ancestor in (path, *path.parents):
            if ancestor.exists() and not ancestor.is_dir():
                reason = f"{ancestor} is a file, not a directory"
                break
    where = f"{path}" if path == directory else f"{path} (in trace directory {directory})"
    return TraceDirError(
        f"cannot {action} {where}: {reason}", errno=error.errno, filename=str(path)
    )


class JsonlFileWriter:
    """Appends lines to ``DIR/traces-<UTC yyyymmddTHHMMSS>-<hostname>-<pid>-<seq:03d>.jsonl``.

    One file per writing process, rotated when the next write would take the current file past
    ``max_bytes`` (default 64 MiB); a line is never split across files, and a file holds more than
    ``max_bytes`` only when a single line is bigger than that. The timestamp is taken when the
    writer starts, so the files of one writer share a prefix and ``seq`` orders them. A file name
    that already exists (another writer in this process, or a recycled pid) is never reused.

    Thread-safe. Each :meth:`write_lines` call writes whole lines and hands them to the OS
    before it returns. Text is UTF-8; a lone surrogate, which UTF-8 cannot hold, is written as
    its ``\\udXXX`` escape, which inside a JSON string is the same character.

    After a ``fork``, the child writes to files of its own (its pid in the name).

    The directory (and its parents) and the first file are created at once, so a directory that
    cannot be used fails at configure time with :class:`TraceDirError`.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._paths: list[Path] = []
        self._fd = -1
        self._size = 0
        self._closed = False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _trace_dir_error(self.directory, self.directory, "create", error) from error
        self._start_process()
        # A fork while another thread holds the lock would leave the child's copy locked forever.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reinit_in_child(ref))

    def _start_process(self) -> None:
        self._pid = os.getpid()
        self._stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self._prefix = f"traces-{self._stamp}-{_hostname()}-{self._pid}-"
        self._seq = 0
        self._open_next()

    def _open_next(self) -> None:
        """Close the current file and open the next one; the caller holds the lock."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        while True:
            path = self.directory / f"{self._prefix}{self._seq:03d}.jsonl"
            self._seq += 1
            try:
                self._fd = os.open(path, flags, 0o644)
            except FileExistsError:
                continue
            except OSError as error:
                raise _trace_dir_error(self.directory, path, "create", error) from error
            break
        self._size = 0
        self._paths.append(path)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The file the next line goes to (the last file, once closed)."""
        return self._paths[-1]

    @property
    def paths(self) -> list[Path]:
        """Every file this writer created, oldest first."""
        return list(self._paths)

    def write_lines(self, lines: Sequence[str]) -> None:
        """Append ``lines`` (each without its newline) and hand them to the OS before returning.

        Raises ValueError if a line contains a newline (it would become two broken records) or
        the writer is closed, :class:`TraceDirError` if the next file cannot be created, and
        OSError if the OS refuses the write (for example a full disk).
        """
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8", "backslashreplace")
        if data.count(b"\n") != len(lines):
            raise ValueError("a line passed to write_lines contains a newline")
        self._append(data)

    def write_encoded(self, data: bytes | bytearray) -> None:
        """Append lines already joined and encoded as :meth:`write_lines` would (UTF-8, each
        ending in ``\\n``): what the encoder process sends, written without another pass."""
        if not data:
            return
        if not data.endswith(b"\n"):
            raise ValueError("encoded lines must end with a newline")
        self._append(data)

    def _append(self, data: bytes | bytearray) -> None:
        with self._lock:
            if self._closed:
                raise ValueError("write_lines on a closed JsonlFileWriter")
            if os.getpid() != self._pid:
                # A forked child: the parent's files stay the parent's.
                if self._fd >= 0:
                    os.close(self._fd)
                    self._fd = -1
                self._paths = []
                self._start_process()
            if self._fd < 0:
                self._open_next()  # an earlier rotation failed (directory removed?): retry
            if self._size + len(data) <= self.max_bytes:
                self._write(data)
                return
            self._write_rotating(data)

    def _write_rotating(self, data: bytes | bytearray) -> None:
        """Fill files up to max_bytes at line boundaries; the caller holds the lock."""
        start = 0
        end = len(data)
        while start < end:
            room = self.max_bytes - self._size
            if end - start <= room:
                self._write(data[start:])
                return
            # The last newline that still fits; the chunk ends just after it.
            cut = data.rfind(b"\n", start, start + room) + 1
            if cut > start:
                self._write(data[start:cut])
                start = cut
                self._open_next()
            elif self._size:
                self._open_next()  # the next line does not fit here but may in a fresh file
            else:
                # One line bigger than max_bytes: it gets a file of its own.
                cut = data.index(b"\n", start) + 1
                self._write(data[start:cut])
                start = cut
                if start < end:
                    self._open_next()

    def _write(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            # A regular file takes the whole buffer in one write unless the disk fills up or a
            # signal interrupts it; the loop finishes such a short write.
            written = os.write(self._fd, view)
            self._size += written
            view = view[written:]

    def close(self) -> None:
        """Close the current file; further writes raise ValueError. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._fd >= 0 and os.getpid() == self._pid:
                os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JsonlFileWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JsonlFileWriter({str(self.directory)!r}, file={self.path.name!r})"


def _reinit_in_child(ref: weakref.ref[JsonlFileWriter]) -> None:
    writer = ref()
    if writer is not None:
        writer._after_fork_in_child()
