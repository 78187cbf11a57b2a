"""The records ``tail`` reads: one document to the fields tail uses, in one pass.

:func:`~exporters.reading.records.records_of` builds a full :class:`SpanRecord` per span
(resource, scope, links, kind, flags, four containers of its own), which the index and ``show``
need and tail does not: tail reads every record of every writer live, tens of thousands a
second, and that work was a good part of its CPU. :func:`tail_records` decodes with the same
typed decoder (so a document is accepted, refused or read span by span exactly as
``records_of`` would) and keeps a :class:`TailRecord` per span with what
:class:`~viewer.tail.TailState` reads. A document the typed decoder refuses goes to
``records_of`` itself: its records, errors and counts are the reference ones, and the cost of
the slow path is only paid for such documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from exporters.reading.records import PENDING, PENDING_PARENT, EventRecord, SpanRecord, records_of
from exporters.reading.schema import Event, TracesData, full_decoder
from exporters.reading.values import attribute_dict, normalize_id, plain_value, status_number

__all__ = ["TailBatch", "TailRecord", "tail_records"]

_BAD_IDS: Final = "a span without a valid traceId or spanId"
_KNOWN_MAX: Final = 4096  # the spans in flight, and then some
_ZERO_ID: Final = {8: bytes(8), 16: bytes(16)}  # no id
# Ids already checked, raw spelling -> normal form: a trace's id comes with each of its
# records, a span's with its pending record, its end and each child. Two maps, because the
# same text may be a valid span id and no valid trace id.
_TRACE_IDS: dict[str | None, str] = {}
_SPAN_IDS: dict[str | None, str] = {}


class TailRecord(msgspec.Struct, gc=False):  # made in C; it refers to nothing that refers back
    """One span, or one pending record (``pending`` True), as tail reads it.

    The fields mean what they mean on :class:`~exporters.reading.records.SpanRecord`: for a
    pending record ``span_id`` is the started span's id and ``end_ns`` equals ``start_ns``.
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
    events: Sequence[EventRecord] = ()
    pending: bool = False


@dataclass(slots=True)
class TailBatch:
    """The records of one document and what could not be read (see ``RecordBatch``)."""

    records: Sequence[TailRecord | SpanRecord]
    error: str | None
    bad_spans: int
    bad_reason: str


def tail_records(data: bytes, *, trace_id: str | None = None) -> TailBatch:
    """The records of one document (only those of ``trace_id`` when given)."""
    try:
        doc: TracesData = full_decoder().decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        # unreadable, or readable only span by span: the reference path says which and why
        batch = records_of(data, trace_id=trace_id)
        return TailBatch(batch.records, batch.error, batch.bad_spans, batch.bad_reason)
    out: list[TailRecord | SpanRecord] = []
    bad = 0
    trace_ids = _TRACE_IDS
    span_ids = _SPAN_IDS
    # One loop, no call per span but for what is rare (an id not seen lately, an error):
    # this runs for every record tail reads.
    for resource_spans in doc.resourceSpans:
        for scope_spans in resource_spans.scopeSpans:
            for span in scope_spans.spans:
                raw = span.traceId
                trace = trace_ids.get(raw) or _remember(trace_ids, raw, 16)
                if trace_id is not None and trace != trace_id:
                    continue  # another run's (an unreadable id is no run's)
                if trace is None:
                    bad += 1
                    continue
                attributes: dict[str, Any] = {}
                pairs = span.attributes
                if pairs:
                    for pair in pairs:
                        value = pair.value
                        text = value.stringValue if value is not None else None
                        attributes[pair.key] = text if text is not None else plain_value(value)
                start = span.startTimeUnixNano or 0
                pending = attributes.pop(PENDING, False) is True
                if pending:
                    # the started span's id is the record's parent; its own only has to be valid
                    if not _valid_own(span.spanId):
                        bad += 1
                        continue
                    own = span.parentSpanId
                    parent = attributes.pop(PENDING_PARENT, None)
                    if not isinstance(parent, str):
                        parent = None
                    end = start
                else:
                    own = span.spanId
                    parent = span.parentSpanId
                    end = span.endTimeUnixNano or start
                    if end < start:
                        end = start
                span_id = span_ids.get(own) or _remember(span_ids, own, 8)
                if span_id is None:
                    bad += 1
                    continue
                parent_id = (
                    (span_ids.get(parent) or _remember(span_ids, parent, 8)) if parent else None
                )
                status = span.status
                events = span.events
                out.append(
                    TailRecord(
                        trace,
                        span_id,
                        parent_id,
                        span.name or "",
                        start,
                        end,
                        attributes,
                        status_number(status.code) if status else 0,
                        (status.message or "") if status else "",
                        [_event(event) for event in events] if events else (),
                        pending,
                    )
                )
    return TailBatch(out, None, bad, _BAD_IDS if bad else "")


def _event(event: Event) -> EventRecord:
    return EventRecord(event.name or "", event.timeUnixNano or 0, attribute_dict(event.attributes))


def _valid_own(raw: str) -> bool:
    """Whether a pending record's own id is a valid span id (it is not used: no normal form)."""
    if len(raw) == 16:
        try:
            value = bytes.fromhex(raw)
        except ValueError:
            return False
        return len(value) == 8 and value != _ZERO_ID[8]  # 8 bytes from 16 characters: all hex
    return normalize_id(raw, 8) is not None


def _remember(known: dict[str | None, str], raw: str | None, size: int) -> str | None:
    """The normal form of an id of ``size`` bytes, or None for none (as ``normalize_id`` says),
    remembered in ``known`` when it is one."""
    if not raw:
        return None
    if len(raw) == 2 * size:  # hex (graphtrace's spelling), or no id at all
        try:
            value = bytes.fromhex(raw)
        except ValueError:
            return None
        if len(value) != size or value == _ZERO_ID[size]:
            return None  # (fromhex skips white space: fewer bytes)
        normal = value.hex()  # lower case
    else:
        checked = normalize_id(raw, size)  # base64 (protobuf's JSON mapping), or no id
        if checked is None:
            return None
        normal = checked
    if len(known) >= _KNOWN_MAX:
        known.clear()  # bounded: the ids of runs that ended are not asked for again
    known[raw] = normal
    return normal
