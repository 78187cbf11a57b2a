"""A hand-written encoder from SDK spans to OTLP JSON lines.

The output follows the OTLP JSON encoding of the OpenTelemetry specification, which differs from
protobuf's default JSON mapping: ``traceId``/``spanId``/``parentSpanId`` are lowercase hex, ``kind``
and status codes are integers, 64-bit integers are decimal strings, and field names are
lowerCamelCase. Empty and default-valued fields are left out.

It exists because the reference path (build protobuf messages, then ``MessageToJson``) costs tens
of microseconds per span, and graphtrace writes every span twice (a pending record at start and the
span at end) while thousands of runs are in flight. Everything here builds strings directly, caches
what repeats (attribute keys, resource and scope headers) and leaves JSON string escaping to the C
encoder from the standard library.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from json.encoder import encode_basestring  # the C implementation when available
from typing import Any, Final, NamedTuple

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, SpanContext
from opentelemetry.util.types import AttributeValue

__all__ = ["PENDING_ATTRIBUTE", "PendingSpan", "Started", "encode_batch", "encode_value"]

PENDING_ATTRIBUTE: Final = "graphtrace.pending"
PENDING_PARENT_ATTRIBUTE: Final = "graphtrace.pending.parent_span_id"

# Span.flags bits from trace.proto: 0-7 carry the W3C trace flags, bit 8 says whether bit 9
# (parent is remote) is known.
_FLAG_HAS_IS_REMOTE: Final = 0x100
_FLAG_IS_REMOTE: Final = 0x200

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

# Encoded `{"key":"<k>","value":{` prefixes. Attribute keys come from a small fixed vocabulary, so
# the hit rate is near 100%; the size cap only guards against callers that invent keys per span.
_KEY_CACHE: dict[str, str] = {}
_KEY_CACHE_MAX: Final = 4096

# Encoded `{"key":...,"value":{"stringValue":...}}` pairs of short string values. Most of a span's
# string attributes repeat from span to span (the operation, provider, model, purpose, graph);
# a unique value (a run id) costs one entry, and a full cache starts again.
_PAIR_CACHE: dict[tuple[str, str], str] = {}
_PAIR_CACHE_MAX: Final = 8192
_PAIR_VALUE_MAX: Final = 64

# Encoded resource and scope headers keyed by id(); an entry keeps its object alive so the id
# cannot be reused by another object while the entry exists.
_RESOURCE_HEADERS: dict[int, tuple[object, str, str]] = {}
_SCOPE_HEADERS: dict[int, tuple[object, str, str]] = {}
_HEADER_CACHE_MAX: Final = 256

# Encoded span names; a graph has a handful of node classes, deps and models.
_NAME_CACHE: dict[str, str] = {}
_NAME_CACHE_MAX: Final = 4096

# Hex trace ids; bounded like the caches above.
_TRACE_HEX: dict[int, str] = {}
_TRACE_HEX_MAX: Final = 4096

_EMPTY: Final[Mapping[str, Any]] = {}

_PENDING_TAIL: Final = '{"key":"graphtrace.pending","value":{"boolValue":true}}'


class PendingSpan(NamedTuple):
    """Snapshot of a span at its start, written as a zero-length 'pending' record.

    A named tuple because one is made on the event loop for every span that starts.
    """

    name: str
    trace_id: int
    span_id: int  # the STARTED span's id (becomes the record's parentSpanId)
    start_time: int  # ns since epoch
    attributes: Mapping[str, AttributeValue]
    kind: int  # OTLP integer kind
    resource: Resource
    scope: InstrumentationScope | None
    parent_span_id: int | None = None  # the started span's own parent, for live views


class Started:
    """A span that has just started and the attributes it started with: a pending record.

    Cheaper to make on the event loop than a :class:`PendingSpan`: the writer reads the name,
    ids, start time, kind, resource and scope from the span itself, which do not change after
    the start. ``attributes`` must not be mutated afterwards (a snapshot, or a mapping the span
    copies before it changes).
    """

    __slots__ = ("attributes", "span")

    def __init__(self, span: ReadableSpan, attributes: Mapping[str, AttributeValue]) -> None:
        self.span = span
        self.attributes = attributes


def _key_prefix(key: str) -> str:
    prefix = _KEY_CACHE.get(key)
    if prefix is None:
        if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
            _KEY_CACHE.clear()
        # str(): a non-str key (only possible outside the SDK) must not fail the whole batch
        text = key if isinstance(key, str) else str(key)
        prefix = _KEY_CACHE[key] = f'{{"key":{encode_basestring(text)},"value":{{'
    return prefix


def _double(value: float) -> str:
    # inf - inf and nan - nan are nan, which never equals 0; every finite value gives 0.
    if value - value == 0:
        return float.__repr__(value)
    if value != value:
        return '"NaN"'
    return '"Infinity"' if value > 0 else '"-Infinity"'


def _int(value: int) -> str:
    if _INT64_MIN <= value <= _INT64_MAX:
        return f'"intValue":"{int.__repr__(value)}"'
    # A protobuf JSON parser rejects an out-of-range int64, which would make the whole line
    # unreadable to other OTLP tools; the digits survive as a string instead.
    return f'"stringValue":"{int.__repr__(value)}"'


def _value_body(value: Any) -> str:
    """The inside of an AnyValue object (``"stringValue":"x"``), without the braces."""
    t = type(value)
    if t is str:
        return f'"stringValue":{encode_basestring(value)}'
    if t is bool:
        return '"boolValue":true' if value else '"boolValue":false'
    if t is int:
        return _int(value)
    if t is float:
        return f'"doubleValue":{_double(value)}'
    if t is tuple or t is list:
        return _array_body(value)
    return _value_body_slow(value)


def _value_body_slow(value: Any) -> str:
    # Subclasses (str/int enums, numpy-free float subclasses) and the rarer types.
    if value is None:
        return ""
    if isinstance(value, bool):
        return '"boolValue":true' if value else '"boolValue":false'
    if isinstance(value, str):
        return f'"stringValue":{encode_basestring(str.__str__(value))}'
    if isinstance(value, int):
        return _int(int(value))
    if isinstance(value, float):
        return f'"doubleValue":{_double(float(value))}'
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f'"bytesValue":"{base64.b64encode(value).decode("ascii")}"'
    if isinstance(value, Mapping):
        if not value:
            return '"kvlistValue":{}'
        pairs = ",".join(f"{_key_prefix(str(k))}{_value_body(v)}}}}}" for k, v in value.items())
        return f'"kvlistValue":{{"values":[{pairs}]}}'
    if isinstance(value, Sequence):
        return _array_body(value)
    # The SDK never stores other types; an exporter that raises would lose the whole batch, so
    # the value is kept as its text.
    return f'"stringValue":{encode_basestring(str(value))}'


def _array_body(values: Sequence[Any]) -> str:
    if not values:
        return '"arrayValue":{}'
    inner = ",".join([f"{{{_value_body(v)}}}" for v in values])
    return f'"arrayValue":{{"values":[{inner}]}}'


def encode_value(value: Any) -> str:
    """Encode one attribute value as an OTLP JSON ``AnyValue`` object, e.g. ``{"intValue":"5"}``."""
    return f"{{{_value_body(value)}}}"


def _attributes(attributes: Mapping[str, Any]) -> str:
    """Comma-joined KeyValue objects, the inside of an ``"attributes":[...]`` list."""
    parts: list[str] = []
    append = parts.append
    key_cache = _KEY_CACHE
    pair_cache = _PAIR_CACHE
    for key, value in attributes.items():
        t = type(value)
        # The common types are inlined; a call per attribute is a measurable share of the cost.
        if t is str and len(value) <= _PAIR_VALUE_MAX:
            pair = pair_cache.get((key, value))
            if pair is None:
                if len(pair_cache) >= _PAIR_CACHE_MAX:
                    pair_cache.clear()
                prefix_text = key_cache.get(key) or _key_prefix(key)
                pair = pair_cache[(key, value)] = (
                    f'{prefix_text}"stringValue":{encode_basestring(value)}}}}}'
                )
            append(pair)
            continue
        prefix = key_cache.get(key)
        if prefix is None:
            prefix = _key_prefix(key)
        if t is str:
            append(f'{prefix}"stringValue":{encode_basestring(value)}}}}}')
        elif t is int and _INT64_MIN <= value <= _INT64_MAX:
            append(f'{prefix}"intValue":"{value}"}}}}')
        elif t is float and value - value == 0:  # finite
            append(f'{prefix}"doubleValue":{float.__repr__(value)}}}}}')
        elif t is bool:
            append(f'{prefix}"boolValue":{"true" if value else "false"}}}}}')
        else:
            append(f"{prefix}{_value_body(value)}}}}}")
    return ",".join(parts)


def _trace_state(trace_state: Any) -> str:
    return encode_basestring(",".join(f"{k}={v}" for k, v in trace_state.items()))


class _Never:
    """A type no value has: stands in for the SDK types when their internals are not there."""


def _sdk_internals_present() -> bool:
    """Whether this SDK keeps the private fields the fast paths read (checked once, at import)."""
    try:
        span = ReadableSpan("probe", context=SpanContext(1, 1, is_remote=False))
        fields = [f"_{name}" for name in _SPAN_FIELDS]
        return (
            all(hasattr(span, field) for field in fields)
            and isinstance(BoundedAttributes(attributes={"k": 1})._dict, dict)
            and hasattr(BoundedList(1), "_dq")
        )
    except Exception:
        return False


# The ReadableSpan properties that, in the SDK, return the private field of the same name.
_SPAN_FIELDS: Final = (
    "context",
    "parent",
    "name",
    "kind",
    "start_time",
    "end_time",
    "status",
    "attributes",
    "events",
    "links",
)
_SDK_INTERNALS: Final = _sdk_internals_present()
# Should a future SDK drop these internals, every span takes the public-property path instead.
_FAST_ATTRIBUTES: Final[type] = BoundedAttributes if _SDK_INTERNALS else _Never
_FAST_LIST: Final[type] = BoundedList if _SDK_INTERNALS else _Never


def _plain(attributes: Any) -> tuple[Mapping[str, Any], int]:
    """The mapping to iterate and the dropped count of span/event/link attributes."""
    if type(attributes) is _FAST_ATTRIBUTES:
        # BoundedAttributes iterates through the Mapping mixins, one Python call per key; its
        # backing dict iterates in C.
        return attributes._dict, attributes.dropped  # type: ignore[attr-defined]
    return attributes or _EMPTY, 0


def _sequence(items: Any) -> tuple[Sequence[Any], int]:
    """The sequence to iterate and the dropped count of span events/links."""
    if type(items) is _FAST_LIST:
        # Iterating a BoundedList copies it under a lock; an ended span no longer changes.
        return items._dq, items.dropped  # type: ignore[attr-defined]
    return items or (), 0


def _hex_id(value: int, length: int) -> str:
    # to_bytes().hex() is about twice as fast as format(value, "016x"); it is inlined in the
    # per-span paths.
    return value.to_bytes(length, "big").hex()


def _trace_hex(trace_id: int) -> str:
    # Most spans of a batch share a few traces; a dict hit beats formatting the 128-bit id.
    text = _TRACE_HEX.get(trace_id)
    if text is None:
        if len(_TRACE_HEX) >= _TRACE_HEX_MAX:
            _TRACE_HEX.clear()
        text = _TRACE_HEX[trace_id] = trace_id.to_bytes(16, "big").hex()
    return text


def _link_flags(ctx: Any) -> int:
    flags = int(ctx.trace_flags) | _FLAG_HAS_IS_REMOTE
    if ctx.is_remote:
        flags |= _FLAG_IS_REMOTE
    return flags


def _links(links: Iterable[Any]) -> str:
    out = []
    for link in links:
        ctx = link.context
        parts = [f'{{"traceId":"{_trace_hex(ctx.trace_id)}","spanId":"{_hex_id(ctx.span_id, 8)}"']
        if ctx.trace_state:
            parts.append(f',"traceState":{_trace_state(ctx.trace_state)}')
        attributes, dropped = _plain(link.attributes)
        if attributes:
            parts.append(f',"attributes":[{_attributes(attributes)}]')
        if dropped:
            parts.append(f',"droppedAttributesCount":{dropped}')
        parts.append(f',"flags":{_link_flags(ctx)}}}')
        out.append("".join(parts))
    return ",".join(out)


def _events(events: Iterable[Any]) -> str:
    out = []
    for event in events:
        attributes, dropped = _plain(event.attributes)
        head = f'{{"timeUnixNano":"{event.timestamp}","name":{encode_basestring(event.name)}'
        if attributes:
            head = f'{head},"attributes":[{_attributes(attributes)}]'
        if dropped:
            head = f'{head},"droppedAttributesCount":{dropped}'
        out.append(head + "}")
    return ",".join(out)


# The ReadableSpan properties whose SDK implementation simply returns a private field (or a copy
# of one); a class that overrides none of them (the SDK's Span does not) is read through the
# fields directly.
_SPAN_PROPERTIES: Final = (
    "name",
    "context",
    "kind",
    "parent",
    "start_time",
    "end_time",
    "status",
    "attributes",
    "events",
    "links",
    "resource",
    "instrumentation_scope",
    "dropped_attributes",
    "dropped_events",
    "dropped_links",
)
_SDK_LAYOUT: dict[type, bool] = {}


def _has_sdk_layout(cls: type) -> bool:
    known = _SDK_LAYOUT.get(cls)
    if known is None:
        known = _SDK_LAYOUT[cls] = (
            _SDK_INTERNALS
            and issubclass(cls, ReadableSpan)
            and all(
                getattr(cls, name, None) is getattr(ReadableSpan, name) for name in _SPAN_PROPERTIES
            )
        )
    return known


def _encode_span(span: ReadableSpan) -> str:
    if _SDK_LAYOUT.get(type(span)) or _has_sdk_layout(type(span)):
        # The public properties wrap attributes in a MappingProxy and copy events and links into
        # tuples on every call: about a third of the cost of encoding a span.
        ctx = span._context
        parent = span._parent
        name = span._name
        kind = span._kind
        start = span._start_time
        end = span._end_time
        status = span._status
        attributes, dropped_attributes = _plain(span._attributes)
        events, dropped_events = _sequence(span._events)
        links, dropped_links = _sequence(span._links)
    else:
        ctx = span.context
        parent = span.parent
        name = span.name
        kind = span.kind
        start = span.start_time
        end = span.end_time
        status = span.status
        attributes = span.attributes or _EMPTY
        dropped_attributes = span.dropped_attributes
        events = span.events
        dropped_events = span.dropped_events
        links = span.links
        dropped_links = span.dropped_links
    if ctx is None:
        raise ValueError(f"span {name!r} has no span context, hence no ids to encode")
    trace_state = ctx[4]
    flags = int(ctx[3]) | _FLAG_HAS_IS_REMOTE
    trace_id = ctx[0]
    trace_hex = _TRACE_HEX.get(trace_id)
    if trace_hex is None:
        trace_hex = _trace_hex(trace_id)
    parts = [f'{{"traceId":"{trace_hex}","spanId":"{ctx[1].to_bytes(8, "big").hex()}"']
    # Nearly every span carries the shared empty default, whose len() is a Python-level call.
    if trace_state is not DEFAULT_TRACE_STATE and trace_state:
        parts.append(f',"traceState":{_trace_state(trace_state)}')
    if parent is not None:
        parts.append(f',"parentSpanId":"{parent[1].to_bytes(8, "big").hex()}"')
        if parent[2]:
            flags |= _FLAG_IS_REMOTE
    if start is None:
        start = 0
    if end is None:
        # An unended span has no end; a zero-length span keeps the record valid (end >= start).
        end = start
    encoded_name = _NAME_CACHE.get(name)
    if encoded_name is None:
        encoded_name = _cached_name(name)
    parts.append(
        f',"flags":{flags},"name":{encoded_name},"kind":{kind._value_ + 1},'
        f'"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}"'
    )
    if attributes:
        parts.append(f',"attributes":[{_attributes(attributes)}]')
    if dropped_attributes:
        parts.append(f',"droppedAttributesCount":{dropped_attributes}')
    if events:
        parts.append(f',"events":[{_events(events)}]')
    if dropped_events:
        parts.append(f',"droppedEventsCount":{dropped_events}')
    if links:
        parts.append(f',"links":[{_links(links)}]')
    if dropped_links:
        parts.append(f',"droppedLinksCount":{dropped_links}')
    code = status.status_code._value_
    if code:
        description = status.description
        if description:
            parts.append(
                f',"status":{{"code":{code},"message":{encode_basestring(description)}}}}}'
            )
        else:
            parts.append(f',"status":{{"code":{code}}}}}')
    else:
        parts.append("}")
    return "".join(parts)


def _cached_name(name: str) -> str:
    if len(_NAME_CACHE) >= _NAME_CACHE_MAX:
        _NAME_CACHE.clear()
    encoded = _NAME_CACHE[name] = encode_basestring(name)
    return encoded


def _encode_started(item: Started) -> str:
    span = item.span
    if _SDK_LAYOUT.get(type(span)) or _has_sdk_layout(type(span)):
        ctx = span._context
        name = span._name
        kind = span._kind
        start = span._start_time
        parent = span._parent
    else:
        ctx = span.context
        name = span.name
        kind = span.kind
        start = span.start_time
        parent = span.parent
    if ctx is None:
        raise ValueError(f"span {name!r} has no span context, hence no ids to encode")
    return _pending_record(
        name,
        ctx[0],
        ctx[1],
        start or 0,
        item.attributes,
        kind._value_ + 1,
        parent[1] if parent is not None else None,
    )


def _encode_pending(item: PendingSpan) -> str:
    return _pending_record(
        item.name,
        item.trace_id,
        item.span_id,
        item.start_time,
        item.attributes,
        item.kind,
        item.parent_span_id,
    )


def _pending_record(
    name: str,
    trace_id: int,
    started_id: int,
    start: int,
    attributes: Mapping[str, AttributeValue],
    kind: int,
    parent_span_id: int | None,
) -> str:
    """A started span as a zero-length record (see :func:`encode_batch`)."""
    attributes, _ = _plain(attributes)
    if attributes:
        if PENDING_ATTRIBUTE in attributes:
            # The key must not appear twice, and the pending marker must win.
            attributes = {k: v for k, v in attributes.items() if k != PENDING_ATTRIBUTE}
        body = _attributes(attributes)
        attrs = f"{body},{_PENDING_TAIL}" if body else _PENDING_TAIL
    else:
        attrs = _PENDING_TAIL
    if parent_span_id:
        # where the open span hangs in the tree, before its own end record says so
        attrs = (
            f'{attrs},{{"key":"{PENDING_PARENT_ATTRIBUTE}","value":{{"stringValue":'
            f'"{parent_span_id.to_bytes(8, "big").hex()}"}}}}'
        )
    encoded_name = _NAME_CACHE.get(name)
    if encoded_name is None:
        encoded_name = _cached_name(name)
    trace_hex = _TRACE_HEX.get(trace_id)
    if trace_hex is None:
        trace_hex = _trace_hex(trace_id)
    span_id = random.getrandbits(64)
    while not span_id:
        span_id = random.getrandbits(64)
    # flags: bit 8 only, since the parent is the started span in this process, hence not remote.
    return (
        f'{{"traceId":"{trace_hex}","spanId":"{span_id.to_bytes(8, "big").hex()}",'
        f'"parentSpanId":"{started_id.to_bytes(8, "big").hex()}","flags":{_FLAG_HAS_IS_REMOTE},'
        f'"name":{encoded_name},"kind":{kind},'
        f'"startTimeUnixNano":"{start}","endTimeUnixNano":"{start}","attributes":[{attrs}]}}'
    )


def _cached_header(
    cache: dict[int, tuple[object, str, str]], obj: Any, build: Callable[[Any], tuple[str, str]]
) -> tuple[str, str]:
    entry = cache.get(id(obj))
    if entry is not None and entry[0] is obj:
        return entry[1], entry[2]
    head, tail = build(obj)
    if len(cache) >= _HEADER_CACHE_MAX:
        cache.clear()
    cache[id(obj)] = (obj, head, tail)
    return head, tail


def _resource_header(resource: Resource | None) -> tuple[str, str]:
    attributes = resource.attributes if resource is not None else None
    if attributes:
        head = f'{{"resource":{{"attributes":[{_attributes(attributes)}]}},"scopeSpans":['
    else:
        head = '{"resource":{},"scopeSpans":['
    schema_url = resource.schema_url if resource is not None else None
    tail = f'],"schemaUrl":{encode_basestring(schema_url)}}}' if schema_url else "]}"
    return head, tail


def _scope_header(scope: InstrumentationScope | None) -> tuple[str, str]:
    if scope is None:
        return '{"spans":[', "]}"
    fields = [f'"name":{encode_basestring(scope.name)}'] if scope.name else []
    if scope.version:  # get_tracer() turns a missing version into ""
        fields.append(f'"version":{encode_basestring(scope.version)}')
    attributes = scope.attributes
    if attributes:
        fields.append(f'"attributes":[{_attributes(attributes)}]')
    head = f'{{"scope":{{{",".join(fields)}}},"spans":['
    tail = f'],"schemaUrl":{encode_basestring(scope.schema_url)}}}' if scope.schema_url else "]}"
    return head, tail


_MISSING: Final = object()

_LINE_BREAKERS: Final = (("\u2028", "\\u2028"), ("\u2029", "\\u2029"), ("\x85", "\\u0085"))

_Groups = list[tuple[object, list[tuple[object, list[str]]]]]


def _bucket(groups: _Groups, resource: object, scope: object) -> list[str]:
    """The list collecting the spans of (resource, scope), created on first sight."""
    scopes: list[tuple[object, list[str]]] | None = None
    for group_resource, group_scopes in groups:
        if _same(group_resource, resource):
            scopes = group_scopes
            break
    if scopes is None:
        scopes = []
        groups.append((resource, scopes))
    for group_scope, spans in scopes:
        if _same(group_scope, scope):
            return spans
    spans = []
    scopes.append((scope, spans))
    return spans


def _same(a: object, b: object) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:
        return False


def encode_batch(items: Iterable[ReadableSpan | PendingSpan | Started]) -> str:
    """One OTLP `TracesData` JSON document on one line (no trailing newline).

    The document is ``{"resourceSpans": [...]}`` with the items grouped by resource and then by
    instrumentation scope, in first-seen order; items keep their order within a group. Grouping
    matches objects by identity first and by equality after.

    A `PendingSpan` becomes a zero-length span (start == end == ``start_time``) with a fresh
    random 64-bit nonzero span id, ``parentSpanId`` = the started span's id, the started span's
    name, kind and attributes plus ``graphtrace.pending: true``.

    Attribute values that are not valid OTel attribute values are encoded rather than dropped:
    ``None`` as an empty AnyValue, integers outside int64 as their decimal text (``stringValue``),
    mappings as ``kvlistValue``, anything else as ``str(value)``.
    """
    # [resource, [(scope, [encoded spans])]], in first-seen order
    groups: _Groups = []
    last_resource: object = _MISSING
    last_scope: object = _MISSING
    bucket: list[str] = []
    for item in items:
        kind = type(item)
        if kind is Started:
            encoded = _encode_started(item)  # type: ignore[arg-type]
            resource: object = item.span.resource  # type: ignore[union-attr]
            scope: object = item.span.instrumentation_scope  # type: ignore[union-attr]
        elif kind is PendingSpan:
            encoded = _encode_pending(item)  # type: ignore[arg-type]
            resource = item.resource  # type: ignore[union-attr]
            scope = item.scope  # type: ignore[union-attr]
        else:
            encoded = _encode_span(item)  # type: ignore[arg-type]
            resource = item.resource  # type: ignore[union-attr]
            scope = item.instrumentation_scope  # type: ignore[union-attr]
        if resource is last_resource and scope is last_scope:
            bucket.append(encoded)
            continue
        bucket = _bucket(groups, resource, scope)
        bucket.append(encoded)
        last_resource, last_scope = resource, scope

    out = ['{"resourceSpans":[']
    for i, (resource, scopes) in enumerate(groups):
        if i:
            out.append(",")
        resource_head, resource_tail = _cached_header(_RESOURCE_HEADERS, resource, _resource_header)
        out.append(resource_head)
        for j, (scope, spans) in enumerate(scopes):
            if j:
                out.append(",")
            scope_head, scope_tail = _cached_header(_SCOPE_HEADERS, scope, _scope_header)
            out.append(scope_head)
            out.append(",".join(spans))
            out.append(scope_tail)
        out.append(resource_tail)
    out.append("]}")
    doc = "".join(out)
    if not doc.isascii():  # O(1) in CPython: the flag is stored on the string
        # JSON allows these raw inside strings, but str.splitlines() and some JSONL readers
        # break lines at them; escaped, they are the same characters.
        for char, escape in _LINE_BREAKERS:
            if char in doc:
                doc = doc.replace(char, escape)
    return doc
