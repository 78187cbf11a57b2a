"""Decoded spans as plain objects, the shape the viewer works with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from exporters.reading.decode import decode_full
from exporters.reading.schema import Event, Span
from exporters.reading.values import (
    attribute_dict,
    kind_number,
    normalize_id,
    status_number,
)

__all__ = ["PENDING", "PENDING_PARENT", "EventRecord", "SpanRecord", "records_of"]

PENDING: Final = "graphtrace.pending"
# The started span's own parent, when the writer records it on the pending record (as Logfire's
# ``logfire.pending_parent_id`` does); without it an open span's place in the tree is inferred.
PENDING_PARENT: Final = "graphtrace.pending.parent_span_id"


@dataclass(slots=True)
class EventRecord:
    """A span event: an exception, a stall snapshot, anything else."""

    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class SpanRecord:
    """One span as read from a file, or one pending record (``pending`` True).

    For a pending record ``span_id`` is the id of the span that started (the record's own
    ``parentSpanId``), ``parent_id`` is that span's parent when the writer recorded it, and
    ``end_ns`` equals ``start_ns``.
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status: int = 0  # 0 unset, 1 ok, 2 error
    status_message: str = ""
    kind: int = 1
    events: list[EventRecord] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    pending: bool = False
    resource: dict[str, Any] = field(default_factory=dict)
    scope: dict[str, Any] = field(default_factory=dict)
    source: int = 0  # which input file it came from (an index file id)
    trace_state: str = ""
    flags: int = 0


def records_of(data: bytes, source: int = 0, *, trace_id: str | None = None) -> RecordBatch:
    """The span records of one document (only those of ``trace_id`` when given)."""
    decoded = decode_full(data)
    out: list[SpanRecord] = []
    bad = decoded.bad_spans
    reason = decoded.bad_reason
    for group in decoded.groups:
        resource = attribute_dict(group.resource.attributes) if group.resource else {}
        scope = _scope_dict(group)
        for span in group.spans:
            if trace_id is not None and span.traceId != trace_id:
                if normalize_id(span.traceId, 16) != trace_id:
                    continue
            record = _record(span, resource, scope, source)
            if record is None:
                bad += 1
                reason = reason or "a span without a valid traceId or spanId"
                continue
            out.append(record)
    return RecordBatch(out, decoded.error, bad, reason)


@dataclass(slots=True)
class RecordBatch:
    """The records of one document, and what could not be read (see :class:`Decoded`)."""

    records: list[SpanRecord]
    error: str | None
    bad_spans: int
    bad_reason: str


def _scope_dict(group: Any) -> dict[str, Any]:
    scope = group.scope
    if scope is None:
        return {}
    out: dict[str, Any] = {}
    if scope.name:
        out["name"] = scope.name
    if scope.version:
        out["version"] = scope.version
    if scope.attributes:
        out["attributes"] = attribute_dict(scope.attributes)
    return out


def _record(
    span: Span, resource: dict[str, Any], scope: dict[str, Any], source: int
) -> SpanRecord | None:
    trace_id = normalize_id(span.traceId, 16)
    span_id = normalize_id(span.spanId, 8)
    if trace_id is None or span_id is None:
        return None
    parent_id = normalize_id(span.parentSpanId, 8)
    attributes = attribute_dict(span.attributes)
    start = span.startTimeUnixNano or 0
    end = span.endTimeUnixNano or start
    pending = attributes.pop(PENDING, False) is True
    if pending:
        if parent_id is None:
            return None  # a pending record names the started span as its parent
        span_id = parent_id
        parent_id = normalize_id(attributes.pop(PENDING_PARENT, None), 8)
        end = start
    status = span.status
    events = span.events
    links = span.links
    # positional: this runs once per span read, and keyword calls cost more
    return SpanRecord(
        trace_id,
        span_id,
        parent_id,
        span.name or "",
        start,
        max(end, start),
        attributes,
        status_number(status.code) if status else 0,
        (status.message or "") if status else "",
        kind_number(span.kind),
        [_event(event) for event in events] if events else [],
        [
            {
                "trace_id": normalize_id(link.traceId, 16),
                "span_id": normalize_id(link.spanId, 8),
                "attributes": attribute_dict(link.attributes),
            }
            for link in links
        ]
        if links
        else [],
        pending,
        resource,
        scope,
        source,
        span.traceState or "",
        span.flags or 0,
    )


def _event(event: Event) -> EventRecord:
    return EventRecord(event.name or "", event.timeUnixNano or 0, attribute_dict(event.attributes))
