"""A trace directory (or a list of files) as the viewer sees it: runs, one run's tree, problems.

Opening a source brings its index up to date; everything after reads the index and, for one
run, only the documents that hold its spans.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from exporters.reading.assemble import INTERRUPTED, RUNNING, RunTrace, assemble
from exporters.reading.errors import AmbiguousRun, ReaderError, RunNotFound
from exporters.reading.index import IndexedFile, OpenSpan, RunRow, TraceIndex
from exporters.reading.lines import SkipTally, read_tail, split_documents
from exporters.reading.records import SpanRecord, records_of, tree_records
from exporters.reading.writers import writer_alive

__all__ = [
    "INDEX_PATH",
    "TRACE_PATTERNS",
    "OpenGate",
    "RunSummary",
    "TraceSource",
    "gc_paused",
]

INDEX_PATH: Final = Path(".index") / "index.sqlite"
TRACE_PATTERNS: Final = ("*.jsonl", "*.json")
STORED_STATUSES: Final = ("completed", "failed", "cancelled", "timed_out")
STATUSES: Final = (*STORED_STATUSES, RUNNING, INTERRUPTED)


@dataclass(slots=True)
class RunSummary:
    """One run as ``ls`` shows it, its status resolved against the writer's liveness."""

    row: RunRow
    status: str
    duration_ns: int
    waiting_gates: int

    @property
    def run_id(self) -> str:
        """The run id (the trace id for traces from other tools)."""
        return self.row.run_id

    @property
    def trace_id(self) -> str:
        """The trace id."""
        return self.row.trace_id

    @property
    def graph(self) -> str:
        """The graph's name, or the root span's name for traces from other tools."""
        return self.row.graph

    @property
    def start_ns(self) -> int:
        """When the run started (epoch ns)."""
        return self.row.start_ns


@dataclass(slots=True)
class OpenGate:
    """A gate whose start was recorded and whose end was not: what ``ls --waiting`` lists."""

    run: RunSummary
    span: OpenSpan
    attributes: dict[str, object]  # of its pending record: gate id, prompt, schema, socket
    alive: bool  # the writing process is alive, so the gate is really waiting


class TraceSource:
    """The runs in ``trace_dir``, or in ``files`` when any are given (then the dir is not read).

    The index of a trace dir is kept in ``DIR/.index/``; for files, or a dir that cannot be
    written, it is built in memory.
    """

    def __init__(
        self,
        trace_dir: Path,
        files: Sequence[Path] = (),
        *,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.trace_dir = trace_dir
        self.files = _unique_files(files)
        self.clock = clock
        if self.files:
            self.index = TraceIndex(None, None)
            self.where = ", ".join(str(f) for f in files)
        else:
            if not trace_dir.is_dir():
                raise ReaderError(
                    f"no trace directory {trace_dir}: run `graphtrace run ...` first, "
                    "or point at one with --trace-dir (or at files with --file)"
                )
            self.where = str(trace_dir)
            try:
                self.index = TraceIndex(trace_dir / INDEX_PATH, trace_dir)
            except (OSError, sqlite3.Error):
                self.index = TraceIndex(None, trace_dir)  # a read-only dir: index in memory
        with gc_paused():  # indexing allocates per span and frees almost nothing meanwhile
            self.index.update(self._paths())
        self._files = {f.id: f for f in self.index.files()}
        self._alive: dict[str, bool] = {}

    def _paths(self) -> list[Path]:
        if self.files:
            return list(self.files)
        found = {p for pattern in TRACE_PATTERNS for p in self.trace_dir.glob(pattern)}
        return sorted(p for p in found if p.is_file())

    def close(self) -> None:
        """Release the index."""
        self.index.close()

    def __enter__(self) -> TraceSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- liveness -------------------------------------------------------------------------

    def alive(self, file_id: int) -> bool:
        """Whether the process writing that input file is still alive."""
        file = self._files.get(file_id)
        if file is None or self.files:
            return False  # files given by hand are read as they are: nothing there runs on
        state = self._alive.get(file.writer)
        if state is None:
            state = self._alive[file.writer] = writer_alive(file.path)
        return state

    def last_write_ns(self, file_id: int) -> int:
        """The latest time recorded in any file of that file's writer."""
        file = self._files.get(file_id)
        if file is None:
            return 0
        return max(f.max_ns for f in self._files.values() if f.writer == file.writer)

    # -- runs -----------------------------------------------------------------------------

    def count(self) -> int:
        """How many runs (traces) there are."""
        return self.index.count()

    def runs(
        self, *, statuses: Iterable[str] | None = None, limit: int | None = None
    ) -> list[RunSummary]:
        """Runs, newest first; only those with one of ``statuses`` when given."""
        wanted = set(statuses) if statuses is not None else None
        if wanted is None:
            rows = self.index.newest()
        else:
            rows = self.index.newest(stored=sorted(wanted & set(STORED_STATUSES)), open_only=True)
        waiting = self._waiting()
        out: list[RunSummary] = []
        for row in rows:
            summary = self._summary(row, waiting)
            if wanted is not None and summary.status not in wanted:
                continue
            out.append(summary)
            if limit is not None and len(out) >= limit:
                break
        return out

    def _waiting(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for span in self.index.open_spans(gates_only=True):
            counts[span.trace_id] = counts.get(span.trace_id, 0) + 1
        return counts

    def _summary(self, row: RunRow, waiting: dict[str, int]) -> RunSummary:
        if row.stored_status is not None:
            return RunSummary(row, row.stored_status, max(0, row.end_ns - row.start_ns), 0)
        if row.root_open_file is not None:
            if self.alive(row.root_open_file):
                duration = max(0, self.clock() - row.start_ns)
                return RunSummary(row, RUNNING, duration, waiting.get(row.trace_id, 0))
            duration = max(0, self.last_write_ns(row.root_open_file) - row.start_ns)
            return RunSummary(row, INTERRUPTED, duration, 0)
        # No run span at all (part of a trace from another tool): judged by its spans.
        status = "failed" if row.errors else "completed"
        return RunSummary(row, status, max(0, row.end_ns - row.start_ns), 0)

    def resolve(self, ref: str) -> RunSummary:
        """The run named by ``ref``: a run id, a unique prefix of one or of a trace id, or
        ``last`` (the newest)."""
        ref = ref.strip()
        if not ref:
            raise RunNotFound("no run given: pass a run id, a prefix of one, or `last`")
        if ref == "last":
            for row in self.index.newest():
                return self._summary(row, self._waiting())
            raise RunNotFound(f"no runs in {self.where}")
        rows = self.index.lookup(ref)
        if not rows:
            raise RunNotFound(
                f"no run matches {ref!r} in {self.where} (`graphtrace ls` lists them)"
            )
        if len(rows) > 1:
            waiting = self._waiting()
            candidates = [self._summary(row, waiting) for row in rows]
            more = "" if len(rows) <= 10 else " (and more)"
            listing = "\n".join(
                f"  {c.run_id}  {c.graph}  {c.status}  trace {c.trace_id}" for c in candidates[:10]
            )
            raise AmbiguousRun(
                f"{ref!r} matches {len(rows) if len(rows) <= 10 else 'more than 10'} runs{more}; "
                f"give more of the id:\n{listing}",
                candidates[:10],
            )
        return self._summary(rows[0], self._waiting())

    # -- one run --------------------------------------------------------------------------

    def records(self, run: RunSummary) -> list[SpanRecord]:
        """Every record (pending ones too) of ``run``'s trace, in file order."""
        out: list[SpanRecord] = []
        for data, file_id in self._run_documents(run):
            out.extend(records_of(data, file_id, trace_id=run.trace_id).records)
        return out

    def _run_documents(self, run: RunSummary) -> Iterator[tuple[bytes, int]]:
        """The documents holding ``run``'s spans, each with its file id, in file order."""
        by_file: dict[int, list[tuple[int, int]]] = {}
        for file_id, offset, length in self.index.places(run.row.id):
            by_file.setdefault(file_id, []).append((offset, length))
        for file_id, places in sorted(by_file.items()):
            file = self._files.get(file_id)
            if file is None:
                continue
            for data in _documents(file, places):
                yield data, file_id

    def load(self, run: RunSummary) -> RunTrace:
        """The tree of ``run``."""
        with gc_paused():
            records = tree_records(self._run_documents(run), run.trace_id)
            if not records:
                raise ReaderError(
                    f"the spans of run {run.run_id} are gone from {self.where} "
                    "(files changed since they were indexed; try again)"
                )
            return assemble(
                records, now_ns=self.clock(), alive=self.alive, last_write_ns=self.last_write_ns
            )

    # -- problems -------------------------------------------------------------------------

    def skip_report(self) -> list[str]:
        """One line per file with unreadable lines or spans: how many, the first, and why."""
        out: list[str] = []
        for file in self._files.values():
            lines = SkipTally(file.skipped.count, file.skipped.first_line, file.skipped.reason)
            tail = self._dead_tail(file)
            if tail:
                lines.add(file.line, "truncated last line (no newline at the end, writer gone)")
            if lines.count:
                out.append(_skip_line(lines, "line", file.path))
            if file.bad_spans.count:
                out.append(_skip_line(file.bad_spans, "span", file.path))
        return out

    def _dead_tail(self, file: IndexedFile) -> bool:
        try:
            size = file.path.stat().st_size
        except OSError:
            return False
        if size <= file.offset or self.alive(file.id):
            return False
        return bool(read_tail(file.path, file.offset).strip())

    def open_gates(self) -> list[OpenGate]:
        """Gates with a start and no end, oldest first (``alive`` says whether they wait)."""
        out: list[OpenGate] = []
        waiting = self._waiting()
        for span in self.index.open_spans(gates_only=True):
            row = self.index.run_of_trace(span.trace_id)
            if row is None:
                continue
            attributes = self.index.open_attributes(span.trace_id, span.span_id)
            out.append(
                OpenGate(self._summary(row, waiting), span, attributes, self.alive(span.file))
            )
        return out


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector for the block (restored after, even on error).

    For blocks that build many objects and free few, as loading and showing a big run do: the
    collections their allocations trigger scan an ever larger heap and find nothing, which cost
    more than the reading itself (100,000 spans: over half the time of ``show``). Nothing is
    lost: a reference cycle made in the block is collected by a collection after it.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _skip_line(tally: SkipTally, what: str, path: Path) -> str:
    plural = what if tally.count == 1 else f"{what}s"
    first = f"first at line {tally.first_line}: {tally.reason}"
    return f"{tally.count} {plural} skipped in {path}: {first}"


def _documents(file: IndexedFile, places: list[tuple[int, int]]) -> Iterable[bytes]:
    if file.mode == "documents":
        wanted = {offset for offset, _ in places}
        for chunk in split_documents(file.path.read_bytes()).chunks:
            if chunk.offset in wanted:
                yield chunk.data
        return
    fd = os.open(file.path, os.O_RDONLY)
    try:
        for offset, length in sorted(places):
            yield os.pread(fd, length, offset)
    finally:
        os.close(fd)


def _unique_files(files: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    seen: set[Path] = set()
    for path in files:
        if not path.exists():
            raise ReaderError(f"no such file: {path}")
        if not path.is_file():
            raise ReaderError(f"not a file: {path} (pass a trace dir with --trace-dir)")
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            out.append(path)
    return out
