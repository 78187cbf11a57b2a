"""The live view: a model of runs and their open spans, fed span by span, and its Rich rendering.

The model knows nothing of time sources or files: ``replay`` feeds it recorded spans on a
scaled clock, ``tail`` can feed it records as they are appended. Rendering is a pure function of
the model and a "now", so the same frame comes out for the same input (and tests can check it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from exporters.reading.records import SpanRecord
from viewer import keys
from viewer.format import duration
from viewer.summary import STATUS_STYLE

__all__ = [
    "LiveModel",
    "LiveRun",
    "LiveSpan",
    "event_line",
    "render_live",
    "runs_table",
    "status_bar",
]

_RECENT: Final = 6  # finished spans kept per run for the view
_MAX_OPEN_SHOWN: Final = 12


@dataclass(slots=True)
class LiveSpan:
    """A span the view knows about."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    attributes: dict[str, Any]
    end_ns: int | None = None
    status: str = "running"  # running | ok | error | interrupted
    status_message: str = ""


@dataclass(slots=True)
class LiveRun:
    """One run in the view: its open spans, the last few that finished, and where it is."""

    trace_id: str
    run_id: str
    graph: str
    start_ns: int
    status: str = "running"
    end_ns: int | None = None
    open: dict[str, LiveSpan] = field(default_factory=dict)
    recent: deque[LiveSpan] = field(default_factory=lambda: deque(maxlen=_RECENT))
    node: str = ""
    error: str = ""
    spans_done: int = 0
    root_span_id: str | None = None


class LiveModel:
    """Runs keyed by trace id, updated by :meth:`started` and :meth:`ended` (or :meth:`apply`)."""

    def __init__(self) -> None:
        self.runs: dict[str, LiveRun] = {}
        self.spans_ended = 0

    def _run(self, trace_id: str, start_ns: int) -> LiveRun:
        run = self.runs.get(trace_id)
        if run is None:
            run = self.runs[trace_id] = LiveRun(trace_id, trace_id, "", start_ns)
        return run

    def started(
        self,
        trace_id: str,
        span_id: str,
        parent_id: str | None,
        name: str,
        start_ns: int,
        attributes: dict[str, Any],
    ) -> LiveSpan:
        """A span started."""
        run = self._run(trace_id, start_ns)
        span = LiveSpan(trace_id, span_id, parent_id, name, start_ns, attributes)
        if keys.RUN_ID in attributes or (parent_id is None and run.root_span_id is None):
            run.root_span_id = span_id
            run.run_id = str(attributes.get(keys.RUN_ID) or trace_id)
            run.graph = str(attributes.get(keys.GRAPH) or name)
            run.start_ns = start_ns
        if name.startswith("node "):
            run.node = name[5:]
        run.open[span_id] = span
        return span

    def ended(
        self,
        trace_id: str,
        span_id: str,
        end_ns: int,
        *,
        status: str = "ok",
        status_message: str = "",
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """A span ended (``status`` ok, error or interrupted)."""
        run = self.runs.get(trace_id)
        if run is None:
            return
        span = run.open.pop(span_id, None)
        if span is None:
            return
        span.end_ns = end_ns
        span.status = status
        span.status_message = status_message
        if attributes:
            span.attributes = attributes
        run.recent.append(span)
        run.spans_done += 1
        self.spans_ended += 1
        if status == "error" and not run.error:
            run.error = f"{span.name}: {status_message}" if status_message else span.name
        if span_id == run.root_span_id:
            run.end_ns = end_ns
            if status == "interrupted":
                run.status = "interrupted"
            else:
                recorded = span.attributes.get(keys.RUN_STATUS)
                run.status = (
                    str(recorded) if recorded else ("failed" if status == "error" else "completed")
                )

    def apply(self, record: SpanRecord) -> None:
        """Feed one record as read from a file: a pending record starts, a final one ends."""
        run = self.runs.get(record.trace_id)
        known = run is not None and record.span_id in run.open
        if record.pending:
            if not known:
                self.started(
                    record.trace_id, record.span_id, record.parent_id, record.name,
                    record.start_ns, record.attributes,
                )  # fmt: skip
            return
        if not known:
            self.started(
                record.trace_id, record.span_id, record.parent_id, record.name,
                record.start_ns, record.attributes,
            )  # fmt: skip
        status = "error" if record.status == 2 else "ok"
        self.ended(
            record.trace_id,
            record.span_id,
            record.end_ns,
            status=status,
            status_message=record.status_message,
            attributes=record.attributes,
        )

    def counts(self) -> dict[str, int]:
        """How many runs are running, waiting at a gate, done and failed."""
        out = {"running": 0, "waiting": 0, "done": 0, "failed": 0}
        for run in self.runs.values():
            if run.end_ns is None and run.status == "running":
                waiting = any(keys.GATE_ID in s.attributes for s in run.open.values())
                out["waiting" if waiting else "running"] += 1
            elif run.status == "completed":
                out["done"] += 1
            else:
                out["failed"] += 1
        return out


def render_live(
    model: LiveModel, now_ns: int, *, max_runs: int = 20, rate: float | None = None
) -> RenderableType:
    """Active runs first (newest first), each with its open spans and elapsed times, then the
    runs that ended most recently, and a bottom bar with the counts (and spans/s when given)."""
    table, hidden = runs_table(model, now_ns, max_runs=max_runs)
    bar = status_bar(model.counts(), rate=rate)
    if hidden > 0:
        bar.append(f" · {hidden} more runs not shown", style="dim")
    return Group(table, bar)


def runs_table(model: LiveModel, now_ns: int, *, max_runs: int = 20) -> tuple[Table, int]:
    """The runs of :func:`render_live` without the bar, and how many did not fit."""
    active = [r for r in model.runs.values() if r.end_ns is None]
    ended = [r for r in model.runs.values() if r.end_ns is not None]
    active.sort(key=lambda r: r.start_ns, reverse=True)
    ended.sort(key=lambda r: r.end_ns or 0, reverse=True)
    shown = (active + ended)[:max_runs]
    table = Table(box=None, pad_edge=False, show_header=False, show_edge=False)
    table.add_column("what", no_wrap=True, overflow="ellipsis", max_width=60)
    table.add_column("elapsed", justify="right", no_wrap=True)
    table.add_column("note", overflow="fold", ratio=1)
    for run in shown:
        _run_rows(table, run, now_ns)
    return table, len(model.runs) - len(shown)


def status_bar(counts: dict[str, int], *, rate: float | None = None) -> Text:
    """``running N · waiting N · done N · failed N`` (and spans/s when given)."""
    bar = Text(
        f"running {counts['running']} · waiting {counts['waiting']} · done {counts['done']} · "
        f"failed {counts['failed']}",
        style="bold",
    )
    if rate is not None:
        bar.append(f" · {rate:,.0f} spans/s", style="dim")
    return bar


def _run_rows(table: Table, run: LiveRun, now_ns: int) -> None:
    end = run.end_ns if run.end_ns is not None else now_ns
    style = STATUS_STYLE.get(run.status, "")
    head = Text()
    head.append(f"{run.run_id} ", style="bold")
    head.append(run.graph)
    note = Text(run.status, style=style)
    if run.node and run.end_ns is None:
        note.append(f" · at {run.node}")
    if run.error:
        note.append(f" · {run.error}", style="red")
    table.add_row(head, duration(max(0, end - run.start_ns)), note)
    open_spans = sorted(
        (s for s in run.open.values() if s.span_id != run.root_span_id), key=lambda s: s.start_ns
    )
    for span in open_spans[:_MAX_OPEN_SHOWN]:
        prompt = span.attributes.get(keys.GATE_PROMPT) if keys.GATE_ID in span.attributes else None
        table.add_row(
            Text(f"  ▸ {span.name}", style="cyan"),
            duration(max(0, now_ns - span.start_ns)),
            Text(f"waiting: {prompt}", style="yellow") if prompt else "",
        )
    if len(open_spans) > _MAX_OPEN_SHOWN:
        table.add_row(Text(f"  … {len(open_spans) - _MAX_OPEN_SHOWN} more open"), "", "")
    if run.end_ns is None:
        for span in list(run.recent)[-3:]:
            table.add_row(
                Text(f"  ✓ {span.name}", style="dim"),
                duration(max(0, (span.end_ns or span.start_ns) - span.start_ns)),
                Text(span.status, style=STATUS_STYLE.get(span.status, "dim")),
            )


def event_line(span: LiveSpan, origin_ns: int, *, started: bool) -> str:
    """One plain line per event (when the output is not a terminal)."""
    at = f"+{duration(max(0, (span.start_ns if started else span.end_ns or 0) - origin_ns)):>10}"
    if started:
        return f"{at}  start  {span.name}"
    took = duration(max(0, (span.end_ns or span.start_ns) - span.start_ns))
    tail = f"  {span.status_message}" if span.status_message else ""
    return f"{at}  end    {span.name}  {took}  {span.status}{tail}"
