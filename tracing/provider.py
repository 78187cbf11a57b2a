"""A lean implementation of the OpenTelemetry trace API, for when graphtrace owns tracing.

The SDK's ``Span`` pays for generality on every span: bounded attribute containers with a lock,
value cleaning, a copy of the span for processors at its end. graphtrace opens two or more spans
per step, and the trace must cost little next to the work, so when the application has not
installed a provider of its own, :func:`tracing.configure` installs this one. Its spans are
``ReadableSpan``s, so SDK processors and exporters (the OTLP exporter for forwarding) take them
as they are. When the application did install an SDK provider, graphtrace uses that one instead.
"""

from __future__ import annotations

import logging
import random
import traceback
import weakref
from collections.abc import Iterator, Mapping, Sequence
from random import getrandbits
from time import time_ns
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util._decorator import _agnosticcontextmanager
from opentelemetry.util.types import Attributes, AttributeValue

log = logging.getLogger("graphtrace")

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)

_PRIMITIVES = (str, bool, int, float)
_PRIMITIVE_TYPES: frozenset[type] = frozenset(_PRIMITIVES)


def _clean(key: str, value: Any) -> AttributeValue | None:
    """The value as OTel accepts it (sequences become tuples); None (and a warning) if invalid."""
    if isinstance(value, _PRIMITIVES):
        return value
    if type(value) is tuple and _PRIMITIVE_TYPES.issuperset(map(type, value)):
        return value  # the usual sequence, checked in C, without the ABC check
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        items = tuple(value)
        if all(isinstance(v, _PRIMITIVES) or v is None for v in items):
            return items  # type: ignore[return-value]
    log.warning("graphtrace: attribute %r dropped: %r is not a valid OTel value", key, value)
    return None


class LeanSpan(trace_api.Span, ReadableSpan):
    """A recording span that is also its own ``ReadableSpan`` (no copy at the end)."""

    # Slots: storing a dozen fields in slots is cheaper than in a fresh instance dict, and a
    # span is made for every step. (The base classes have no slots, so a ``__dict__`` is still
    # there for attributes they set; it stays empty.)
    __slots__ = (
        "_attributes",
        "_context",
        "_end_time",
        "_events",
        "_instrumentation_info",
        "_instrumentation_scope",
        "_kind",
        "_links",
        "_name",
        "_parent",
        "_processor",
        "_resource",
        "_start_attributes",
        "_start_time",
        "_status",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Attributes,
        links: Sequence[Link],
        start_time: int,
        resource: Resource,
        scope: InstrumentationScope,
        processor: _Processors,
    ) -> None:
        # ReadableSpan's fields, set directly: its __init__ does work we do not need
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._end_time: int | None = None
        if not attributes:
            self._attributes: dict[str, AttributeValue] = {}
        elif _PRIMITIVE_TYPES.issuperset(map(type, attributes.values())):
            self._attributes = dict(attributes)  # plain values, checked in C: nothing to clean
        else:
            self._attributes = {}
            self._start_attributes: dict[str, AttributeValue] | None = None
            self.set_attributes(attributes)
        # what processors see at the start; a later change copies first (copy on write), so
        # the writer thread can read this dict while the span goes on
        self._start_attributes = self._attributes
        self._events: Sequence[Event] = ()  # a list from the first event on
        self._links = tuple(links) if links else ()
        self._start_time = start_time
        self._resource = resource
        self._instrumentation_scope = scope
        self._instrumentation_info = None
        self._status = _UNSET
        self._processor = processor

    # -- trace_api.Span -----------------------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self._context  # type: ignore[return-value]  # always set for a LeanSpan

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self._end_time is not None:
            return
        if self._attributes is self._start_attributes:
            self._attributes = dict(self._attributes)
        target = self._attributes
        if _PRIMITIVE_TYPES.issuperset(map(type, attributes.values())):
            target.update(attributes)  # plain values, checked in C: nothing to clean
            return
        for key, value in attributes.items():
            if type(value) in _PRIMITIVE_TYPES:
                target[key] = value
            else:
                cleaned = _clean(key, value)
                if cleaned is not None:
                    target[key] = cleaned

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._end_time is not None:
            return
        if self._attributes is self._start_attributes:
            self._attributes = dict(self._attributes)
        if type(value) in _PRIMITIVES:
            self._attributes[key] = value
        elif (cleaned := _clean(key, value)) is not None:
            self._attributes[key] = cleaned

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end_time is None:
            cleaned = {
                k: c for k, v in (attributes or {}).items() if (c := _clean(k, v)) is not None
            }
            event = Event(name, cleaned, timestamp or time_ns())
            # most spans have no events: no list (one more object for the collector) until one
            self._events = [*self._events, event]

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        if self._end_time is None and context.is_valid:
            self._links = (*self._links, Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return  # OK is final, as the specification says
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is StatusCode.UNSET:
            return
        self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        kind = type(exception)
        event: dict[str, AttributeValue] = {
            "exception.type": kind.__qualname__
            if kind.__module__ == "builtins"
            else f"{kind.__module__}.{kind.__qualname__}",
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time or time_ns()
        for on_end in self._processor.ends:
            on_end(self)

    def __repr__(self) -> str:
        return f"LeanSpan({self._name!r}, span_id={self.get_span_context().span_id:016x})"


class LeanTracer(trace_api.Tracer):
    """Starts :class:`LeanSpan`s; every span is sampled."""

    def __init__(self, provider: LeanTracerProvider, scope: InstrumentationScope) -> None:
        self._provider = provider
        self._scope = scope

    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        parent = trace_api.get_current_span(context)
        return self._start(name, parent, kind, attributes, links or (), start_time, context)

    def start_child(
        self, name: str, attributes: Attributes, parent: trace_api.Span | None
    ) -> LeanSpan:
        """Start an internal span under ``parent`` (the current span, None for a root): the
        runtime's path, without :meth:`start_span`'s keyword handling and context lookup."""
        if type(parent) is not LeanSpan:
            return self._start(name, parent, SpanKind.INTERNAL, attributes, (), None, None)
        # under one of our own spans, whose context is valid by construction: its fields read
        # straight from the tuple (SpanContext's properties and is_valid are Python calls)
        parent_context: Any = parent._context
        span_context = tuple.__new__(
            SpanContext,
            (
                parent_context[0],
                getrandbits(64) or _nonzero(64),
                False,
                _SAMPLED,
                parent_context[4],
                True,
            ),
        )
        return self._open(
            name, span_context, parent_context, SpanKind.INTERNAL, attributes, (), time_ns(), None
        )

    def _start(
        self,
        name: str,
        parent_span: trace_api.Span | None,
        kind: SpanKind,
        attributes: Attributes,
        links: Sequence[Link],
        start_time: int | None,
        context: context_api.Context | None,
    ) -> LeanSpan:
        parent = parent_span.get_span_context() if parent_span is not None else None
        # SpanContext's constructor re-validates ids we know are valid: build the tuple directly
        if parent is not None and parent.is_valid:
            span_context = tuple.__new__(
                SpanContext,
                (
                    parent.trace_id,
                    getrandbits(64) or _nonzero(64),
                    False,
                    _SAMPLED,
                    parent.trace_state,
                    True,
                ),
            )
            parent_context: SpanContext | None = parent
        else:
            span_context = tuple.__new__(
                SpanContext,
                (_nonzero(128), _nonzero(64), False, _SAMPLED, DEFAULT_TRACE_STATE, True),
            )
            parent_context = None
        return self._open(
            name,
            span_context,
            parent_context,
            kind,
            attributes,
            links,
            start_time or time_ns(),
            context,
        )

    def _open(
        self,
        name: str,
        span_context: SpanContext,
        parent_context: SpanContext | None,
        kind: SpanKind,
        attributes: Attributes,
        links: Sequence[Link],
        start_time: int,
        context: context_api.Context | None,
    ) -> LeanSpan:
        provider = self._provider
        processor = provider.processor
        span = LeanSpan(
            name,
            span_context,
            parent_context,
            kind,
            attributes,
            links,
            start_time,
            provider.resource,
            self._scope,
            processor,
        )
        for on_start in processor.starts:
            on_start(span, context)
        return span

    @_agnosticcontextmanager  # what the API and the SDK decorate it with
    def start_as_current_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace_api.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace_api.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


def _nonzero(bits: int) -> int:
    while True:
        value = random.getrandbits(bits)
        if value:
            return value


class FanOut(SpanProcessor):
    """A processor that passes every call on to its ``targets``, which may change at any time.

    :class:`LeanTracerProvider` sees through it: its spans call the targets' methods directly,
    one call per target instead of three levels of forwarding.
    """

    def __init__(self) -> None:
        self._targets: tuple[SpanProcessor, ...] = ()
        # weak: a provider that is dropped (tests make many) must not be kept alive by this
        self._watchers: weakref.WeakSet[_Processors] = weakref.WeakSet()

    @property
    def targets(self) -> tuple[SpanProcessor, ...]:
        return self._targets

    @targets.setter
    def targets(self, targets: tuple[SpanProcessor, ...]) -> None:
        self._targets = tuple(targets)
        for watcher in self._watchers:
            watcher.refresh()

    def watch(self, watcher: _Processors) -> None:
        self._watchers.add(watcher)

    def on_start(self, span: Any, parent_context: context_api.Context | None = None) -> None:
        for target in self._targets:
            target.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for target in self._targets:
            target.on_end(span)

    def shutdown(self) -> None:
        for target in self._targets:
            target.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(t.force_flush(timeout_millis) for t in self._targets)


class _Processors(SpanProcessor):
    """Every processor added to the provider, called in order; fan-outs flattened into
    ``starts`` and ``ends``, the methods each span calls."""

    def __init__(self) -> None:
        self.processors: tuple[SpanProcessor, ...] = ()
        self.starts: tuple[Any, ...] = ()
        self.ends: tuple[Any, ...] = ()

    def add(self, processor: SpanProcessor) -> None:
        self.processors = (*self.processors, processor)
        if isinstance(processor, FanOut):
            processor.watch(self)
        self.refresh()

    def refresh(self) -> None:
        flat: list[SpanProcessor] = []
        _flatten(self.processors, flat)
        self.starts = tuple(p.on_start for p in flat)
        self.ends = tuple(p.on_end for p in flat)

    def on_start(self, span: Any, parent_context: context_api.Context | None = None) -> None:
        for on_start in self.starts:
            on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for on_end in self.ends:
            on_end(span)

    def shutdown(self) -> None:
        for p in self.processors:
            p.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self.processors)


def _flatten(processors: Sequence[SpanProcessor], into: list[SpanProcessor]) -> None:
    for processor in processors:
        if isinstance(processor, FanOut):
            _flatten(processor.targets, into)
        else:
            into.append(processor)


class LeanTracerProvider(trace_api.TracerProvider):
    """The provider graphtrace installs when the application has none.

    Example::

        provider = LeanTracerProvider(Resource.create({"service.name": "triage"}))
        provider.add_span_processor(my_processor)
        opentelemetry.trace.set_tracer_provider(provider)
    """

    def __init__(self, resource: Resource | None = None) -> None:
        self.resource = resource or Resource.create({})
        self.processor = _Processors()

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> trace_api.Tracer:
        scope = InstrumentationScope(
            instrumenting_module_name or "", instrumenting_library_version, schema_url, attributes
        )
        return LeanTracer(self, scope)

    def add_span_processor(self, processor: SpanProcessor) -> None:
        self.processor.add(processor)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.processor.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.processor.shutdown()
