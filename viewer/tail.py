"""What ``graphtrace tail`` knows: records in, events out, and the state the screen draws.

:class:`TailState` feeds each record to a :class:`~viewer.live.LiveModel` (the runs, their open
spans, where each run is) and turns it into one :class:`TailEvent`: a run starting or ending, a
span starting or ending, a gate starting to wait or being answered, a stall snapshot, the event
loop blocked or free again. It also keeps what the model does not: the gates waiting now, counts
of runs finished since tail started, and throughput.

Memory stays flat however long tail runs: a run that ended is kept for the screen among the last
:data:`KEEP_ENDED` only, and the ids of finished traces are remembered (to drop records that come
after their end) up to :data:`REMEMBER_FINISHED`.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from exporters.reading.records import SpanRecord
from graphtrace.control.discovery import WaitingGate
from viewer import keys
from viewer.details import exception_text
from viewer.live import LiveModel, LiveRun, LiveSpan
from viewer.tail_records import TailRecord

__all__ = [
    "KEEP_ENDED",
    "EventKind",
    "TailEvent",
    "TailState",
]

KEEP_ENDED: Final = 50
REMEMBER_FINISHED: Final = 20_000
_RATE_WINDOW_S: Final = 5.0

Record = SpanRecord | TailRecord  # as read by the index (a start), or followed live
_SNAPSHOT_NAMES: Final = frozenset((keys.STALL_SPAN_NAME, keys.LOOP_BLOCKED_SPAN_NAME))

EventKind = Literal[
    "run_start",
    "run_end",
    "span_start",
    "span_end",
    "gate_waiting",
    "gate_answered",
    "stall",
    "loop_blocked",
    "loop_unblocked",
]


# A Struct, made in C: one is made per record read. Nothing it holds refers back to it, so the
# cycle collector need not track it.
class TailEvent(msgspec.Struct, gc=False):
    """One thing that happened, as ``tail`` reports it (a line, a JSON object, a screen row)."""

    kind: EventKind
    time_ns: int  # when it happened (epoch ns, the writer's clock)
    trace_id: str
    run_id: str  # the run's id; the trace id for traces from other tools; "" for none
    graph: str
    name: str = ""  # the span's name (of the stalled span for a stall)
    span_id: str = ""
    status: str = ""  # spans: ok | error | interrupted; runs: completed | failed | …
    duration_ns: int | None = None
    error: str = ""
    attributes: Mapping[str, Any] = msgspec.field(default_factory=dict)
    gate: WaitingGate | None = None
    text: str = ""  # a stall's call graph, a blocked loop's stack


@dataclass(slots=True)
class _Rates:
    """Spans and runs finished, sampled once a second, for per-second rates."""

    samples: deque[tuple[float, int, int]] = field(default_factory=lambda: deque(maxlen=16))


class TailState:
    """Runs and gates as the records tell them; see the module doc.

    ``trace_id`` keeps only that trace (``tail --run``).
    """

    def __init__(self, *, trace_id: str | None = None, keep_ended: int = KEEP_ENDED) -> None:
        self.model = LiveModel()
        self.trace_id = trace_id
        self.keep_ended = keep_ended
        self.gates: dict[tuple[str, str], WaitingGate] = {}
        self.done = 0
        self.failed = 0
        self.runs_ended = 0
        self._ended: deque[str] = deque()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._run_path: dict[str, Path] = {}
        self._rates = _Rates()

    # -- records in, events out -------------------------------------------------------------

    def apply(self, record: Record, path: Path | None = None) -> TailEvent | None:
        """Take one record (read from ``path``); the event it makes, if any."""
        trace_id = record.trace_id
        if self.trace_id is not None and trace_id != self.trace_id:
            return None
        if trace_id in self._finished:
            return None  # a record after its run's end (a duplicate, a late writer): old news
        if record.name in _SNAPSHOT_NAMES:
            if record.name == keys.LOOP_BLOCKED_SPAN_NAME:
                return self._loop(record)
            if not record.pending:
                return self._stall(record)
        run = self.model.runs.get(trace_id)
        span = run.open.get(record.span_id) if run is not None else None
        if record.pending:
            return None if span is not None else self._started(record, path)
        if run is None or span is None:
            # its start was not seen (a tool that writes no pending records, or a span that
            # started before tail did): it starts and ends here, reported once, as an end
            run, span = self._start(record)
        return self._ended_event(record, run, span)

    def _start(self, record: Record) -> tuple[LiveRun, LiveSpan]:
        span = self.model.started(
            record.trace_id,
            record.span_id,
            record.parent_id,
            record.name,
            record.start_ns,
            record.attributes,
        )
        return self.model.runs[record.trace_id], span

    def _started(self, record: Record, path: Path | None) -> TailEvent:
        model = self.model
        trace_id = record.trace_id
        attributes = record.attributes
        span = model.started(
            trace_id, record.span_id, record.parent_id, record.name, record.start_ns, attributes
        )
        run = model.runs[trace_id]
        gate = None
        if span.span_id == run.root_span_id:
            kind: EventKind = "run_start"
            if path is not None:
                self._run_path[trace_id] = path  # whose writer's liveness decides its fate
        elif keys.GATE_ID in attributes:
            kind = "gate_waiting"
            gate = _gate(run, span)
            self.gates[(trace_id, span.span_id)] = gate
        else:
            kind = "span_start"
        # positional, and not through _event: this runs for every span that starts
        return TailEvent(
            kind,
            record.start_ns,
            trace_id,
            run.run_id,
            run.graph,
            span.name,
            span.span_id,
            "",
            None,
            "",
            span.attributes,
            gate,
        )

    def _ended_event(self, record: Record, run: LiveRun, span: LiveSpan) -> TailEvent:
        if record.status == 2:
            error = exception_text(record.events, record.status_message)
            status = "error"
        else:
            error = ""
            status = "ok"
        self.model.ended(
            run.trace_id,
            span.span_id,
            record.end_ns,
            status=status,
            status_message=error,
            attributes=record.attributes,
        )
        if span.span_id == run.root_span_id:
            return self._run_ended(run, span)
        kind: EventKind = "span_end"
        # (no gate waiting anywhere, the common case, spares the key and the look-up)
        gate = self.gates.pop((run.trace_id, span.span_id), None) if self.gates else None
        if gate is not None or keys.GATE_ID in record.attributes:
            kind = "gate_answered"
            error = ""
        end = span.end_ns or 0
        return TailEvent(
            kind,
            end,
            run.trace_id,
            run.run_id,
            run.graph,
            span.name,
            span.span_id,
            span.status,
            max(0, end - span.start_ns),
            error,
            span.attributes,
            gate,
        )

    def _run_ended(self, run: LiveRun, root: LiveSpan) -> TailEvent:
        if run.status == "completed":
            self.done += 1
        else:
            self.failed += 1
        self.runs_ended += 1
        for key in [k for k in self.gates if k[0] == run.trace_id]:
            del self.gates[key]  # a run that ended waits for nothing
        self._run_path.pop(run.trace_id, None)
        self._forget(run.trace_id)
        return _run_end(run, root)

    def _forget(self, trace_id: str) -> None:
        """Keep an ended run for the screen among the last few; remember that it finished."""
        self._finished[trace_id] = None
        if len(self._finished) > REMEMBER_FINISHED:
            self._finished.popitem(last=False)
        self._ended.append(trace_id)
        while len(self._ended) > self.keep_ended:
            self.model.runs.pop(self._ended.popleft(), None)

    def _event(
        self,
        kind: EventKind,
        run: LiveRun,
        span: LiveSpan,
        at_ns: int,
        *,
        gate: WaitingGate | None = None,
        error: str = "",
    ) -> TailEvent:
        end = span.end_ns
        return TailEvent(  # positional: one per record, and keywords cost more
            kind,
            at_ns,
            run.trace_id,
            run.run_id,
            run.graph,
            span.name,
            span.span_id,
            span.status if end is not None else "",
            max(0, end - span.start_ns) if end is not None else None,
            error,
            span.attributes,
            gate,
        )

    def _stall(self, record: Record) -> TailEvent:
        """A stall snapshot: about the span it hangs under, not a span of the run's own."""
        attributes = record.attributes
        run = self.model.runs.get(record.trace_id)
        stalled = run.open.get(record.parent_id or "") if run is not None else None
        name = str(attributes.get(keys.STALLED_SPAN) or (stalled.name if stalled else ""))
        return TailEvent(
            "stall",
            record.start_ns,
            record.trace_id,
            run.run_id if run is not None else record.trace_id,
            run.graph if run is not None else "",
            name=name,
            span_id=record.parent_id or "",
            attributes=attributes,
            text=str(attributes.get(keys.STALL_CALL_GRAPH) or ""),
        )

    def _loop(self, record: Record) -> TailEvent:
        """The event loop blocked (its pending record) or free again (the final span)."""
        attributes = record.attributes
        run = self.model.runs.get(record.trace_id)
        pending = record.pending
        return TailEvent(
            "loop_blocked" if pending else "loop_unblocked",
            record.start_ns if pending else record.end_ns,
            record.trace_id,
            run.run_id if run is not None else "",
            run.graph if run is not None else "",
            name=str(attributes.get(keys.LOOP_HELD_BY) or ""),
            span_id=record.span_id,
            duration_ns=None if pending else max(0, record.end_ns - record.start_ns),
            attributes=attributes,
            text=str(attributes.get(keys.LOOP_STACK) or "") if pending else "",
        )

    # -- starting from what is already there ------------------------------------------------

    def seed(self, records: Iterable[SpanRecord], path_of: Callable[[int], Path | None]) -> None:
        """Take in what the files held before tail started, quietly (see :meth:`snapshot`)."""
        for record in records:
            self.apply(record, path_of(record.source))
        self.done = self.failed = self.runs_ended = 0  # counts are of what tail saw happen

    def snapshot(self) -> list[TailEvent]:
        """The state as events, for a start from the end: each open run's start and its open
        spans (gates waiting among them), oldest first; a run that has ended, its end."""
        out: list[TailEvent] = []
        for run in sorted(self.model.runs.values(), key=lambda r: r.start_ns):
            if run.end_ns is not None:
                root = next((s for s in run.recent if s.span_id == run.root_span_id), None)
                if root is not None:
                    out.append(_run_end(run, root))
                continue
            for span in sorted(run.open.values(), key=lambda s: s.start_ns):
                if span.span_id == run.root_span_id:
                    out.append(self._event("run_start", run, span, span.start_ns))
                    continue
                gate = self.gates.get((run.trace_id, span.span_id))
                kind: EventKind = "gate_waiting" if gate is not None else "span_start"
                out.append(self._event(kind, run, span, span.start_ns, gate=gate))
        return out

    # -- runs whose process is gone ---------------------------------------------------------

    def open_run_paths(self) -> dict[str, Path]:
        """trace id -> the file of each open run whose writer can be asked if it lives."""
        return dict(self._run_path)

    def interrupt(self, trace_id: str, now_ns: int) -> TailEvent | None:
        """The process that ran ``trace_id`` is gone: its run ends as interrupted."""
        run = self.model.runs.get(trace_id)
        self._run_path.pop(trace_id, None)
        if run is None or run.end_ns is not None or run.root_span_id is None:
            return None
        root = run.open.get(run.root_span_id)
        if root is None:
            return None
        last = max((s.start_ns for s in run.open.values()), default=run.start_ns)
        for span in list(run.open.values()):
            if span.span_id != run.root_span_id:
                self.model.ended(trace_id, span.span_id, last, status="interrupted")
        self.model.ended(trace_id, root.span_id, max(last, now_ns), status="interrupted")
        return self._run_ended(run, root)

    # -- what the screen shows --------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Runs running and waiting now; done and failed since tail started."""
        waiting = {trace_id for trace_id, _ in self.gates}
        active = sum(1 for run in self.model.runs.values() if run.end_ns is None)
        return {
            "running": max(0, active - len(waiting)),
            "waiting": len(waiting),
            "done": self.done,
            "failed": self.failed,
        }

    def waiting_gates(self) -> list[WaitingGate]:
        """The gates waiting now, oldest first."""
        return sorted(self.gates.values(), key=lambda g: g.started_ns)

    def forget_gate_of(self, gate: WaitingGate) -> None:
        """Stop offering ``gate``: answered from here, or its process says it waits no more.
        (Its end, when it is read, is still reported.)"""
        for key, known in list(self.gates.items()):
            if known is gate or (
                known.trace_id == gate.trace_id
                and known.gate_id == gate.gate_id
                and known.started_ns == gate.started_ns
            ):
                del self.gates[key]

    def rates(self, now: float) -> tuple[float, float]:
        """(spans/s, runs/s) over the last few seconds; ``now`` is a monotonic reading."""
        samples = self._rates.samples
        if not samples or now - samples[-1][0] >= 1.0:
            samples.append((now, self.model.spans_ended, self.runs_ended))
        while len(samples) > 2 and now - samples[0][0] > _RATE_WINDOW_S:
            samples.popleft()
        first, last = samples[0], samples[-1]
        elapsed = last[0] - first[0]
        if elapsed <= 0:
            return 0.0, 0.0
        return (last[1] - first[1]) / elapsed, (last[2] - first[2]) / elapsed

    def ended(self, trace_id: str) -> bool:
        """Whether that run has ended."""
        return trace_id in self._finished


def _gate(run: LiveRun, span: LiveSpan) -> WaitingGate:
    return WaitingGate.from_pending(
        run.run_id, run.trace_id, run.graph, span.name, span.start_ns, span.attributes
    )


def _run_end(run: LiveRun, root: LiveSpan) -> TailEvent:
    end = run.end_ns if run.end_ns is not None else root.start_ns
    return TailEvent(
        "run_end",
        end,
        run.trace_id,
        run.run_id,
        run.graph,
        name=root.name,
        span_id=root.span_id,
        status=run.status,
        duration_ns=max(0, end - run.start_ns),
        error=run.error,
        attributes=root.attributes,
    )
