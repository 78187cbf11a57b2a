"""The records of one trace folded into a tree of spans, open spans included.

A span with a final record is finished (``ok`` or ``error``). A span with only its pending record
is open: ``running`` while the process that writes its file is alive, else ``interrupted``, with
the time it had run up to the last thing that process wrote. An open span under a finished run
cannot still be running, so it is interrupted where the run ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Final

from exporters.reading.records import EventRecord, SpanRecord
from exporters.reading.values import STATUS_ERROR

__all__ = ["RunTrace", "TreeSpan", "assemble", "run_status_of"]

RUNNING: Final = "running"
INTERRUPTED: Final = "interrupted"
RUN_ID: Final = "graphtrace.run.id"
GRAPH: Final = "graphtrace.graph"
RUN_STATUS: Final = "graphtrace.run.status"
_START_ORDER: Final = attrgetter("start_ns", "name")  # siblings' order in the tree


class TreeSpan:
    """A span in the tree of its run.

    ``span_id``, ``name``, ``start_ns`` and ``attributes`` are the record's, copied: the viewer
    reads them for every span many times over (sorting, the critical path, counts).
    """

    __slots__ = (
        "attributes",
        "children",
        "end_ns",
        "name",
        "parent_id",
        "record",
        "span_id",
        "start_ns",
        "status",
    )

    record: SpanRecord  # the final record, or the pending one of an open span
    status: str  # ok | error | running | interrupted
    end_ns: int  # for an open span: now (running) or the writer's last write (interrupted)
    parent_id: str | None
    children: list[TreeSpan]
    span_id: str  # lowercase hex
    name: str
    start_ns: int  # epoch ns
    attributes: dict[str, Any]  # the pending marker left out

    def __init__(
        self,
        record: SpanRecord,
        status: str,
        end_ns: int,
        parent_id: str | None,
        children: list[TreeSpan] | None = None,
    ) -> None:
        self.record = record
        self.status = status
        self.end_ns = end_ns
        self.parent_id = parent_id
        self.children = [] if children is None else children
        self.span_id = record.span_id
        self.name = record.name
        self.start_ns = record.start_ns
        self.attributes = record.attributes

    def __repr__(self) -> str:
        return (
            f"TreeSpan(name={self.name!r}, span_id={self.span_id!r}, status={self.status!r}, "
            f"children={len(self.children)})"
        )

    @property
    def duration_ns(self) -> int:
        """How long it ran (so far, for an open span)."""
        return max(0, self.end_ns - self.start_ns)

    @property
    def events(self) -> list[EventRecord]:
        """Its events."""
        return self.record.events

    @property
    def ended(self) -> bool:
        """Whether its end was recorded."""
        return self.status not in (RUNNING, INTERRUPTED)

    def walk(self) -> Iterable[TreeSpan]:
        """This span and all below it, depth first, without recursion."""
        stack = [self]
        while stack:
            span = stack.pop()
            yield span
            stack.extend(reversed(span.children))


@dataclass(slots=True)
class RunTrace:
    """One run: its spans as a tree and what ``ls`` shows of it."""

    trace_id: str
    run_id: str
    graph: str
    status: str
    root: TreeSpan  # the run span, or a stand-in holding several top-level spans
    spans: list[TreeSpan]  # every real span

    @property
    def start_ns(self) -> int:
        """When the run started."""
        return self.root.start_ns

    @property
    def duration_ns(self) -> int:
        """How long it ran (so far)."""
        return self.root.duration_ns


def assemble(
    records: Iterable[SpanRecord],
    *,
    now_ns: int,
    alive: Callable[[int], bool],
    last_write_ns: Callable[[int], int],
) -> RunTrace:
    """Build the tree of one trace's records.

    ``alive(source)`` says whether the writer of an input file is alive, ``last_write_ns(source)``
    the latest time it recorded.
    """
    spans: dict[str, TreeSpan] = {}  # the finished ones first, the first record of each
    pendings: dict[str, SpanRecord] = {}
    for record in records:
        span_id = record.span_id
        if record.pending:
            if span_id not in pendings:
                pendings[span_id] = record
        elif span_id not in spans:
            status = "error" if record.status == STATUS_ERROR else "ok"
            spans[span_id] = TreeSpan(record, status, record.end_ns, record.parent_id)
    if not spans and not pendings:
        raise ValueError("no spans to assemble")
    open_spans: list[TreeSpan] = []
    for span_id, record in pendings.items():
        if span_id in spans:
            continue
        if alive(record.source):
            span = TreeSpan(record, RUNNING, max(now_ns, record.start_ns), record.parent_id)
        else:
            end = max(record.start_ns, last_write_ns(record.source))
            span = TreeSpan(record, INTERRUPTED, end, record.parent_id)
        spans[span_id] = span
        open_spans.append(span)
    _place_open_spans(open_spans)
    roots = _link(spans)
    root = roots[0] if len(roots) == 1 else _stand_in(roots)
    if root.ended and root.record.span_id in spans:
        for span in open_spans:  # nothing runs on after its run has ended
            span.status = INTERRUPTED
            span.end_ns = max(span.start_ns, min(span.end_ns, root.end_ns))
    trace_id = root.record.trace_id
    attributes = _run_attributes(spans.values())
    return RunTrace(
        trace_id=trace_id,
        run_id=str(attributes.get(RUN_ID) or trace_id),
        graph=str(attributes.get(GRAPH) or root.name),
        status=run_status_of(root, spans.values()),
        root=root,
        spans=list(spans.values()),
    )


def run_status_of(root: TreeSpan, spans: Iterable[TreeSpan]) -> str:
    """completed / failed / cancelled / timed_out from the run span, else running / interrupted."""
    if root.status in (RUNNING, INTERRUPTED):
        return root.status
    if root.ended and root.record.span_id:
        status = root.attributes.get(RUN_STATUS)
        if isinstance(status, str) and status:
            return status
        return "failed" if root.status == "error" else "completed"
    states = {span.status for span in spans}
    for state in (RUNNING, INTERRUPTED, "error"):
        if state in states:
            return "failed" if state == "error" else state
    return "completed"


def _rank(span: TreeSpan) -> int:
    """How high a span sits in a graphtrace run: run 0, node 1, the rest 2."""
    if RUN_ID in span.attributes:
        return 0
    return 1 if span.name.startswith("node ") else 2


def _place_open_spans(open_spans: list[TreeSpan]) -> None:
    """Give open spans whose parent was not recorded the most plausible one.

    A pending record names the span that started but not that span's parent (unless the
    writer added it). The parent is taken to be the latest-started open span of a higher rank
    (run > node > dep, chat, gate) that started no later; the run span has none.
    """
    ordered = sorted(open_spans, key=lambda s: s.start_ns)
    for span in ordered:
        if span.parent_id is not None or span.record.attributes.get(RUN_ID):
            continue
        rank = _rank(span)
        best: TreeSpan | None = None
        for other in ordered:
            if other.start_ns > span.start_ns:
                break
            if other is not span and _rank(other) < rank:
                best = other
        if best is not None:
            span.parent_id = best.span_id


def _link(spans: dict[str, TreeSpan]) -> list[TreeSpan]:
    roots: list[TreeSpan] = []
    orphans: list[TreeSpan] = []
    for span in spans.values():
        parent = spans.get(span.parent_id) if span.parent_id else None
        if parent is not None:
            parent.children.append(span)
        elif span.parent_id:
            orphans.append(span)  # its parent is in no file we read
        else:
            roots.append(span)
    if len(roots) == 1:
        roots[0].children.extend(orphans)
    else:
        roots.extend(orphans)
    for span in spans.values():
        if len(span.children) > 1:
            span.children.sort(key=_START_ORDER)
    roots.sort(key=_START_ORDER)
    return roots


def _stand_in(roots: list[TreeSpan]) -> TreeSpan:
    """A root without a record of its own, over several top-level spans."""
    first = roots[0].record
    record = SpanRecord(
        trace_id=first.trace_id,
        span_id="",
        parent_id=None,
        name=f"trace {first.trace_id}",
        start_ns=min(r.start_ns for r in roots),
        end_ns=max(r.end_ns for r in roots),
        attributes={},
    )
    statuses = {r.status for r in roots}
    status = next((s for s in (RUNNING, INTERRUPTED, "error") if s in statuses), "ok")
    return TreeSpan(record, status, record.end_ns, None, list(roots))


def _run_attributes(spans: Iterable[TreeSpan]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for span in spans:
        attributes = span.attributes
        if RUN_ID in attributes:
            out.setdefault(RUN_ID, attributes[RUN_ID])
            out.setdefault(GRAPH, attributes.get(GRAPH))
    return out
