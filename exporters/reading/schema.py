"""The OTLP JSON trace shapes as msgspec structs, for fast typed decoding.

Typed decoding skips every field it does not name at C speed and builds no dict per object,
which makes it several times faster than ``json.loads`` on span-heavy lines (the index build
depends on that). ``strict=False`` lets 64-bit integers arrive as strings or numbers and doubles
as ``"NaN"``/``"Infinity"``, as the OTLP JSON encoding allows. Anything else unexpected (a
wrong type, a missing required list) raises, and the caller falls back to the span-by-span path
in :mod:`exporters.reading.decode`.

Two variants: the full one (everything a viewer shows) and a lean one for the index, which
needs ids, names, times, status and scalar attributes only.
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = [
    "AnyValue",
    "Event",
    "KeyValue",
    "LeanTracesData",
    "Link",
    "ResourceSpans",
    "ScopeSpans",
    "Span",
    "Status",
    "TracesData",
    "full_decoder",
    "lean_decoder",
]


class ArrayValue(msgspec.Struct):
    """``arrayValue``."""

    values: list[AnyValue] | None = None


class KeyValueList(msgspec.Struct):
    """``kvlistValue``."""

    values: list[KeyValue] | None = None


class AnyValue(msgspec.Struct):
    """An attribute value: at most one of the fields is set."""

    stringValue: str | None = None
    boolValue: bool | None = None
    intValue: int | None = None
    doubleValue: float | None = None
    arrayValue: ArrayValue | None = None
    kvlistValue: KeyValueList | None = None
    bytesValue: str | None = None


class KeyValue(msgspec.Struct):
    """One attribute."""

    key: str
    value: AnyValue | None = None


class Status(msgspec.Struct):
    """A span's status; ``code`` may be an integer or an enum name such as ``STATUS_CODE_ERROR``."""

    code: int | str | None = 0
    message: str | None = ""


class Event(msgspec.Struct):
    """A span event (exceptions, stall snapshots)."""

    timeUnixNano: int | None = 0
    name: str | None = ""
    attributes: list[KeyValue] | None = None
    droppedAttributesCount: int | None = 0


class Link(msgspec.Struct):
    """A link to another span."""

    traceId: str | None = ""
    spanId: str | None = ""
    traceState: str | None = ""
    attributes: list[KeyValue] | None = None
    droppedAttributesCount: int | None = 0
    flags: int | None = 0


class Span(msgspec.Struct):
    """One span (or one graphtrace pending record)."""

    traceId: str
    spanId: str
    parentSpanId: str | None = ""
    traceState: str | None = ""
    flags: int | None = 0
    name: str | None = ""
    kind: int | str | None = 0
    startTimeUnixNano: int | None = 0
    endTimeUnixNano: int | None = 0
    attributes: list[KeyValue] | None = None
    droppedAttributesCount: int | None = 0
    events: list[Event] | None = None
    droppedEventsCount: int | None = 0
    links: list[Link] | None = None
    droppedLinksCount: int | None = 0
    status: Status | None = None


class Scope(msgspec.Struct):
    """The instrumentation scope."""

    name: str | None = ""
    version: str | None = ""
    attributes: list[KeyValue] | None = None


class ScopeSpans(msgspec.Struct):
    """The spans of one scope. ``spans`` is required so that a misspelt key is not read as []."""

    spans: list[Span]
    scope: Scope | None = None
    schemaUrl: str | None = ""


class Resource(msgspec.Struct):
    """The resource (service) that produced the spans."""

    attributes: list[KeyValue] | None = None


class ResourceSpans(msgspec.Struct):
    """The spans of one resource."""

    scopeSpans: list[ScopeSpans]
    resource: Resource | None = None
    schemaUrl: str | None = ""


class TracesData(msgspec.Struct):
    """One OTLP JSON ``TracesData`` document."""

    resourceSpans: list[ResourceSpans]


# -- the lean variant: what the index reads of every span ---------------------------------


class LeanValue(msgspec.Struct):
    """Scalar attribute values only; arrays and maps are skipped unread."""

    stringValue: str | None = None
    boolValue: bool | None = None
    intValue: int | None = None
    doubleValue: float | None = None


class LeanKeyValue(msgspec.Struct):
    """One attribute, scalar values only."""

    key: str
    value: LeanValue | None = None


class LeanSpan(msgspec.Struct):
    """The fields of a span the index needs."""

    traceId: str
    spanId: str
    parentSpanId: str | None = ""
    name: str | None = ""
    startTimeUnixNano: int | None = 0
    endTimeUnixNano: int | None = 0
    attributes: list[LeanKeyValue] | None = None
    status: Status | None = None


class LeanScopeSpans(msgspec.Struct):
    """The spans of one scope (lean)."""

    spans: list[LeanSpan]


class LeanResourceSpans(msgspec.Struct):
    """The spans of one resource (lean)."""

    scopeSpans: list[LeanScopeSpans]


class LeanTracesData(msgspec.Struct):
    """One ``TracesData`` document as the index reads it."""

    resourceSpans: list[LeanResourceSpans]


_FULL: Final = msgspec.json.Decoder(TracesData, strict=False)
_LEAN: Final = msgspec.json.Decoder(LeanTracesData, strict=False)


def full_decoder() -> msgspec.json.Decoder[TracesData]:
    """The decoder of whole documents into :class:`TracesData`."""
    return _FULL


def lean_decoder() -> msgspec.json.Decoder[LeanTracesData]:
    """The decoder the index uses."""
    return _LEAN
