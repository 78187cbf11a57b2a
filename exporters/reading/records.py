"""Decoded spans as plain objects, the shape the viewer works with."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from exporters.reading.decode import decode_full
from exporters.reading.schema import Event, Span
from exporters.reading.values import (
    attribute_dict,
    hex_id,
    kind_number,
    normalize_id,
    status_number,
)

__all__ = ["PENDING", "PENDING_PARENT", "EventRecord", "SpanRecord", "records_of", "tree_records"]

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


def tree_records(documents: Iterable[tuple[bytes, int]], trace_id: str) -> list[SpanRecord]:
    """The records the tree of ``trace_id`` is built from, out of ``(document, source)`` pairs:
    every final record, and the pending record of each span that has no final one.

    A pending record whose span also ended says nothing its final record does not, and the tree
    leaves it out; in a finished run that is every other record, so those are never converted.
    The final records come in document order, then the pending ones kept, in document order.
    Unreadable documents and spans are skipped (:func:`records_of` reports them).
    """
    out: list[SpanRecord] = []
    ended: set[str] = set()  # span ids with a final record
    # The first pending record of each started span, by the span's id as written, unconverted
    # until it is known that no final record comes; it is written before its final one, which
    # usually drops it again soon, so few are held at a time.
    waiting: dict[str | None, tuple[Span, dict[str, Any], dict[str, Any], int]] = {}
    # Spans spelling the trace id as the index does need it normalised no further.
    normal = trace_id if normalize_id(trace_id, 16) == trace_id else None
    for data, source in documents:
        for group in decode_full(data).groups:
            resource: dict[str, Any] | None = None
            scope: dict[str, Any] = {}
            for span in group.spans:
                if span.traceId != trace_id and normalize_id(span.traceId, 16) != trace_id:
                    continue
                if resource is None:
                    resource = attribute_dict(group.resource.attributes) if group.resource else {}
                    scope = _scope_dict(group)
                if _is_pending(span):
                    if span.parentSpanId not in waiting:  # the started span's id
                        waiting[span.parentSpanId] = (span, resource, scope, source)
                    continue
                record = _record(span, resource, scope, source, normal)
                if record is not None:
                    out.append(record)
                    ended.add(record.span_id)
                    waiting.pop(span.spanId, None)
    for raw, (span, resource, scope, source) in waiting.items():
        if normalize_id(raw, 8) in ended:  # ended after all (spelt otherwise, or read first)
            continue
        record = _record(span, resource, scope, source, normal)
        if record is not None:
            out.append(record)
    return out


def _is_pending(span: Span) -> bool:
    """Whether :func:`_record` reads ``span`` as a pending record, without converting it."""
    pending = False
    for pair in span.attributes or ():
        if pair.key == PENDING:  # the last one counts, as in attribute_dict
            value = pair.value
            pending = value is not None and value.stringValue is None and value.boolValue is True
    return pending


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
    span: Span,
    resource: dict[str, Any],
    scope: dict[str, Any],
    source: int,
    trace_id: str | None = None,
) -> SpanRecord | None:
    """``span`` as a record; ``trace_id``, when given, is the normal form of its trace id."""
    if trace_id is None or span.traceId != trace_id:
        trace_id = normalize_id(span.traceId, 16)
    raw_id = span.spanId
    # A span's own id comes once, so the cache of repeated ids would only cost here.
    span_id = hex_id(raw_id, 8) if len(raw_id) == 16 else normalize_id(raw_id, 8)
    if trace_id is None or span_id is None:
        return None
    parent_id = normalize_id(span.parentSpanId, 8)
    attributes = attribute_dict(span.attributes)
    start = span.startTimeUnixNano or 0
    end = span.endTimeUnixNano or start
    pending = PENDING in attributes and attributes.pop(PENDING) is True
    if pending:
        if parent_id is None:
            return None  # a pending record names the started span as its parent
        span_id = parent_id
        parent_id = normalize_id(attributes.pop(PENDING_PARENT, None), 8)
        end = start
    status = span.status
    events = span.events
    links = span.links
    kind = span.kind
    # positional: this runs once per span read, and keyword calls cost more
    return SpanRecord(
        trace_id,
        span_id,
        parent_id,
        span.name or "",
        start,
        end if end > start else start,
        attributes,
        status_number(status.code) if status else 0,
        (status.message or "") if status else "",
        kind if type(kind) is int else kind_number(kind),
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
