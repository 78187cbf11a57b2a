"""Splitting trace files into JSON documents, with byte offsets and line numbers.

Two layouts: JSON lines (graphtrace's files, a collector's file exporter), read incrementally
from a byte offset, only complete lines (a torn last line waits until it is completed); and
documents spread over many lines (``json.dump(..., indent=2)``), read as a whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import msgspec

__all__ = [
    "BLOCK",
    "Chunk",
    "DocumentSplit",
    "LineReader",
    "Mode",
    "SkipTally",
    "read_tail",
    "sniff_mode",
    "split_documents",
]

Mode = Literal["lines", "documents"]

BLOCK: Final = 8 * 2**20  # bytes read at a time; a line longer than this is read in several
_DOCUMENT_LIMIT: Final = 512 * 2**20  # a pretty-printed file bigger than this is read as lines
_WHITESPACE: Final = b" \t\r\n"


@dataclass(slots=True)
class Chunk:
    """One JSON document of a file: where it is and its bytes."""

    offset: int  # byte offset in the file
    length: int  # bytes, without the newline
    line: int  # 1-based number of its first line
    data: bytes


@dataclass(slots=True)
class SkipTally:
    """Lines or spans left out of one file: how many, and the first one with its reason."""

    count: int = 0
    first_line: int = 0
    reason: str = ""

    def add(self, line: int, reason: str, count: int = 1) -> None:
        """Count ``count`` more; the first reason (the earliest line) is the one kept."""
        if not self.count or line < self.first_line:
            self.first_line = line
            self.reason = reason
        self.count += count

    def merge(self, other: SkipTally) -> None:
        """Add another tally of the same file."""
        if other.count:
            self.add(other.first_line, other.reason, other.count)


class LineReader:
    """The complete, non-blank lines of a file from byte ``offset`` (the start of line ``line``).

    Iterating yields :class:`Chunk` objects up to the file's last newline; an unterminated last
    line is not returned (see :func:`read_tail`). Afterwards ``end`` is the offset just after
    the last newline read and ``line`` the number of the line that starts there.
    """

    def __init__(self, path: Path, offset: int, line: int) -> None:
        self.path = path
        self.end = offset
        self.line = line

    def __iter__(self) -> Iterator[Chunk]:
        with open(self.path, "rb") as f:
            f.seek(self.end)
            pending = b""
            while True:
                block = f.read(BLOCK)
                if not block:
                    return
                data = pending + block if pending else block
                cut = data.rfind(b"\n") + 1
                if not cut:
                    pending = data  # a line longer than a block: read on
                    continue
                base = self.end
                start = 0
                while start < cut:
                    newline = data.index(b"\n", start)
                    if newline > start and data[start:newline].strip(_WHITESPACE):
                        yield Chunk(base + start, newline - start, self.line, data[start:newline])
                    self.line += 1
                    start = newline + 1
                    self.end = base + start
                pending = data[cut:]


def read_tail(path: Path, offset: int) -> bytes:
    """The bytes of ``path`` after ``offset`` (the caller's last complete line)."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read()


def sniff_mode(path: Path, size: int) -> Mode:
    """``documents`` for a pretty-printed file (its first line alone is not JSON but the file
    starts with a document spread over several lines), else ``lines``."""
    if size > _DOCUMENT_LIMIT:
        return "lines"
    with open(path, "rb") as f:
        head = f.read(min(size, 64 * 1024))
    stripped = head.lstrip(_WHITESPACE)
    if not stripped.startswith((b"{", b"[")):
        return "lines"
    newline = stripped.find(b"\n")
    if newline < 0:
        return "lines"  # one line (perhaps unterminated), or a first line longer than the sniff
    try:
        msgspec.json.decode(stripped[:newline])
    except (msgspec.DecodeError, UnicodeDecodeError):
        return "documents"
    return "lines"


@dataclass(slots=True)
class DocumentSplit:
    """The documents of a whole file read in ``documents`` mode, and what could not be read."""

    chunks: list[Chunk]
    skipped: SkipTally


def split_documents(data: bytes) -> DocumentSplit:
    """Consecutive JSON documents in ``data`` (pretty-printed or not), by byte offset.

    An unreadable stretch is skipped up to the next line that starts with ``{`` or ``[``, and
    counted once per stretch.
    """
    skipped = SkipTally()
    chunks: list[Chunk] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        skipped.add(data.count(b"\n", 0, exc.start) + 1, "invalid UTF-8")
        text = data.decode("utf-8", "replace")
    decoder = json.JSONDecoder()
    length = len(text)
    # A character position whose byte offset is known, so that each offset costs only the
    # encoding of the text since the previous one.
    anchor_char = anchor_byte = 0
    position = 0
    while True:
        while position < length and text[position] in " \t\r\n":
            position += 1
        if position >= length:
            break
        byte_start = anchor_byte + len(text[anchor_char:position].encode())
        anchor_char, anchor_byte = position, byte_start
        line = text.count("\n", 0, position) + 1
        try:
            _, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            skipped.add(line, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")
            position = _next_document(text, position)
            if position < 0:
                break
            continue
        raw = text[position:end].encode()
        chunks.append(Chunk(byte_start, len(raw), line, raw))
        anchor_char, anchor_byte = end, byte_start + len(raw)
        position = end
    return DocumentSplit(chunks, skipped)


def _next_document(text: str, position: int) -> int:
    """Where the next line starting with ``{`` or ``[`` begins after ``position``, or -1."""
    candidates = [i for i in (text.find("\n{", position), text.find("\n[", position)) if i >= 0]
    return min(candidates) + 1 if candidates else -1
