"""The sidecar index: one row per run, where its spans are, and which spans are still open.

It lives in ``DIR/.index/index.sqlite`` and is never the source of truth: delete it at any time
and the next command rebuilds it. SQLite (from the standard library) because it gives
transactions, so a crash mid-update leaves the previous state; locking, so several viewers in one
directory take turns; and B-tree indexes, so ``ls --limit 50`` and a prefix lookup read a few
pages of a 100,000-run table instead of all of it.

Updates are incremental: each file's indexed byte offset is kept, and only complete lines after
it are read (a torn last line is read again once its newline arrives). A file that shrank, was
replaced or removed, or a pretty-printed file that changed, makes the index rebuild from scratch,
since the runs it contributed to cannot be taken apart again.

Counting: a span is counted once, at its pending record when there is one and else at its final
record; open spans (a pending record and no end yet) are kept in ``open_spans`` until their end
arrives, so an update only looks at the open spans of the writer whose file grew.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from exporters.reading.decode import decode_lean
from exporters.reading.lines import (
    Chunk,
    LineReader,
    SkipTally,
    read_tail,
    sniff_mode,
    split_documents,
)
from exporters.reading.records import PENDING, PENDING_PARENT
from exporters.reading.values import STATUS_ERROR, normalize_id, status_number
from exporters.reading.writers import parse_name

__all__ = ["SCHEMA_VERSION", "FileState", "IndexedFile", "OpenSpan", "RunRow", "TraceIndex"]

SCHEMA_VERSION: Final = 1
_FLUSH_BYTES: Final = 64 * 2**20  # parsed bytes between writes of aggregates to the database
_HEAD_BYTES: Final = 256  # the first bytes of a file, to notice it was replaced

RUN_ID: Final = "graphtrace.run.id"
GRAPH: Final = "graphtrace.graph"
RUN_STATUS: Final = "graphtrace.run.status"
NODE_STEP: Final = "graphtrace.node.step"
GATE_ID: Final = "graphtrace.gate.id"
GEN_AI_OPERATION: Final = "gen_ai.operation.name"
INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"

_ZERO_ID: Final = "0" * 16
_S_PENDING, _S_TOKENS, _S_STEP, _S_LLM, _S_RUN_ID, _S_GRAPH, _S_STATUS, _S_GATE, _S_PARENT = range(
    9
)
# The attributes the index reads, each to a slot of the branch in _index_span.
_WANTED: Final = {
    PENDING: _S_PENDING,
    INPUT_TOKENS: _S_TOKENS,
    OUTPUT_TOKENS: _S_TOKENS,
    NODE_STEP: _S_STEP,
    GEN_AI_OPERATION: _S_LLM,
    RUN_ID: _S_RUN_ID,
    GRAPH: _S_GRAPH,
    RUN_STATUS: _S_STATUS,
    GATE_ID: _S_GATE,
    PENDING_PARENT: _S_PARENT,
}

_SCHEMA: Final = """
CREATE TABLE files(
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, dev INTEGER, ino INTEGER, head BLOB,
    mode TEXT NOT NULL, offset INTEGER NOT NULL, line INTEGER NOT NULL, max_ns INTEGER NOT NULL,
    writer TEXT NOT NULL, skipped INTEGER NOT NULL, skip_line INTEGER, skip_reason TEXT,
    bad INTEGER NOT NULL, bad_line INTEGER, bad_reason TEXT);
CREATE TABLE runs(
    id INTEGER PRIMARY KEY, trace_id TEXT UNIQUE NOT NULL, run_id TEXT NOT NULL, graph TEXT,
    root_name TEXT, first_name TEXT, first_ns INTEGER, start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL, root_start INTEGER, root_end INTEGER, status TEXT,
    root_open_file INTEGER, errors INTEGER NOT NULL, steps INTEGER NOT NULL,
    llm_calls INTEGER NOT NULL, tokens INTEGER NOT NULL, spans INTEGER NOT NULL);
CREATE INDEX runs_start ON runs(start_ns);
CREATE INDEX runs_run_id ON runs(run_id);
CREATE TABLE places(run INTEGER NOT NULL, locations BLOB NOT NULL);
CREATE INDEX places_run ON places(run);
CREATE TABLE open_spans(
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, writer TEXT NOT NULL, file INTEGER NOT NULL,
    name TEXT NOT NULL, start_ns INTEGER NOT NULL, gate TEXT, llm INTEGER NOT NULL,
    attributes TEXT, PRIMARY KEY(trace_id, span_id));
CREATE INDEX open_writer ON open_spans(writer);
CREATE INDEX open_gate ON open_spans(gate) WHERE gate IS NOT NULL;
"""


@dataclass(slots=True)
class IndexedFile:
    """An input file as the index knows it."""

    id: int
    name: str  # relative to the trace dir, or the path as given
    path: Path
    mode: str
    offset: int  # bytes indexed (up to the end of the last complete line)
    line: int  # number of the line that starts at ``offset``
    max_ns: int  # latest timestamp seen in it
    writer: str  # files of one writing process share it
    skipped: SkipTally
    bad_spans: SkipTally


@dataclass(slots=True)
class FileState:
    """What a file holds beyond the indexed part, for the skip report."""

    file: IndexedFile
    tail: bytes  # unterminated bytes after the last complete line


@dataclass(slots=True)
class OpenSpan:
    """A span whose start was recorded and whose end was not (yet)."""

    trace_id: str
    span_id: str
    writer: str
    file: int
    name: str
    start_ns: int
    gate: str | None
    llm: bool
    attributes_json: str | None = None  # a gate's pending attributes (prompt, schema, socket)


@dataclass(slots=True)
class RunRow:
    """One run (one trace) as ``ls`` shows it. ``status`` is resolved by the caller."""

    id: int
    trace_id: str
    run_id: str
    graph: str
    name: str
    stored_status: str | None
    start_ns: int
    end_ns: int
    root_open_file: int | None
    errors: int
    steps: int
    llm_calls: int
    tokens: int
    spans: int


@dataclass(slots=True)
class _Agg:
    """What one update learnt about one trace, merged into its row at flush time."""

    trace_id: str
    run_id: str | None = None
    graph: str | None = None
    root_name: str | None = None
    first_name: str | None = None
    first_ns: int | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    root_start: int | None = None
    root_end: int | None = None
    status: str | None = None
    root_open_file: int | None = None
    root_closed: bool = False
    errors: int = 0
    steps: int = 0
    llm_calls: int = 0
    tokens: int = 0
    spans: int = 0
    places: array[int] = field(default_factory=lambda: array("q"))
    last_chunk: int = -1


class _Batch:
    """Aggregates and open-span changes not yet written to the database."""

    def __init__(self) -> None:
        self.aggs: dict[str, _Agg] = {}
        self.opened: dict[tuple[str, str], OpenSpan] = {}
        self.closed: list[tuple[str, str]] = []
        self.bytes = 0


class TraceIndex:
    """The index of a set of trace files. ``path=None`` keeps it in memory (``--file`` inputs,
    or a trace dir that cannot be written)."""

    def __init__(self, path: Path | None, root: Path | None) -> None:
        self.path = path
        self.root = root  # names of files are relative to it
        self._db = self._open()
        self._open_by_writer: dict[str, dict[tuple[str, str], OpenSpan]] = {}

    # -- opening --------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self.path is None:
            db = sqlite3.connect(":memory:", isolation_level=None)
            _create(db)
            return db
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = self._connect()
            version = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError:
            version = -1  # not a database (damaged)
        if version not in (0, SCHEMA_VERSION):
            with contextlib.suppress(Exception):
                db.close()
            self._delete_files()  # damaged, or another version's layout: start again
            db = self._connect()
        if version != SCHEMA_VERSION:
            with _immediate(db):
                # Checked again under the lock: another process may have just created it.
                if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                    _create(db)
        return db

    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _delete_files(self) -> None:
        assert self.path is not None
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def rebuild(self) -> None:
        """Forget everything indexed (the next :meth:`update` reads every file again)."""
        if self.path is None:
            self._db.close()
            self._db = self._open()
        else:
            with _immediate(self._db):
                for table in ("files", "runs", "places", "open_spans"):
                    self._db.execute(f"DELETE FROM {table}")
        self._open_by_writer.clear()

    # -- updating -------------------------------------------------------------------------

    def update(self, paths: Sequence[Path]) -> None:
        """Index what is new in ``paths`` (the current inputs, in writing order)."""
        known = {
            row[0]: row
            for row in self._db.execute("SELECT name, dev, ino, head, mode, offset FROM files")
        }
        names = [self._name(path) for path in paths]
        current = set(names)
        if any(name not in current for name in known):
            self.rebuild()  # a file went away: its runs must go too
            known = {}
        for path, name in zip(paths, names, strict=True):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # removed since it was listed: the next update rebuilds
            row = known.get(name)
            if row is not None and not self._unchanged_so_far(path, stat, row):
                self.rebuild()
                return self.update(paths)
            if row is not None and row[5] == stat.st_size:
                continue
            self._update_file(path, name, stat)
        return None

    def _name(self, path: Path) -> str:
        if self.root is not None:
            with contextlib.suppress(ValueError):
                return str(path.relative_to(self.root))
        return str(path)

    def _unchanged_so_far(self, path: Path, stat: os.stat_result, row: tuple[Any, ...]) -> bool:
        _, dev, ino, head, mode, offset = row
        if stat.st_size < offset or (dev, ino) != (stat.st_dev, stat.st_ino):
            return False
        if mode == "documents" and stat.st_size != offset:
            return False
        with open(path, "rb") as f:
            return f.read(len(head)) == head

    def _update_file(self, path: Path, name: str, stat: os.stat_result) -> None:
        with _immediate(self._db):
            # Another process may have closed open spans since we last looked.
            self._open_by_writer.clear()
            file = self._file_row(path, name, stat)
            if file.offset >= stat.st_size:
                return
            batch = _Batch()
            if file.mode == "documents":
                data = path.read_bytes()
                split = split_documents(data)
                file.skipped.merge(split.skipped)
                for chunk in split.chunks:
                    self._index_chunk(file, chunk, batch)
                file.offset = len(data)
                file.line = data.count(b"\n") + 1
            else:
                self._index_lines(path, file, batch, stat.st_size)
            self._flush(file, batch)

    def _index_lines(self, path: Path, file: IndexedFile, batch: _Batch, size: int) -> None:
        reader = LineReader(path, file.offset, file.line)
        for chunk in reader:
            self._index_chunk(file, chunk, batch)
            if batch.bytes >= _FLUSH_BYTES:
                # Bounded memory on a huge file: write what is known (same transaction).
                file.offset, file.line = chunk.offset + chunk.length + 1, chunk.line + 1
                self._flush(file, batch)
                batch.__init__()  # type: ignore[misc]
        file.offset, file.line = reader.end, reader.line
        if reader.end < size:
            tail = read_tail(path, reader.end)
            if tail.strip() and decode_lean(tail).error is None:
                # A complete document without its newline (a tool that does not end its last
                # line): read it now; a torn line never decodes and waits for its newline.
                self._index_chunk(file, Chunk(reader.end, len(tail), reader.line, tail), batch)
                file.offset, file.line = size, reader.line + 1

    def _file_row(self, path: Path, name: str, stat: os.stat_result) -> IndexedFile:
        row = self._db.execute(
            "SELECT id, mode, offset, line, max_ns, writer, skipped, skip_line, skip_reason, bad, "
            "bad_line, bad_reason FROM files WHERE name = ?",
            (name,),
        ).fetchone()
        if row is not None:
            return IndexedFile(
                row[0], name, path, row[1], row[2], row[3], row[4], row[5],
                SkipTally(row[6], row[7] or 0, row[8] or ""),
                SkipTally(row[9], row[10] or 0, row[11] or ""),
            )  # fmt: skip
        writer = parse_name(path.name)
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
        mode = sniff_mode(path, stat.st_size)
        cursor = self._db.execute(
            "INSERT INTO files(name, dev, ino, head, mode, offset, line, max_ns, writer, skipped, "
            "bad) VALUES (?, ?, ?, ?, ?, 0, 1, 0, ?, 0, 0)",
            (name, stat.st_dev, stat.st_ino, head, mode, writer.key if writer else name),
        )
        assert cursor.lastrowid is not None
        return IndexedFile(
            cursor.lastrowid, name, path, mode, 0, 1, 0, writer.key if writer else name,
            SkipTally(), SkipTally(),
        )  # fmt: skip

    def _index_chunk(self, file: IndexedFile, chunk: Chunk, batch: _Batch) -> None:
        decoded = decode_lean(chunk.data)
        batch.bytes += chunk.length
        if decoded.error is not None:
            file.skipped.add(chunk.line, decoded.error)
            return
        bad = decoded.bad_spans
        bad_reason = decoded.bad_reason
        aggs = batch.aggs
        max_ns = file.max_ns
        for group in decoded.groups:
            for span in group.spans:
                # The hot loop of the index build: ids are taken as they are when they look
                # like graphtrace's (lowercase hex of the right length) and normalised else.
                trace_id = span.traceId
                if len(trace_id) != 32 or not trace_id.islower():
                    trace_id = normalize_id(trace_id, 16) or ""
                span_id = span.spanId
                if len(span_id) != 16 or not span_id.islower():
                    span_id = normalize_id(span_id, 8) or ""
                if not trace_id or not span_id:
                    bad += 1
                    bad_reason = bad_reason or "a span without a valid traceId or spanId"
                    continue
                agg = aggs.get(trace_id)
                if agg is None:
                    agg = aggs[trace_id] = _Agg(trace_id)
                if agg.last_chunk != chunk.offset:
                    agg.places.extend((file.id, chunk.offset, chunk.length))
                    agg.last_chunk = chunk.offset
                start = span.startTimeUnixNano or 0
                end = span.endTimeUnixNano or start
                if end > max_ns:
                    max_ns = end
                self._index_span(file, batch, agg, span, span_id, start, end)
        file.max_ns = max_ns
        if bad:
            file.bad_spans.add(chunk.line, bad_reason or "unreadable span", bad)

    def _index_span(
        self, file: IndexedFile, batch: _Batch, agg: _Agg, span: Any, span_id: str, start: int,
        end: int,
    ) -> None:  # fmt: skip
        pending = False
        run_id = graph = run_status = gate = pending_parent = None
        step = tokens = 0
        llm = False
        for pair in span.attributes or ():
            slot = _WANTED.get(pair.key)
            if slot is None or pair.value is None:
                continue
            value = pair.value
            if slot == _S_PENDING:
                pending = value.boolValue is True
            elif slot == _S_TOKENS:
                tokens += value.intValue or 0
            elif slot == _S_STEP:
                step = value.intValue or 0
            elif slot == _S_LLM:
                llm = True
            elif slot == _S_RUN_ID:
                run_id = value.stringValue
            elif slot == _S_GRAPH:
                graph = value.stringValue
            elif slot == _S_STATUS:
                run_status = value.stringValue
            elif slot == _S_GATE:
                gate = value.stringValue
            else:
                pending_parent = value.stringValue
        name = span.name or ""
        if run_id and agg.run_id is None:
            agg.run_id = run_id
        if graph and agg.graph is None:
            agg.graph = graph
        if agg.start_ns is None or start < agg.start_ns:
            agg.start_ns = start
            agg.first_name = name
            agg.first_ns = start
        parent = span.parentSpanId
        if parent and (len(parent) != 16 or not parent.islower()):
            parent = normalize_id(parent, 8)
        if pending:
            if not parent:
                return
            key = (agg.trace_id, parent)
            batch.opened[key] = OpenSpan(
                agg.trace_id, parent, file.writer, file.id, name, start, gate, llm,
                _scalar_json(span.attributes) if gate else None,
            )  # fmt: skip
            self._count(agg, step, llm)
            # The run span is the one that carries the run id; a writer that records the
            # started span's parent says so with PENDING_PARENT ("" for a root).
            if (run_id and pending_parent is None) or pending_parent == "":
                if not agg.root_closed:
                    agg.root_open_file = file.id
                    agg.root_start = start
                    agg.root_name = name
            return
        key = (agg.trace_id, span_id)
        if batch.opened.pop(key, None) is None:
            if self._writer_open(file.writer).pop(key, None) is None:
                self._count(agg, step, llm)
            else:
                batch.closed.append(key)
        if agg.end_ns is None or end > agg.end_ns:
            agg.end_ns = end
        agg.tokens += tokens
        status = span.status
        failed = status is not None and status_number(status.code) == STATUS_ERROR
        if failed:
            agg.errors += 1
        if not parent or parent == _ZERO_ID:
            agg.root_closed = True
            agg.root_open_file = None
            agg.root_name = name
            agg.root_start = start
            agg.root_end = end
            agg.status = run_status or ("failed" if failed else "completed")

    @staticmethod
    def _count(agg: _Agg, step: int, llm: bool) -> None:
        agg.spans += 1
        if llm:
            agg.llm_calls += 1
        if step > agg.steps:
            agg.steps = step

    def _writer_open(self, writer: str) -> dict[tuple[str, str], OpenSpan]:
        spans = self._open_by_writer.get(writer)
        if spans is None:
            spans = self._open_by_writer[writer] = {
                (row[0], row[1]): OpenSpan(
                    row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7])
                )
                for row in self._db.execute(
                    "SELECT trace_id, span_id, writer, file, name, start_ns, gate, llm "
                    "FROM open_spans WHERE writer = ?",
                    (writer,),
                )
            }
        return spans

    def _flush(self, file: IndexedFile, batch: _Batch) -> None:
        db = self._db
        if batch.aggs:
            self._merge_runs(batch.aggs)
        if batch.closed:
            db.executemany(
                "DELETE FROM open_spans WHERE trace_id = ? AND span_id = ?", batch.closed
            )
        if batch.opened:
            db.executemany(
                "INSERT OR REPLACE INTO open_spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        s.trace_id,
                        s.span_id,
                        s.writer,
                        s.file,
                        s.name,
                        s.start_ns,
                        s.gate,
                        int(s.llm),
                        s.attributes_json,
                    )
                    for s in batch.opened.values()
                ],
            )
            self._writer_open(file.writer).update(batch.opened)
        db.execute(
            "UPDATE files SET offset = ?, line = ?, max_ns = ?, skipped = ?, skip_line = ?, "
            "skip_reason = ?, bad = ?, bad_line = ?, bad_reason = ? WHERE id = ?",
            (
                file.offset, file.line, file.max_ns,
                file.skipped.count, file.skipped.first_line, file.skipped.reason,
                file.bad_spans.count, file.bad_spans.first_line, file.bad_spans.reason,
                file.id,
            ),
        )  # fmt: skip

    def _merge_runs(self, aggs: dict[str, _Agg]) -> None:
        db = self._db
        existing: dict[str, tuple[Any, ...]] = {}
        trace_ids = list(aggs)
        for i in range(0, len(trace_ids), 500):
            part = trace_ids[i : i + 500]
            marks = ",".join("?" * len(part))
            for row in db.execute(f"SELECT * FROM runs WHERE trace_id IN ({marks})", part):
                existing[row[1]] = row
        next_id = (db.execute("SELECT max(id) FROM runs").fetchone()[0] or 0) + 1
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        places: list[tuple[int, bytes]] = []
        for trace_id, agg in aggs.items():
            row = existing.get(trace_id)
            if row is None:
                values = _new_row(next_id, agg)
                inserts.append(values)
                run = next_id
                next_id += 1
            else:
                values = _merged_row(row, agg)
                updates.append((*values[2:], row[0]))
                run = row[0]
            places.append((run, agg.places.tobytes()))
        if inserts:
            db.executemany(f"INSERT INTO runs VALUES ({','.join('?' * 18)})", inserts)
        if updates:
            db.executemany(
                "UPDATE runs SET run_id=?, graph=?, root_name=?, first_name=?, first_ns=?, "
                "start_ns=?, end_ns=?, root_start=?, root_end=?, status=?, root_open_file=?, "
                "errors=?, steps=?, llm_calls=?, tokens=?, spans=? WHERE id=?",
                updates,
            )
        db.executemany("INSERT INTO places VALUES (?, ?)", places)

    # -- reading --------------------------------------------------------------------------

    def files(self) -> list[IndexedFile]:
        """Every indexed file."""
        rows = self._db.execute(
            "SELECT id, name, mode, offset, line, max_ns, writer, skipped, skip_line, "
            "skip_reason, bad, bad_line, bad_reason FROM files ORDER BY id"
        ).fetchall()
        return [
            IndexedFile(
                r[0],
                r[1],
                self._path(r[1]),
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                SkipTally(r[7], r[8] or 0, r[9] or ""),
                SkipTally(r[10], r[11] or 0, r[12] or ""),
            )
            for r in rows
        ]

    def _path(self, name: str) -> Path:
        return self.root / name if self.root is not None else Path(name)

    def count(self) -> int:
        """How many runs there are."""
        return int(self._db.execute("SELECT count(*) FROM runs").fetchone()[0])

    def newest(
        self, *, stored: Iterable[str] | None = None, open_only: bool = False
    ) -> Iterator[RunRow]:
        """Runs, newest start first; ``stored`` keeps those with one of these final statuses,
        ``open_only`` those without a final status (running or interrupted)."""
        where = ""
        params: list[Any] = list(stored) if stored is not None else []
        marks = ",".join("?" * len(params))
        if stored is not None and open_only:
            where = f"WHERE status IN ({marks}) OR status IS NULL"
        elif stored is not None:
            where = f"WHERE status IN ({marks})"
        elif open_only:
            where = "WHERE status IS NULL"
        cursor = self._db.execute(f"{_RUN_SELECT} {where} ORDER BY start_ns DESC, id DESC", params)
        for row in cursor:
            yield _run_row(row)

    def lookup(self, ref: str, limit: int = 11) -> list[RunRow]:
        """Runs whose run id is ``ref``, else whose run id or trace id starts with it."""
        exact = self._db.execute(f"{_RUN_SELECT} WHERE run_id = ? ORDER BY start_ns DESC", (ref,))
        rows = [_run_row(row) for row in exact]
        if rows:
            return rows
        found: dict[int, RunRow] = {}
        for column, prefix in (("run_id", ref), ("trace_id", ref.lower())):
            cursor = self._db.execute(
                f"{_RUN_SELECT} WHERE {column} >= ? AND {column} < ? "
                "ORDER BY start_ns DESC LIMIT ?",
                (prefix, prefix + "\U0010ffff", limit),
            )
            for row in cursor:
                found.setdefault(row[0], _run_row(row))
        return sorted(found.values(), key=lambda r: -r.start_ns)[:limit]

    def places(self, run: int) -> list[tuple[int, int, int]]:
        """(file id, byte offset, length) of every document holding spans of ``run``."""
        out: set[tuple[int, int, int]] = set()
        for (blob,) in self._db.execute("SELECT locations FROM places WHERE run = ?", (run,)):
            values = array("q")
            values.frombytes(blob)
            out.update(zip(values[0::3], values[1::3], values[2::3], strict=True))
        return sorted(out)

    def open_spans(
        self, trace_id: str | None = None, *, gates_only: bool = False
    ) -> list[OpenSpan]:
        """Spans with a start and no end: of one trace, or everywhere; or only gates."""
        clauses = []
        params: list[Any] = []
        if trace_id is not None:
            clauses.append("trace_id = ?")
            params.append(trace_id)
        if gates_only:
            clauses.append("gate IS NOT NULL")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(
            "SELECT trace_id, span_id, writer, file, name, start_ns, gate, llm FROM open_spans "
            f"{where} ORDER BY start_ns",
            params,
        )
        return [OpenSpan(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7])) for r in rows]

    def open_attributes(self, trace_id: str, span_id: str) -> dict[str, Any]:
        """The attributes of an open gate's pending record (empty for other spans)."""
        row = self._db.execute(
            "SELECT attributes FROM open_spans WHERE trace_id = ? AND span_id = ?",
            (trace_id, span_id),
        ).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def run_of_trace(self, trace_id: str) -> RunRow | None:
        """The run row of a trace id."""
        row = self._db.execute(f"{_RUN_SELECT} WHERE trace_id = ?", (trace_id,)).fetchone()
        return None if row is None else _run_row(row)


_RUN_SELECT: Final = (
    "SELECT id, trace_id, run_id, graph, coalesce(root_name, first_name, ''), status, "
    "coalesce(root_start, start_ns), coalesce(root_end, end_ns), root_open_file, errors, steps, "
    "llm_calls, tokens, spans FROM runs"
)


def _run_row(row: tuple[Any, ...]) -> RunRow:
    name = row[4]
    return RunRow(
        id=row[0], trace_id=row[1], run_id=row[2], graph=row[3] or name, name=name,
        stored_status=row[5], start_ns=row[6], end_ns=row[7], root_open_file=row[8],
        errors=row[9], steps=row[10], llm_calls=row[11], tokens=row[12], spans=row[13],
    )  # fmt: skip


def _new_row(run: int, agg: _Agg) -> tuple[Any, ...]:
    return (
        run, agg.trace_id, agg.run_id or agg.trace_id, agg.graph, agg.root_name, agg.first_name,
        agg.first_ns, agg.start_ns or 0,
        agg.end_ns if agg.end_ns is not None else agg.start_ns or 0,
        agg.root_start, agg.root_end, agg.status, agg.root_open_file, agg.errors, agg.steps,
        agg.llm_calls, agg.tokens, agg.spans,
    )  # fmt: skip


def _merged_row(row: tuple[Any, ...], agg: _Agg) -> tuple[Any, ...]:
    (
        run, trace_id, run_id, graph, root_name, first_name, first_ns, start_ns, end_ns,
        root_start, root_end, status, root_open_file, errors, steps, llm_calls, tokens, spans,
    ) = row  # fmt: skip
    if agg.run_id and run_id == trace_id:
        run_id = agg.run_id
    earlier = agg.start_ns is not None and agg.start_ns < start_ns
    if agg.root_closed:
        root_name, root_start, root_end, status = (
            agg.root_name,
            agg.root_start,
            agg.root_end,
            agg.status,
        )
        root_open_file = None
    elif agg.root_open_file is not None and status is None:
        root_name, root_start, root_open_file = agg.root_name, agg.root_start, agg.root_open_file
    return (
        run, trace_id, run_id, graph or agg.graph, root_name,
        agg.first_name if earlier else first_name, agg.first_ns if earlier else first_ns,
        agg.start_ns if earlier else start_ns,
        max(end_ns, agg.end_ns if agg.end_ns is not None else end_ns),
        root_start, root_end, status, root_open_file, errors + agg.errors, max(steps, agg.steps),
        llm_calls + agg.llm_calls, tokens + agg.tokens, spans + agg.spans,
    )  # fmt: skip


def _scalar_json(pairs: Any) -> str:
    values: dict[str, Any] = {}
    for pair in pairs or ():
        value = pair.value
        if pair.key == PENDING or value is None:
            continue
        for item in (value.stringValue, value.boolValue, value.intValue, value.doubleValue):
            if item is not None:
                values[pair.key] = item
                break
    return json.dumps(values, allow_nan=False, default=str)


def _create(db: sqlite3.Connection) -> None:
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextlib.contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction taken at once, so two updaters never index the same bytes."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
