"""Spans read back from trace files, as SDK ``ReadableSpan``s again, for the OTLP exporter.

``graphtrace push`` reads a run through :mod:`exporters.reading` (pending records folded away)
and hands the SDK's exporter the same kind of object the live forwarder does, so the protocol
is the SDK's, not ours. A span whose end was never recorded (its run was killed) goes out with
the time it had run as its end and ``graphtrace.open = interrupted``, as ``export --format
otlp`` writes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from exporters.reading.assemble import TreeSpan
from exporters.reading.otlp_out import OPEN_ATTRIBUTE

__all__ = ["SpanRebuilder"]

_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_KINDS = {k.value + 1: k for k in SpanKind}  # OTLP numbers kinds from 1 (INTERNAL)


class SpanRebuilder:
    """Turns :class:`TreeSpan`s into ``ReadableSpan``s, sharing resources and scopes.

    The resource is the one recorded with the span, with what ``OTEL_RESOURCE_ATTRIBUTES`` and
    ``OTEL_SERVICE_NAME`` set now laid over it: a backend added later can be given its project
    (``openinference.project.name=...`` for Phoenix) at push time.
    """

    def __init__(self, overrides: Resource | None = None) -> None:
        self.overrides = overrides if overrides is not None else OTELResourceDetector().detect()
        self._resources: dict[str, Resource] = {}
        self._scopes: dict[str, InstrumentationScope] = {}

    def span(self, tree_span: TreeSpan) -> ReadableSpan:
        """The SDK span for one span of a run."""
        record = tree_span.record
        trace_id = int(record.trace_id, 16)
        attributes = _clean(record.attributes)
        if not tree_span.ended:
            attributes[OPEN_ATTRIBUTE] = tree_span.status
        flags = TraceFlags((record.flags & 0xFF) or TraceFlags.SAMPLED)
        context = SpanContext(
            trace_id,
            int(record.span_id, 16),
            is_remote=False,
            trace_flags=flags,
            trace_state=_trace_state(record.trace_state),
        )
        parent = None
        if tree_span.parent_id:
            remote = bool(record.flags & _HAS_IS_REMOTE and record.flags & _IS_REMOTE)
            parent = SpanContext(trace_id, int(tree_span.parent_id, 16), remote, flags)
        return ReadableSpan(
            name=record.name,
            context=context,
            parent=parent,
            resource=self._resource(record.resource),
            attributes=attributes,
            events=[
                Event(event.name, _clean(event.attributes), event.time_ns)
                for event in record.events
            ],
            links=[_link(link) for link in record.links if link.get("trace_id")],
            kind=_KINDS.get(record.kind, SpanKind.INTERNAL),
            status=_status(record.status, record.status_message),
            start_time=record.start_ns,
            end_time=tree_span.end_ns,
            instrumentation_scope=self._scope(record.scope),
        )

    def _resource(self, attributes: dict[str, Any]) -> Resource:
        key = json.dumps(attributes, sort_keys=True, default=str)
        resource = self._resources.get(key)
        if resource is None:
            resource = Resource(_clean(attributes)).merge(self.overrides)
            self._resources[key] = resource
        return resource

    def _scope(self, scope: dict[str, Any]) -> InstrumentationScope:
        key = json.dumps(scope, sort_keys=True, default=str)
        out = self._scopes.get(key)
        if out is None:
            out = self._scopes[key] = InstrumentationScope(
                str(scope.get("name") or ""),
                str(scope["version"]) if scope.get("version") else None,
                attributes=_clean(scope.get("attributes") or {}),
            )
        return out


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes the SDK's encoder takes: lists as tuples, no empty values."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        out[key] = tuple(v for v in value if v is not None) if isinstance(value, list) else value
    return out


def _trace_state(text: str) -> TraceState | None:
    if not text:
        return None
    try:
        return TraceState.from_header([text])
    except ValueError:
        return None


def _link(link: dict[str, Any]) -> Link:
    context = SpanContext(int(link["trace_id"], 16), int(link["span_id"], 16), is_remote=False)
    return Link(context, _clean(link.get("attributes") or {}))


def _status(code: int, message: str) -> Status:
    if code == StatusCode.ERROR.value:
        return Status(StatusCode.ERROR, message or None)
    if code == StatusCode.OK.value:
        return Status(StatusCode.OK)
    return Status(StatusCode.UNSET)
