"""``graphtrace show --json``: the run as a tree of spans (DESIGN.md "CLI")."""

from __future__ import annotations

from typing import Any

from exporters.reading.assemble import RunTrace, TreeSpan
from exporters.reading.source import gc_paused
from viewer.critical import critical_path
from viewer.format import ms

__all__ = ["tree_json"]


def tree_json(trace: RunTrace) -> dict[str, Any]:
    """The root span as ``{name, span_id, start_ms, duration_ms, status, attributes, children,
    ...}``, children nested the same way, in start order; nothing folded.

    ``start_ms`` is the offset from the run's start. Beyond the contract's keys each span has
    ``parent_span_id``, ``status_message``, ``critical_path`` and ``events``.
    """
    with gc_paused():  # a dict or two per span, none of them garbage
        critical = critical_path(trace.root)
        origin = trace.root.start_ns
        made: dict[int, dict[str, Any]] = {}
        # Built without recursion: a trace from another tool may nest thousands deep.
        for span in trace.root.walk():
            made[id(span)] = _node(span, origin, id(span) in critical)
        for span in trace.root.walk():
            made[id(span)]["children"] = [made[id(child)] for child in span.children]
        return made[id(trace.root)]


def _node(span: TreeSpan, origin: int, critical: bool) -> dict[str, Any]:
    return {
        "name": span.name,
        "span_id": span.span_id or None,
        "parent_span_id": span.parent_id,
        "start_ms": ms(span.start_ns - origin),
        "duration_ms": ms(span.duration_ns),
        "status": span.status,
        "status_message": span.record.status_message,
        "critical_path": critical,
        "attributes": span.attributes,
        "events": [
            {"name": e.name, "time_ms": ms(e.time_ns - origin), "attributes": e.attributes}
            for e in span.events
        ],
        "children": [],
    }
