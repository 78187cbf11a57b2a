"""The OTLP JSON encoder against the spec rules (via the validator) and the reference encoder."""

from __future__ import annotations

import base64
import json
import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from google.protobuf.json_format import MessageToJson, Parse
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    Event,
    ReadableSpan,
    SpanLimits,
    SpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from exporters import otlp_json
from exporters.otlp_json import PendingSpan, encode_batch, encode_value
from tests.otlp_validator import attributes, decode_value, validate_line


class Collect(SpanProcessor):
    """Keeps every finished span, in end order."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


class Env:
    def __init__(self, **provider_kwargs: Any) -> None:
        self.collect = Collect()
        self.provider = TracerProvider(**provider_kwargs)
        self.provider.add_span_processor(self.collect)
        self.tracer = self.provider.get_tracer("graphtrace", "0.1.0")

    @property
    def spans(self) -> list[ReadableSpan]:
        return self.collect.spans


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.provider.shutdown()


# -- the reference path, normalised to the spec's encoding -----------------------------------

_KIND_NUMBER = trace_pb2.Span.SpanKind.Value
_STATUS_NUMBER = trace_pb2.Status.StatusCode.Value


def _b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def _normalise_reference(node: Any) -> Any:
    """MessageToJson output with hex ids and integer enums, as the spec's OTLP JSON has them."""
    if isinstance(node, list):
        return [_normalise_reference(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
            out[key] = _b64_to_hex(value)
        elif key == "kind" and isinstance(value, str):
            out[key] = _KIND_NUMBER(value)
        elif key in ("events", "spans"):
            # graphtrace always writes a name, even an empty one (the proto calls it required)
            out[key] = [{"name": "", **_normalise_reference(item)} for item in value]
        elif key == "status":
            status = {k: v for k, v in value.items()}
            if "code" in status:
                status["code"] = _STATUS_NUMBER(status["code"])
            if status:  # the reference writes an UNSET status as {}; graphtrace leaves it out
                out[key] = status
        else:
            out[key] = _normalise_reference(value)
    return out


def reference_doc(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    return _normalise_reference(json.loads(MessageToJson(encode_spans(spans))))


def _mask_trace_flags(node: Any) -> Any:
    """Our flags also carry the W3C trace flags (bits 0-7, per trace.proto); the reference's
    do not, so they are compared without them."""
    if isinstance(node, list):
        return [_mask_trace_flags(item) for item in node]
    if isinstance(node, dict):
        return {k: (v & ~0xFF if k == "flags" else _mask_trace_flags(v)) for k, v in node.items()}
    return node


def our_doc(spans: Sequence[Any]) -> dict[str, Any]:
    line = encode_batch(spans)
    validate_line(line)
    return json.loads(line)


def _differences(ours: Any, ref: Any, path: str = "$") -> list[str]:
    if isinstance(ours, dict) and isinstance(ref, dict):
        out = []
        for key in sorted(set(ours) | set(ref)):
            if key not in ref:
                out.append(f"{path}.{key}: only ours has it: {ours[key]!r:.100}")
            elif key not in ours:
                out.append(f"{path}.{key}: only the reference has it: {ref[key]!r:.100}")
            else:
                out += _differences(ours[key], ref[key], f"{path}.{key}")
        return out
    if isinstance(ours, list) and isinstance(ref, list) and len(ours) == len(ref):
        return [
            d
            for i, (a, b) in enumerate(zip(ours, ref, strict=True))
            for d in _differences(a, b, f"{path}[{i}]")
        ]
    if ours == ref or (ours != ours and ref != ref):
        return []
    return [f"{path}: ours {ours!r:.100} != reference {ref!r:.100}"]


def assert_same_as_reference(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    ours = our_doc(spans)
    differences = _differences(_mask_trace_flags(ours), _mask_trace_flags(reference_doc(spans)))
    assert not differences, "\n".join(differences)
    return ours


def only_span(doc: dict[str, Any]) -> dict[str, Any]:
    (rs,) = doc["resourceSpans"]
    (ss,) = rs["scopeSpans"]
    (span,) = ss["spans"]
    return span


# -- spans made by the SDK -------------------------------------------------------------------

ALL_TYPES: dict[str, Any] = {
    "str": "plain",
    "empty_str": "",
    "bool_true": True,
    "bool_false": False,
    "int": 5,
    "int_negative": -42,
    "int64_max": 2**63 - 1,
    "int64_min": -(2**63),
    "zero": 0,
    "float": 0.1,
    "float_negative_zero": -0.0,
    "float_huge": 1e300,
    "float_tiny": 5e-324,
    "float_integral": 3.0,
    "nan": float("nan"),
    "inf": float("inf"),
    "minus_inf": float("-inf"),
    "str_array": ("a", 'b"c', "é"),
    "bool_array": [True, False],
    "int_array": (1, -2, 2**62),
    "float_array": (1.5, float("nan")),
    "empty_array": (),
    "bytes": b"\x00\xff\x10binary",
    "none_in_array": ("x", None),
    "nested_array": ((1, 2), ("a",)),
    "mapping": {"inner": 1, "deeper": {"x": [True]}},
    "empty_mapping": {},
}


def test_every_attribute_type_matches_the_reference(env: Env) -> None:
    with env.tracer.start_as_current_span("types", attributes=ALL_TYPES):
        pass
    doc = assert_same_as_reference(env.spans)
    decoded = attributes(only_span(doc))
    assert list(decoded) == list(ALL_TYPES)  # order kept
    for key, expected in ALL_TYPES.items():
        got = decoded[key]
        if isinstance(expected, float) and math.isnan(expected):
            assert math.isnan(got)
        elif key == "float_array":
            assert got[0] == 1.5 and math.isnan(got[1])
        elif key == "nested_array":
            assert got == [[1, 2], ["a"]]
        elif isinstance(expected, (tuple, list)):
            assert got == list(expected)
        else:
            assert got == expected and type(got) is type(expected), key


def test_typed_value_shapes_follow_the_spec(env: Env) -> None:
    with env.tracer.start_as_current_span("shapes", attributes=ALL_TYPES):
        pass
    raw = {kv["key"]: kv["value"] for kv in only_span(our_doc(env.spans))["attributes"]}
    assert raw["int"] == {"intValue": "5"}
    assert raw["int_negative"] == {"intValue": "-42"}
    assert raw["int64_min"] == {"intValue": str(-(2**63))}
    assert raw["bool_true"] == {"boolValue": True}
    assert raw["float"] == {"doubleValue": 0.1}
    assert raw["nan"] == {"doubleValue": "NaN"}
    assert raw["inf"] == {"doubleValue": "Infinity"}
    assert raw["minus_inf"] == {"doubleValue": "-Infinity"}
    assert raw["empty_array"] == {"arrayValue": {}}
    assert raw["bytes"] == {"bytesValue": base64.b64encode(ALL_TYPES["bytes"]).decode()}
    assert raw["none_in_array"] == {"arrayValue": {"values": [{"stringValue": "x"}, {}]}}
    assert raw["str_array"]["arrayValue"]["values"][1] == {"stringValue": 'b"c'}


def test_span_fields_ids_times_kind_status(env: Env) -> None:
    with env.tracer.start_as_current_span("parent") as parent:
        with env.tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "boom: it broke"))
    doc = assert_same_as_reference(env.spans)
    spans = {s["name"]: s for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]}
    child_ctx, parent_ctx = child.get_span_context(), parent.get_span_context()
    c, p = spans["child"], spans["parent"]
    assert c["traceId"] == f"{child_ctx.trace_id:032x}" == p["traceId"]
    assert c["spanId"] == f"{child_ctx.span_id:016x}"
    assert c["parentSpanId"] == f"{parent_ctx.span_id:016x}" == p["spanId"]
    assert "parentSpanId" not in p
    assert c["kind"] == 3 and p["kind"] == 1
    assert c["status"] == {"code": 2, "message": "boom: it broke"}
    assert "status" not in p  # UNSET is the default, left out
    assert c["startTimeUnixNano"] == str(env.spans[0].start_time)
    assert c["endTimeUnixNano"] == str(env.spans[0].end_time)
    assert c["flags"] & 0xFF == int(child_ctx.trace_flags)
    assert c["flags"] & 0x300 == 0x100  # parent known to be local
    for span in (c, p):
        assert not {"events", "links", "attributes", "droppedAttributesCount"} & set(span)


@pytest.mark.parametrize(
    ("kind", "number"),
    [
        (SpanKind.INTERNAL, 1),
        (SpanKind.SERVER, 2),
        (SpanKind.CLIENT, 3),
        (SpanKind.PRODUCER, 4),
        (SpanKind.CONSUMER, 5),
    ],
)
def test_kind_numbers(env: Env, kind: SpanKind, number: int) -> None:
    with env.tracer.start_as_current_span("k", kind=kind):
        pass
    assert only_span(assert_same_as_reference(env.spans))["kind"] == number


def test_status_ok_has_code_and_no_message(env: Env) -> None:
    with env.tracer.start_as_current_span("ok") as span:
        span.set_status(Status(StatusCode.OK))
    assert only_span(assert_same_as_reference(env.spans))["status"] == {"code": 1}


def test_events_and_exceptions(env: Env) -> None:
    with env.tracer.start_as_current_span("node Triage", record_exception=False) as span:
        span.add_event("plain")
        span.add_event("with attrs", {"n": 1, "s": "x"}, timestamp=1_700_000_000_123_456_789)
        try:
            raise ValueError('bad "value"\nsecond line')
        except ValueError as error:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
    span_doc = only_span(assert_same_as_reference(env.spans))
    plain, with_attrs, exception = span_doc["events"]
    assert set(plain) == {"timeUnixNano", "name"} and plain["name"] == "plain"
    assert with_attrs["timeUnixNano"] == "1700000000123456789"
    assert attributes(with_attrs) == {"n": 1, "s": "x"}
    assert exception["name"] == "exception"
    exc = attributes(exception)
    assert exc["exception.type"] == "ValueError"
    assert exc["exception.message"] == 'bad "value"\nsecond line'
    assert "Traceback" in exc["exception.stacktrace"]
    assert span_doc["status"] == {"code": 2, "message": 'bad "value"\nsecond line'}


def test_links_and_remote_parent_with_trace_state(env: Env) -> None:
    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1"), ("other", "o-2")]),
    )
    with env.tracer.start_as_current_span("linked-to") as target:
        pass
    link = Link(target.get_span_context(), {"link.reason": "retry", "n": 2})
    with env.tracer.start_as_current_span(
        "remote child", context=set_span_in_context(NonRecordingSpan(remote)), links=[link]
    ):
        pass
    doc = assert_same_as_reference(env.spans)
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    assert span["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert span["parentSpanId"] == "b7ad6b7169203331"
    assert span["traceState"] == "vendor=v1,other=o-2"
    assert span["flags"] == 0x300 | TraceFlags.SAMPLED
    (link_doc,) = span["links"]
    assert link_doc["spanId"] == f"{target.get_span_context().span_id:016x}"
    assert attributes(link_doc) == {"link.reason": "retry", "n": 2}


def test_dropped_counts() -> None:
    env = Env(span_limits=SpanLimits(max_attributes=2, max_events=1, max_links=1))
    other = SpanContext(1, 2, is_remote=False)
    with env.tracer.start_as_current_span(
        "limited", attributes={"a": 1, "b": 2, "c": 3}, links=[Link(other), Link(other)]
    ) as span:
        span.add_event("e1")
        span.add_event("e2", {"x": 1, "y": 2, "z": 3})
    span_doc = only_span(assert_same_as_reference(env.spans))
    assert span_doc["droppedAttributesCount"] == 1
    assert span_doc["droppedEventsCount"] == 1
    assert span_doc["droppedLinksCount"] == 1
    assert span_doc["events"][0]["droppedAttributesCount"] == 1


@pytest.mark.parametrize(
    "text",
    [
        'quote " backslash \\ slash /',
        "controls \x00 \x01 \x08 \t \n \r \x1f \x7f",
        "unicode é ü ß 中文 日本語 🤖 \U0010ffff",
        "line separators \u2028 \u2029 \x85 and \ufeff",
        "",
    ],
)
def test_strings_are_escaped_exactly(env: Env, text: str) -> None:
    with env.tracer.start_as_current_span(
        f"node {text}", attributes={text or "empty": text, "arr": (text, text)}
    ) as span:
        span.add_event(text, {"k": text})
        span.set_status(Status(StatusCode.ERROR, text or None))
    line = encode_batch(env.spans)
    # one physical line even for readers that also break at U+2028/U+2029/NEL
    assert len(line.splitlines()) == 1
    span_doc = only_span(assert_same_as_reference(env.spans))
    assert span_doc["name"] == f"node {text}"
    assert attributes(span_doc)[text or "empty"] == text
    assert span_doc["events"][0]["name"] == text


def test_resource_and_scope_headers() -> None:
    resource = Resource.create({"service.name": "svc", "n": 3}, schema_url="https://s/1.0")
    env = Env(resource=resource)
    tracer = env.provider.get_tracer("lib", None, schema_url="https://s/2.0", attributes={"a": 1})
    with tracer.start_as_current_span("a"):
        pass
    with env.tracer.start_as_current_span("b"):
        pass
    doc = assert_same_as_reference(env.spans)
    (rs,) = doc["resourceSpans"]
    assert rs["schemaUrl"] == "https://s/1.0"
    assert attributes(rs["resource"])["service.name"] == "svc"
    lib, graphtrace = rs["scopeSpans"]
    assert lib["scope"] == {"name": "lib", "attributes": [{"key": "a", "value": {"intValue": "1"}}]}
    assert lib["schemaUrl"] == "https://s/2.0"
    assert graphtrace["scope"] == {"name": "graphtrace", "version": "0.1.0"}
    assert "schemaUrl" not in graphtrace


def test_grouping_by_resource_then_scope_keeps_order() -> None:
    r1 = Resource({"service.name": "one"})
    r1_twin = Resource({"service.name": "one"})  # equal, not identical: same group
    r2 = Resource({"service.name": "two"})
    s1 = InstrumentationScope("s1")
    s2 = InstrumentationScope("s2", "2.0")

    def span(name: str, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
        ctx = SpanContext(0xABC, random.getrandbits(64) or 1, is_remote=False)
        return ReadableSpan(
            name,
            context=ctx,
            resource=resource,
            instrumentation_scope=scope,
            start_time=1,
            end_time=2,
        )

    items = [
        span("a", r1, s1),
        span("b", r2, s1),
        span("c", r1, s2),
        span("d", r1_twin, s1),
        span("e", r2, s1),
        span("f", r1, s2),
    ]
    doc = our_doc(items)
    layout = [
        (
            attributes(rs["resource"])["service.name"],
            [(ss["scope"]["name"], [s["name"] for s in ss["spans"]]) for ss in rs["scopeSpans"]],
        )
        for rs in doc["resourceSpans"]
    ]
    assert layout == [
        ("one", [("s1", ["a", "d"]), ("s2", ["c", "f"])]),
        ("two", [("s1", ["b", "e"])]),
    ]
    assert _mask_trace_flags(doc) == _mask_trace_flags(reference_doc(items))


def test_many_spans_in_one_line_agree_with_the_reference(env: Env) -> None:
    rng = random.Random(7)
    for i in range(300):
        with env.tracer.start_as_current_span(f"run {i % 3}", attributes={"i": i}):
            with env.tracer.start_as_current_span(
                "node Triage",
                attributes={
                    "graphtrace.node.state": json.dumps({"t": "x" * rng.randint(0, 300), "i": i}),
                    "graphtrace.node.step": i,
                    "score": rng.random(),
                    "tags": ("a", "b"),
                },
            ) as span:
                if i % 7 == 0:
                    span.add_event("tick", {"n": i})
    assert_same_as_reference(env.spans)


def test_protobuf_json_parser_accepts_the_line(env: Env) -> None:
    """A protobuf JSON parser (what other OTLP tools use) reads our numbers, enums, nested
    values and field names once the ids are turned back into protobuf's base64."""
    with env.tracer.start_as_current_span("root", attributes=ALL_TYPES) as span:
        span.add_event("e", {"x": 1})
        span.set_status(Status(StatusCode.ERROR, "no"))
    doc = our_doc(env.spans)

    def ids_to_b64(node: Any) -> Any:
        if isinstance(node, list):
            return [ids_to_b64(x) for x in node]
        if isinstance(node, dict):
            return {
                k: (
                    base64.b64encode(bytes.fromhex(v)).decode()
                    if k in ("traceId", "spanId", "parentSpanId")
                    else ids_to_b64(v)
                )
                for k, v in node.items()
            }
        return node

    parsed = Parse(json.dumps(ids_to_b64(doc)), trace_pb2.TracesData())
    expected = encode_spans(env.spans).resource_spans[0].scope_spans[0].spans[0]
    got = parsed.resource_spans[0].scope_spans[0].spans[0]
    assert got.span_id == expected.span_id and got.trace_id == expected.trace_id
    assert got.kind == trace_pb2.Span.SPAN_KIND_INTERNAL
    assert got.status.code == trace_pb2.Status.STATUS_CODE_ERROR
    assert got.attributes == expected.attributes


# -- values the reference cannot encode -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2**63, {"stringValue": str(2**63)}),
        (-(2**63) - 1, {"stringValue": str(-(2**63) - 1)}),
        (2**100, {"stringValue": str(2**100)}),
        (None, {}),
        (bytearray(b"ab"), {"bytesValue": "YWI="}),
        (True, {"boolValue": True}),  # bool before int
        (StatusCode.ERROR, {"stringValue": "StatusCode.ERROR"}),
        (object, {"stringValue": "<class 'object'>"}),
    ],
)
def test_encode_value_edge_cases(value: Any, expected: dict[str, Any]) -> None:
    assert json.loads(encode_value(value)) == expected


def test_int_and_str_subclasses_use_their_base_encoding() -> None:
    from enum import IntEnum, StrEnum

    class Level(IntEnum):
        HIGH = 3

    class Color(StrEnum):
        RED = "red"

    assert json.loads(encode_value(Level.HIGH)) == {"intValue": "3"}
    assert json.loads(encode_value(Color.RED)) == {"stringValue": "red"}
    assert json.loads(encode_value([Level.HIGH, 1.5])) == {
        "arrayValue": {"values": [{"intValue": "3"}, {"doubleValue": 1.5}]}
    }


def test_big_int_attribute_keeps_the_line_valid(env: Env) -> None:
    with env.tracer.start_as_current_span("big", attributes={"big": 2**64, "ok": 1}):
        pass
    span_doc = only_span(our_doc(env.spans))
    assert attributes(span_doc) == {"big": str(2**64), "ok": 1}


def test_unended_span_becomes_zero_length() -> None:
    span = ReadableSpan("open", context=SpanContext(5, 6, is_remote=False), start_time=100)
    span_doc = only_span(our_doc([span]))
    assert span_doc["startTimeUnixNano"] == span_doc["endTimeUnixNano"] == "100"


def test_lone_surrogate_is_encodable_as_an_escape(env: Env) -> None:
    with env.tracer.start_as_current_span("s", attributes={"k": "bad \udc80 byte"}):
        pass
    line = encode_batch(env.spans)
    data = line.encode("utf-8", "backslashreplace")  # what the file writer does
    doc = json.loads(data.decode("utf-8"))
    assert attributes(only_span(doc))["k"] == "bad \udc80 byte"


def test_subclass_overriding_a_property_is_read_through_the_property() -> None:
    class Renamed(ReadableSpan):
        @property
        def name(self) -> str:
            return "renamed"

        @property
        def attributes(self) -> Any:
            return {"from": "property"}

    events: BoundedList[Event] = BoundedList(1)
    events.extend([Event("first", timestamp=5), Event("second", {"k": "v"}, timestamp=6)])
    span = Renamed(
        "orig",
        context=SpanContext(5, 6, is_remote=False),
        attributes=BoundedAttributes(1, {"from": "field", "other": 1}),
        events=events,
        start_time=1,
        end_time=2,
    )
    span_doc = only_span(our_doc([span]))
    assert span_doc["name"] == "renamed"
    assert attributes(span_doc) == {"from": "property"}
    # the counts still come from the span, through the public properties
    assert span_doc["droppedAttributesCount"] == 1
    assert span_doc["droppedEventsCount"] == 1
    assert [e["name"] for e in span_doc["events"]] == ["second"]


def test_public_property_path_gives_the_same_line(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an SDK without the private fields the fast path reads would get."""
    with env.tracer.start_as_current_span("root", attributes=ALL_TYPES, links=[]) as span:
        span.add_event("e", {"k": 1})
        span.set_status(Status(StatusCode.ERROR, "x"))
    with env.tracer.start_as_current_span("other", links=[Link(span.get_span_context())]):
        pass
    fast = encode_batch(env.spans)
    monkeypatch.setattr(otlp_json, "_SDK_INTERNALS", False)
    monkeypatch.setattr(otlp_json, "_SDK_LAYOUT", {})
    monkeypatch.setattr(otlp_json, "_FAST_ATTRIBUTES", otlp_json._Never)
    monkeypatch.setattr(otlp_json, "_FAST_LIST", otlp_json._Never)
    assert encode_batch(env.spans) == fast
    assert otlp_json._SDK_LAYOUT == {type(env.spans[0]): False}


# -- pending records ----------------------------------------------------------------------------


def _pending(env: Env, **overrides: Any) -> PendingSpan:
    resource = env.provider.resource
    fields: dict[str, Any] = {
        "name": "node Triage",
        "trace_id": 0x1234,
        "span_id": 0xFEDCBA9876543210,
        "start_time": 1_700_000_000_000_000_001,
        "attributes": {"graphtrace.run.id": "r1", "graphtrace.node.step": 2},
        "kind": 1,
        "resource": resource,
        "scope": InstrumentationScope("graphtrace", "0.1.0"),
    }
    fields.update(overrides)
    return PendingSpan(**fields)


def test_pending_span_is_a_zero_length_child_marked_pending(env: Env) -> None:
    item = _pending(env)
    span_doc = only_span(our_doc([item]))
    assert span_doc["traceId"] == "00000000000000000000000000001234"
    assert span_doc["parentSpanId"] == "fedcba9876543210"
    assert span_doc["spanId"] != span_doc["parentSpanId"]
    assert span_doc["startTimeUnixNano"] == span_doc["endTimeUnixNano"] == "1700000000000000001"
    assert span_doc["name"] == "node Triage" and span_doc["kind"] == 1
    assert attributes(span_doc) == {
        "graphtrace.run.id": "r1",
        "graphtrace.node.step": 2,
        "graphtrace.pending": True,
    }
    assert "status" not in span_doc and "events" not in span_doc


def test_pending_span_ids_are_fresh_each_time(env: Env) -> None:
    item = _pending(env)
    ids = {only_span(our_doc([item]))["spanId"] for _ in range(50)}
    assert len(ids) == 50


def test_pending_span_id_is_never_zero(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([0, 0, 5])
    monkeypatch.setattr(otlp_json.random, "getrandbits", lambda bits: next(draws))
    assert only_span(our_doc([_pending(env)]))["spanId"] == "0000000000000005"


def test_pending_marker_is_not_duplicated(env: Env) -> None:
    item = _pending(env, attributes={"graphtrace.pending": False, "x": "y"})
    span_doc = only_span(our_doc([item]))  # the validator rejects duplicate keys
    assert attributes(span_doc) == {"x": "y", "graphtrace.pending": True}


def test_pending_without_attributes_or_scope(env: Env) -> None:
    item = _pending(env, attributes={}, scope=None, kind=3)
    doc = our_doc([item])
    (ss,) = doc["resourceSpans"][0]["scopeSpans"]
    assert "scope" not in ss
    (span_doc,) = ss["spans"]
    assert span_doc["kind"] == 3
    assert attributes(span_doc) == {"graphtrace.pending": True}


def test_pending_and_final_spans_share_groups(env: Env) -> None:
    with env.tracer.start_as_current_span("node Triage", attributes={"a": 1}):
        pass
    (span,) = env.spans
    ctx = span.context
    pending = PendingSpan(
        name=span.name,
        trace_id=ctx.trace_id,
        span_id=ctx.span_id,
        start_time=span.start_time or 0,
        attributes=dict(span.attributes or {}),
        kind=span.kind.value + 1,
        resource=span.resource,
        scope=span.instrumentation_scope,
    )
    doc = our_doc([pending, *env.spans])
    (rs,) = doc["resourceSpans"]
    (ss,) = rs["scopeSpans"]
    first, final = ss["spans"]
    assert first["parentSpanId"] == final["spanId"]
    assert first["startTimeUnixNano"] == final["startTimeUnixNano"]
    assert attributes(first) == {"a": 1, "graphtrace.pending": True}
    assert attributes(final) == {"a": 1}


def test_empty_batch_is_a_valid_document() -> None:
    assert encode_batch([]) == '{"resourceSpans":[]}'
    assert validate_line(encode_batch([])) == []


# -- the validator itself: it must reject what the spec forbids ------------------------------


def _valid_doc(env: Env) -> dict[str, Any]:
    with env.tracer.start_as_current_span("p", attributes={"i": 1, "a": (1, 2)}) as parent:
        with env.tracer.start_as_current_span("c") as child:
            child.add_event("e")
            child.set_status(Status(StatusCode.ERROR, "x"))
    assert parent
    return json.loads(encode_batch(env.spans))


def _first_span(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]


def _parent_span(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]


MUTATIONS = {
    "uppercase hex": (
        lambda d: _first_span(d).update(traceId=_first_span(d)["traceId"].upper()),
        "traceId",
    ),
    "base64 id": (lambda d: _first_span(d).update(spanId="rhOkKC09TJU="), "spanId"),
    "zero trace id": (lambda d: _first_span(d).update(traceId="0" * 32), "all-zero"),
    "short parent id": (lambda d: _first_span(d).update(parentSpanId="abc"), "parentSpanId"),
    "kind as name": (lambda d: _first_span(d).update(kind="SPAN_KIND_INTERNAL"), "kind"),
    "kind out of range": (lambda d: _first_span(d).update(kind=6), "kind"),
    "time as number": (lambda d: _first_span(d).update(startTimeUnixNano=5), "startTimeUnixNano"),
    "end before start": (
        lambda d: _first_span(d).update(endTimeUnixNano="0"),
        "before startTimeUnixNano",
    ),
    "snake case field": (lambda d: _first_span(d).update(parent_span_id="00"), "parent_span_id"),
    "status code name": (
        lambda d: _first_span(d)["status"].update(code="STATUS_CODE_ERROR"),
        "status.code",
    ),
    "empty events": (lambda d: _parent_span(d).update(events=[]), "empty list"),
    "event time number": (
        lambda d: _first_span(d)["events"][0].update(timeUnixNano=1),
        "events[0].timeUnixNano",
    ),
    "int as number": (
        lambda d: _parent_span(d)["attributes"][0]["value"].update(intValue=1),
        "intValue",
    ),
    "int out of int64": (
        lambda d: _parent_span(d)["attributes"][0]["value"].update(intValue=str(2**63)),
        "int64",
    ),
    "two typed values": (
        lambda d: _parent_span(d)["attributes"][0]["value"].update(stringValue="1"),
        "more than one",
    ),
    "array element untyped": (
        lambda d: _parent_span(d)["attributes"][1]["value"]["arrayValue"]["values"].append(3),
        "values[2]",
    ),
    "duplicate attribute": (
        lambda d: _parent_span(d)["attributes"].append(_parent_span(d)["attributes"][0]),
        "duplicate attribute key",
    ),
    "double as string": (
        lambda d: _parent_span(d)["attributes"][0].update(value={"doubleValue": "1.5"}),
        "doubleValue",
    ),
    "missing resourceSpans": (lambda d: d.update(resourceSpans=None), "resourceSpans"),
    "zero dropped count": (
        lambda d: _first_span(d).update(droppedAttributesCount=0),
        "zero count",
    ),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_validator_rejects(env: Env, mutation: str) -> None:
    doc = _valid_doc(env)
    validate_line(json.dumps(doc))  # valid before the change
    change, message = MUTATIONS[mutation]
    change(doc)
    with pytest.raises(AssertionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_line(json.dumps(doc))


def test_validator_rejects_non_json_constants_and_duplicate_keys() -> None:
    with pytest.raises(AssertionError, match="NaN"):
        validate_line('{"resourceSpans":[],"x":NaN}')
    with pytest.raises(AssertionError, match="duplicate JSON key"):
        validate_line('{"resourceSpans":[],"resourceSpans":[]}')
    with pytest.raises(AssertionError, match="single line"):
        validate_line('{"resourceSpans":\n[]}')


def test_decode_value_round_trips_encode_value() -> None:
    for value in ["s", 1, -1, True, 2.5, ["a", "b"], [], b"\x00", {"k": [1]}]:
        assert decode_value(json.loads(encode_value(value))) == value
