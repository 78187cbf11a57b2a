"""Trace records as plain values, so that another process can encode them.

A busy process hands its records to a helper process (:mod:`exporters.encoder_process`) instead
of encoding them under the event loop's GIL. A span at its end and a started one
(:class:`~exporters.otlp_json.Started`) become runs of fields (str, int, float, bool, None, tuple
and dict) in one flat list, which ``marshal`` writes in C at a fraction of the cost of encoding
them. The helper rebuilds objects that
:func:`~exporters.otlp_json.encode_batch` reads through its fast path, so its lines are byte for
byte the ones the writer thread would have made (but for the fresh random span id that every
pending record gets).

The spans carried are those that keep their attributes in a plain dict and their events in a
tuple or list (graphtrace's own ``LeanSpan``). Anything else (the SDK's spans, with their bounded
attributes, links, values that are subclasses of str or int) raises :class:`WireError`, and the
caller encodes that batch itself.
"""

from __future__ import annotations

import marshal
from collections.abc import Sequence
from typing import Any, Final

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState

from exporters.otlp_json import Started, _has_sdk_layout

__all__ = ["WireError", "WireReader", "WireWriter"]

_END: Final = 0
_START: Final = 1
_START_FIELDS: Final = 10  # fields of a start record in the flat list of a frame, tag included
_END_FIELDS: Final = 17
# SpanKind(value) and TraceFlags(value) are Python-level calls; a span has one of a few of each
_KINDS: Final = {kind.value: kind for kind in SpanKind}
_FLAGS: Final = {flags: TraceFlags(flags) for flags in range(256)}
_KEYS_KEPT: Final = 256  # resources and scopes a process has: one or two
_UNSET: Final = object()
_STATUS_FIELDS: Final = all(
    hasattr(Status(StatusCode.ERROR, "probe"), field) for field in ("_status_code", "_description")
)


class WireError(ValueError):
    """A record the wire does not carry; encode the batch in this process instead."""


class WireWriter:
    """Turns records into frames for a :class:`WireReader`.

    Every frame defines the resources and instrumentation scopes its records name (a process
    has one or two, a few hundred bytes), so that any frame reads back on its own: in the helper
    process, whichever thread made it, or in this process when the helper is gone.
    """

    def __init__(self) -> None:
        # a resource or scope (by identity: Resource hashes in Python) -> (it, key, definition)
        self._known: dict[int, tuple[object, int, tuple[Any, ...]]] = {}
        self._next_key = 0

    def frame(self, records: Sequence[Any], starts: int = 0) -> bytes:
        """The frame for ``records``: span ends, and in the first ``starts`` places span
        starts, each a :class:`Started` or a span whose ``_start_attributes`` are the ones it
        started with (a LeanSpan as the live processor queues it)."""
        used: dict[int, tuple[Any, ...]] = {}  # key -> definition, for the frame's records
        # One flat list of fields, not a tuple per record: thousands of tuples alive at once
        # would count towards the GC's next young collection, run on the GIL the loop needs.
        # Each record's tuple below is freed as soon as the list has its fields.
        rows: list[Any] = []
        append = rows.extend
        # a batch has one span class, resource and scope, or very few: looked up on a change
        known_type: type | None = None
        resource: object = _UNSET
        scope: object = _UNSET
        resource_key = scope_key = 0
        attributes: Any
        span: Any
        for index, item in enumerate(records):
            is_start = index < starts or type(item) is Started
            if type(item) is Started:
                span, attributes = item.span, item.attributes
            else:
                span = item
                attributes = getattr(item, "_start_attributes", None) if is_start else None
            if type(span) is not known_type:
                if not _has_sdk_layout(type(span)):
                    raise WireError(f"a {type(span).__name__} is encoded here")
                known_type = type(span)
            if span._resource is not resource:
                resource = span._resource
                resource_key = self._key(resource, used)
            if span._instrumentation_scope is not scope:
                scope = span._instrumentation_scope
                scope_key = self._key(scope, used)
            ctx: Any = span._context
            parent: Any = span._parent
            if is_start:
                if type(attributes) is not dict:
                    raise WireError("a start without its start attributes")
                append(
                    (
                        _START,
                        span._name,
                        ctx[0],
                        ctx[1],
                        span._start_time,
                        attributes,
                        span._kind._value_,
                        parent[1] if parent is not None else 0,
                        resource_key,
                        scope_key,
                    )
                )
                continue
            if span._links:
                raise WireError("links are encoded in this process")
            events = span._events
            if type(span._attributes) is not dict or type(events) not in (tuple, list):
                raise WireError("bounded attributes or events are encoded in this process")
            trace_state = ctx[4]
            status = span._status
            if _STATUS_FIELDS:  # the properties are Python calls
                code, description = status._status_code._value_, status._description
            else:
                code, description = status.status_code._value_, status.description
            append(
                (
                    _END,
                    span._name,
                    ctx[0],
                    ctx[1],
                    int(ctx[3]),
                    None if trace_state is DEFAULT_TRACE_STATE else tuple(trace_state.items()),
                    parent[1] if parent is not None else 0,
                    bool(parent[2]) if parent is not None else False,
                    span._kind._value_,
                    span._start_time,
                    span._end_time,
                    span._attributes,
                    tuple(_event_row(event) for event in events) if events else (),
                    code,
                    description,
                    resource_key,
                    scope_key,
                )
            )
        try:
            return marshal.dumps((tuple(used.values()), rows))
        except ValueError as exc:  # a value marshal does not write (a str or int subclass)
            raise WireError(f"a record holds a value the wire does not carry: {exc}") from None

    def _key(self, obj: object, used: dict[int, tuple[Any, ...]]) -> int:
        entry = self._known.get(id(obj))
        if entry is None or entry[0] is not obj:
            if len(self._known) >= _KEYS_KEPT:
                self._known.clear()
            self._next_key += 1
            entry = (obj, self._next_key, _definition(self._next_key, obj))
            self._known[id(obj)] = entry
        used[entry[1]] = entry[2]
        return entry[1]


def _event_row(event: Event) -> tuple[str, Any, int]:
    attributes = event.attributes
    if attributes and type(attributes) is not dict:
        raise WireError("event attributes that are not a plain dict are encoded here")
    return event.name, attributes or None, event.timestamp


def _definition(key: int, obj: object) -> tuple[Any, ...]:
    if isinstance(obj, Resource):
        return (key, "resource", dict(obj.attributes), obj.schema_url)
    if isinstance(obj, InstrumentationScope):
        attributes = dict(obj.attributes) if obj.attributes else None
        return (key, "scope", obj.name, obj.version, obj.schema_url, attributes)
    if obj is None:
        return (key, "none")
    raise WireError(f"a {type(obj).__name__} as resource or scope")


class _WireSpan(ReadableSpan):
    """A span rebuilt from the wire: the fields the encoder reads, set directly (made with
    ``object.__new__``: no ReadableSpan.__init__, every field is set by the reader)."""

    __slots__ = (
        "_attributes",
        "_context",
        "_end_time",
        "_events",
        "_instrumentation_scope",
        "_kind",
        "_links",
        "_name",
        "_parent",
        "_resource",
        "_start_time",
        "_status",
    )


_new_span = object.__new__


class WireReader:
    """Rebuilds the records of frames (from any :class:`WireWriter`: each frame stands alone)."""

    def __init__(self) -> None:
        # key -> (definition, object): the definition every frame repeats gives the same object
        self._defined: dict[int, tuple[tuple[Any, ...], object]] = {}
        self._statuses: dict[tuple[int, str | None], Status] = {}

    def records(self, frame: bytes) -> list[ReadableSpan | Started]:
        definitions, rows = marshal.loads(frame)
        defined = {definition[0]: self._object(definition) for definition in definitions}
        out: list[ReadableSpan | Started] = []
        at, size = 0, len(rows)
        while at < size:
            if rows[at] != _START:
                out.append(self._ended(rows[at : at + _END_FIELDS], defined))
                at += _END_FIELDS
                continue
            _, name, trace_id, span_id, start, attributes, kind, parent_id, res, scope = rows[
                at : at + _START_FIELDS
            ]
            at += _START_FIELDS
            span = _new_span(_WireSpan)
            span._name = name
            span._context = _context(trace_id, span_id, 1, DEFAULT_TRACE_STATE, False)
            span._parent = (
                _context(trace_id, parent_id, 1, DEFAULT_TRACE_STATE, False) if parent_id else None
            )
            span._kind = _KINDS[kind]
            span._start_time = start
            span._resource = defined[res]  # type: ignore[assignment]
            span._instrumentation_scope = defined[scope]  # type: ignore[assignment]
            out.append(Started(span, attributes))
        return out

    def _ended(self, row: list[Any], defined: dict[int, object]) -> ReadableSpan:
        (
            _,
            name,
            trace_id,
            span_id,
            flags,
            trace_state,
            parent_id,
            parent_remote,
            kind,
            start,
            end,
            attributes,
            events,
            code,
            description,
            res,
            scope,
        ) = row
        span = _new_span(_WireSpan)
        state = DEFAULT_TRACE_STATE if trace_state is None else TraceState(list(trace_state))
        span._name = name
        span._context = _context(trace_id, span_id, flags, state, False)
        span._parent = (
            _context(trace_id, parent_id, flags, DEFAULT_TRACE_STATE, parent_remote)
            if parent_id
            else None
        )
        span._kind = _KINDS[kind]
        span._start_time = start
        span._end_time = end
        span._attributes = attributes  # type: ignore[assignment]
        span._events = tuple(Event(n, a, t) for n, a, t in events)  # type: ignore[assignment]
        span._links = ()  # type: ignore[assignment]
        span._status = self._status(code, description)
        span._resource = defined[res]  # type: ignore[assignment]
        span._instrumentation_scope = defined[scope]  # type: ignore[assignment]
        return span

    def _status(self, code: int, description: str | None) -> Status:
        status = self._statuses.get((code, description))
        if status is None:
            # not Status(): its constructor drops (and warns about) a description on a status
            # other than ERROR, which the original span may hold
            status = Status.__new__(Status)
            status._status_code = StatusCode(code)
            status._description = description
            if len(self._statuses) >= 1024:
                self._statuses.clear()
            self._statuses[(code, description)] = status
        return status

    def _object(self, definition: tuple[Any, ...]) -> object:
        key, kind = definition[0], definition[1]
        known = self._defined.get(key)
        if known is not None and known[0] == definition:
            return known[1]
        obj: object = None
        if kind == "resource":
            obj = Resource(definition[2], definition[3])
        elif kind == "scope":
            name, version, schema_url, attributes = definition[2:]
            obj = InstrumentationScope(name, version, schema_url, attributes)
        if len(self._defined) >= _KEYS_KEPT:
            self._defined.clear()
        self._defined[key] = (definition, obj)
        return obj


def _context(trace_id: int, span_id: int, flags: int, state: Any, remote: bool) -> SpanContext:
    return tuple.__new__(SpanContext, (trace_id, span_id, remote, _FLAGS[flags], state, True))
