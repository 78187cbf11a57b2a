"""The lean provider implements the OpenTelemetry trace API the way the SDK does."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracing.provider import FanOut, LeanTracerProvider


class Collect(SpanProcessor):
    def __init__(self) -> None:
        self.started: list[Any] = []
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started.append(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


@pytest.fixture
def setup() -> tuple[trace.Tracer, Collect]:
    provider = LeanTracerProvider(Resource.create({"service.name": "t"}))
    collect = Collect()
    provider.add_span_processor(collect)
    return provider.get_tracer("test", "1.0"), collect


def test_nesting_ids_and_processor_calls(setup: tuple[trace.Tracer, Collect]) -> None:
    tracer, collect = setup
    with tracer.start_as_current_span("outer", attributes={"a": 1}) as outer:
        with tracer.start_as_current_span("inner", kind=SpanKind.CLIENT) as inner:
            assert trace.get_current_span() is inner
        assert trace.get_current_span() is outer
    assert [s.name for s in collect.started] == ["outer", "inner"]
    assert [s.name for s in collect.ended] == ["inner", "outer"]
    o, i = collect.ended[1], collect.ended[0]
    assert isinstance(o, ReadableSpan)
    assert o.parent is None and i.parent is not None and i.parent.span_id == o.context.span_id
    assert i.context.trace_id == o.context.trace_id != 0
    assert i.context.span_id not in (0, o.context.span_id)
    assert i.kind is SpanKind.CLIENT and o.kind is SpanKind.INTERNAL
    assert o.end_time >= i.end_time >= i.start_time >= o.start_time  # type: ignore[operator]
    assert o.resource.attributes["service.name"] == "t"
    assert o.instrumentation_scope.name == "test" and o.instrumentation_scope.version == "1.0"
    assert dict(o.attributes) == {"a": 1}


def test_attribute_values_are_cleaned(setup: tuple[trace.Tracer, Collect]) -> None:
    tracer, collect = setup
    span = tracer.start_span("s", attributes={"list": [1, 2], "ok": "x"})
    span.set_attribute("bad", object())  # type: ignore[arg-type]
    span.set_attributes({"f": 1.5, "b": True})
    span.end()
    span.set_attribute("late", 1)
    assert dict(collect.ended[0].attributes) == {"list": (1, 2), "ok": "x", "f": 1.5, "b": True}


def test_exceptions_status_and_events(setup: tuple[trace.Tracer, Collect]) -> None:
    tracer, collect = setup
    with pytest.raises(KeyError):
        with tracer.start_as_current_span("fails"):
            raise KeyError("k")
    (span,) = collect.ended
    assert span.status.status_code is StatusCode.ERROR
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "KeyError"
    assert "Traceback" in event.attributes["exception.stacktrace"]


def test_status_ok_is_final_and_unset_is_ignored(setup: tuple[trace.Tracer, Collect]) -> None:
    tracer, collect = setup
    span = tracer.start_span("s")
    span.set_status(StatusCode.UNSET)
    assert span.status.status_code is StatusCode.UNSET  # type: ignore[attr-defined]
    span.set_status(Status(StatusCode.OK))
    span.set_status(StatusCode.ERROR, "late")
    span.add_event("e", {"n": 1})
    span.update_name("renamed")
    span.end()
    span.end()  # a second end is ignored
    assert len(collect.ended) == 1
    (s,) = collect.ended
    assert s.status.status_code is StatusCode.OK and s.name == "renamed"
    assert [(e.name, dict(e.attributes)) for e in s.events] == [("e", {"n": 1})]
    assert not span.is_recording()


def test_explicit_parent_context(setup: tuple[trace.Tracer, Collect]) -> None:
    tracer, collect = setup
    parent = tracer.start_span("parent")
    child = tracer.start_span("child", context=trace.set_span_in_context(parent))
    child.end()
    parent.end()
    c = collect.ended[0]
    assert c.parent is not None and c.parent.span_id == parent.get_span_context().span_id


def test_a_fan_out_retargeted_later_reaches_its_new_targets_only() -> None:
    # configure() swaps its router's targets after the provider has flattened them
    provider = LeanTracerProvider()
    router = FanOut()
    provider.add_span_processor(router)
    first, second = Collect(), Collect()
    router.targets = (first,)
    tracer = provider.get_tracer("test")
    tracer.start_span("one").end()
    router.targets = (second,)
    tracer.start_span("two").end()
    assert [s.name for s in first.started] == ["one"] == [s.name for s in first.ended]
    assert [s.name for s in second.started] == ["two"] == [s.name for s in second.ended]
