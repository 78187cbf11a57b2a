"""The reading half of ``tail``: from the trace files to events, live.

:func:`seed` takes what the directory holds when tail starts (through the trace index: the runs
open now, and the offset up to which each file was indexed, so that following begins exactly
there). :class:`Feed` then polls the :class:`~exporters.reading.follow.Follower`, decodes each
new document (:func:`~viewer.tail_records.tail_records`), feeds the records to the
:class:`~viewer.tail.TailState` and hands the events to a sink (lines, JSON, the screen). Every
:data:`SWEEP_S` it asks whether the processes of the open runs are alive; a run whose process is
gone ends as ``interrupted`` once its files have been read to their end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from exporters.reading.assemble import RUNNING
from exporters.reading.errors import ReaderError
from exporters.reading.follow import Followed, Follower, Start
from exporters.reading.lines import SkipTally
from exporters.reading.source import TraceSource
from exporters.reading.writers import parse_name, writer_alive
from viewer.tail import TailEvent, TailState
from viewer.tail_records import tail_records

__all__ = ["BUSY_POLL_S", "POLL_S", "Feed", "Seed", "seed"]

POLL_S: Final = 0.05  # the delay between polls when nothing is waiting to be read
# ... and after a poll that found something, when the caller wants it soon (line mode): a
# writer that is busy now will have more in a moment, and each line waits for the next poll
BUSY_POLL_S: Final = 0.01
SWEEP_S: Final = 2.0
_YIELD_EVERY: Final = 2000  # records between yields to the event loop (the prompt, the clock)

Sink = Callable[[list[TailEvent]], None]
Warn = Callable[[str], None]


@dataclass(slots=True)
class Seed:
    """Where following begins, and the trace of the run ``--run`` named (None: every run)."""

    start: Start
    trace_id: str | None
    run_id: str | None


def seed(
    trace_dir: Path, state: TailState, *, run: str | None, from_start: bool
) -> tuple[Seed, list[TailEvent]]:
    """Read what is there already: the runs open now (or ``run``) into ``state``, quietly.

    Returns where to begin following and the events that describe the state now (open runs and
    their open spans, waiting gates; the end of ``run`` if it has ended). With ``from_start``
    nothing is read ahead: everything will come as events. Raises :class:`ReaderError` for a
    run that cannot be named.
    """
    if not trace_dir.is_dir():
        if run is not None:
            raise ReaderError(f"no trace directory {trace_dir}: run `graphtrace run ...` first")
        return Seed("start", None, None), []  # files that appear later are read from the start
    with TraceSource(trace_dir) as source:
        summary = source.resolve(run) if run is not None else None
        trace_id = summary.trace_id if summary is not None else None
        state.trace_id = trace_id
        if from_start:
            return Seed("start", trace_id, summary.run_id if summary else None), []
        files = source.index.files()
        start = {f.path: (f.offset, f.line) for f in files}
        paths = {f.id: f.path for f in files}
        runs = [summary] if summary is not None else source.runs(statuses=[RUNNING])
        for each in runs:
            state.seed(source.records(each), paths.get)
    return Seed(start, trace_id, summary.run_id if summary else None), state.snapshot()


class Feed:
    """Polls the files, turns what was appended into events, hands them to ``sink``.

    It polls every ``poll_s``; after a poll that found new bytes, every ``busy_poll_s`` (by
    default ``poll_s`` too).
    """

    def __init__(
        self,
        follower: Follower,
        state: TailState,
        sink: Sink,
        *,
        warn: Warn,
        poll_s: float = POLL_S,
        busy_poll_s: float | None = None,
        sweep_s: float = SWEEP_S,
        alive: Callable[[Path], bool] = writer_alive,
    ) -> None:
        self.follower = follower
        self.state = state
        self.sink = sink
        self.warn = warn
        self.poll_s = poll_s
        self.busy_poll_s = poll_s if busy_poll_s is None else busy_poll_s
        self._found = False  # whether the last poll found new bytes
        self.sweep_s = sweep_s
        self.alive = alive
        self.skipped: dict[Path, SkipTally] = {}
        self._last_sweep = time.monotonic()
        self._dead: set[str] = set()  # writer keys found dead, their runs not ended yet
        self._writer_keys: dict[Path, str | None] = {}

    async def run(self) -> int:
        """Follow until cancelled, or until the run of ``tail --run`` ends: then its exit code
        (0 completed, 1 otherwise)."""
        followed = self.state.trace_id
        if followed is not None and self.state.ended(followed):
            return self._code(followed)
        while True:
            more = await self.step()
            if followed is not None and self.state.ended(followed):
                return self._code(followed)
            if not more:
                await asyncio.sleep(self.busy_poll_s if self._found else self.poll_s)

    async def step(self) -> bool:
        """One poll: read, decode, apply, hand on. True when more is there to read at once."""
        # with writers found dead, every file is looked at, so that what this poll does not
        # find of theirs was never written
        found = self.follower.poll(thorough=bool(self._dead))
        self._found = found.grew or bool(found.chunks)
        events: list[TailEvent] = []
        apply = self.state.apply
        trace_id = self.state.trace_id
        since_yield = 0
        for file, chunk in found.chunks:
            batch = tail_records(chunk.data, trace_id=trace_id)
            if batch.error is not None:
                self._skip(file.path, chunk.line, batch.error, "line")
            elif batch.bad_spans:
                self._skip(file.path, chunk.line, batch.bad_reason, "span", batch.bad_spans)
            path = file.path
            for record in batch.records:
                event = apply(record, path)
                if event is not None:
                    events.append(event)
            since_yield += len(batch.records)
            if since_yield >= _YIELD_EVERY:
                since_yield = 0
                self._hand_on(events)
                await asyncio.sleep(0)  # a long backlog must not freeze the prompt
        if self._dead and not found.more:
            events.extend(self._interrupt(found))
        now = time.monotonic()
        if now - self._last_sweep >= self.sweep_s:
            self._last_sweep = now
            self._dead = self._dead_writers()
        self._hand_on(events)
        return found.more

    def _hand_on(self, events: list[TailEvent]) -> None:
        if events:
            self.sink(list(events))
            events.clear()

    def _dead_writers(self) -> set[str]:
        """The writers of open runs whose process is gone (asked once per writer)."""
        verdicts: dict[str, bool] = {}
        for path in self.state.open_run_paths().values():
            key = self._writer_key(path)
            if key is None:
                continue  # another tool's file: nothing tells whether its writer lives
            if key not in verdicts:
                verdicts[key] = self.alive(path)
        return {key for key, alive in verdicts.items() if not alive}

    def _interrupt(self, found: Followed) -> list[TailEvent]:
        """End the open runs of writers found dead before this poll, once this poll found
        nothing more of theirs: a process that is gone may have left its last lines unread
        (tail behind a busy writer), and they must end its runs, not an ``interrupted``."""
        still_read = {self._writer_key(file.path) for file, _ in found.chunks}
        settled = self._dead - still_read
        self._dead -= settled
        out: list[TailEvent] = []
        now_ns = time.time_ns()
        for trace_id, path in self.state.open_run_paths().items():
            key = self._writer_key(path)
            if key is not None and key in settled:
                event = self.state.interrupt(trace_id, now_ns)
                if event is not None:
                    out.append(event)
        return out

    def _writer_key(self, path: Path) -> str | None:
        """The key of the writer of a graphtrace file (None for another tool's), remembered:
        asked for each open run at each sweep, and for each line read while a writer is gone."""
        try:
            return self._writer_keys[path]
        except KeyError:
            pass
        writer = parse_name(path.name)
        if len(self._writer_keys) >= 1024:
            self._writer_keys.clear()
        key = self._writer_keys[path] = writer.key if writer is not None else None
        return key

    def _skip(self, path: Path, line: int, reason: str, what: str, count: int = 1) -> None:
        """Count what could not be read; say so the first time for each file."""
        tally = self.skipped.get(path)
        if tally is None:
            tally = self.skipped[path] = SkipTally()
            self.warn(f"skipping unreadable {what}s in {path}: line {line}: {reason}")
        tally.add(line, reason, count)

    def _code(self, trace_id: str) -> int:
        run = self.state.model.runs.get(trace_id)
        return 0 if run is not None and run.status == "completed" else 1

    def report(self) -> list[str]:
        """One line per file with unreadable lines or spans, for the end."""
        return [
            f"{tally.count} unreadable line(s) or span(s) skipped in {path}: first at line "
            f"{tally.first_line}: {tally.reason}"
            for path, tally in self.skipped.items()
        ]
