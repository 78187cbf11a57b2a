"""A strict checker for the OTLP JSON lines graphtrace writes, for use by any test.

It checks the OTLP JSON encoding of the OpenTelemetry specification (not protobuf's default JSON
mapping): lowerCamelCase field names only, lowercase hex ids, integer enums, 64-bit integers as
decimal strings, typed attribute values. With ``canonical=True`` (the default) it also checks what
graphtrace's encoder promises beyond the spec: empty lists and zero counts are left out, and every
span has a ``kind``.

    spans = validate_line(line)           # AssertionError naming the path at fault
    spans = read_spans(trace_dir)          # every line of every *.jsonl file
    attributes(span)["graphtrace.node.step"] == 2
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["attributes", "decode_value", "read_spans", "validate_line"]

_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_UINT = re.compile(r"[0-9]+")
_INT = re.compile(r"-?[0-9]+")
_UINT64_MAX = 2**64 - 1
_UINT32_MAX = 2**32 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_SPECIAL_DOUBLES = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_VALUE_KEYS = frozenset(
    {
        "stringValue",
        "boolValue",
        "intValue",
        "doubleValue",
        "arrayValue",
        "kvlistValue",
        "bytesValue",
    }
)

_TOP_FIELDS = frozenset({"resourceSpans"})
_RESOURCE_SPANS_FIELDS = frozenset({"resource", "scopeSpans", "schemaUrl"})
_RESOURCE_FIELDS = frozenset({"attributes", "droppedAttributesCount", "entityRefs"})
_SCOPE_SPANS_FIELDS = frozenset({"scope", "spans", "schemaUrl"})
_SCOPE_FIELDS = frozenset({"name", "version", "attributes", "droppedAttributesCount"})
_SPAN_FIELDS = frozenset(
    {
        "traceId",
        "spanId",
        "traceState",
        "parentSpanId",
        "flags",
        "name",
        "kind",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "attributes",
        "droppedAttributesCount",
        "events",
        "droppedEventsCount",
        "links",
        "droppedLinksCount",
        "status",
    }
)
_EVENT_FIELDS = frozenset({"timeUnixNano", "name", "attributes", "droppedAttributesCount"})
_LINK_FIELDS = frozenset(
    {"traceId", "spanId", "traceState", "attributes", "droppedAttributesCount", "flags"}
)
_STATUS_FIELDS = frozenset({"code", "message"})


class _Checker:
    def __init__(self, canonical: bool) -> None:
        self.canonical = canonical

    # -- primitives -------------------------------------------------------------------------

    @staticmethod
    def fail(path: str, message: str) -> None:
        raise AssertionError(f"{path}: {message}")

    def obj(self, value: Any, path: str, fields: frozenset[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {type(value).__name__} {value!r:.80}")
        unknown = sorted(set(value) - fields)
        if unknown:
            self.fail(path, f"unknown field(s) {unknown}; allowed: {sorted(fields)}")
        return value

    def lst(self, value: Any, path: str, *, may_be_empty: bool = False) -> list[Any]:
        if not isinstance(value, list):
            self.fail(path, f"expected a list, got {type(value).__name__} {value!r:.80}")
        if self.canonical and not may_be_empty and not value:
            self.fail(path, "empty list: graphtrace leaves empty lists out")
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {type(value).__name__} {value!r:.80}")
        return value

    def integer(self, value: Any, path: str, low: int, high: int) -> int:
        # bool is an int subclass, but `true` is not a valid integer in JSON-encoded protobuf
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(path, f"expected a JSON integer, got {type(value).__name__} {value!r:.80}")
        if not low <= value <= high:
            self.fail(path, f"integer {value} out of range {low}..{high}")
        return value

    def count(self, value: Any, path: str) -> None:
        self.integer(value, path, 0, _UINT32_MAX)
        if self.canonical and value == 0:
            self.fail(path, "zero count: graphtrace leaves zero counts out")

    def uint64_string(self, value: Any, path: str) -> int:
        if not isinstance(value, str) or not _UINT.fullmatch(value):
            self.fail(path, f"expected a decimal string of a uint64, got {value!r:.80}")
        number = int(value)
        if number > _UINT64_MAX:
            self.fail(path, f"{value} does not fit in uint64")
        return number

    def hex_id(self, value: Any, path: str, length: int) -> str:
        pattern = _HEX32 if length == 32 else _HEX16
        if not isinstance(value, str) or not pattern.fullmatch(value):
            self.fail(path, f"expected {length} lowercase hex digits, got {value!r:.80}")
        if value == "0" * length:
            self.fail(path, "all-zero id is invalid")
        return value

    # -- messages ---------------------------------------------------------------------------

    def any_value(self, value: Any, path: str) -> None:
        value = self.obj(value, path, _VALUE_KEYS)
        if len(value) > 1:
            self.fail(path, f"more than one typed value: {sorted(value)}")
        if not value:
            return  # an empty AnyValue is valid OTLP (the SDK's None inside an array)
        ((kind, inner),) = value.items()
        where = f"{path}.{kind}"
        if kind == "stringValue":
            self.string(inner, where)
        elif kind == "boolValue":
            if not isinstance(inner, bool):
                self.fail(where, f"expected true/false, got {inner!r:.80}")
        elif kind == "intValue":
            if not isinstance(inner, str) or not _INT.fullmatch(inner):
                self.fail(where, f"expected a decimal string of an int64, got {inner!r:.80}")
            if not _INT64_MIN <= int(inner) <= _INT64_MAX:
                self.fail(where, f"{inner} does not fit in int64")
        elif kind == "doubleValue":
            if isinstance(inner, bool) or not (
                isinstance(inner, (int, float)) or inner in _SPECIAL_DOUBLES
            ):
                self.fail(where, f"expected a number or NaN/Infinity/-Infinity, got {inner!r:.80}")
        elif kind == "bytesValue":
            self.string(inner, where)
            try:
                base64.b64decode(inner, validate=True)
            except (binascii.Error, ValueError) as error:
                self.fail(where, f"not standard base64: {error}")
        elif kind == "arrayValue":
            array = self.obj(inner, where, frozenset({"values"}))
            if "values" in array:
                values = self.lst(array["values"], f"{where}.values")
                for i, item in enumerate(values):
                    self.any_value(item, f"{where}.values[{i}]")
        else:  # kvlistValue
            kvlist = self.obj(inner, where, frozenset({"values"}))
            if "values" in kvlist:
                self.key_values(kvlist["values"], f"{where}.values")

    def key_values(self, value: Any, path: str) -> None:
        seen: set[str] = set()
        for i, item in enumerate(self.lst(value, path)):
            where = f"{path}[{i}]"
            item = self.obj(item, where, frozenset({"key", "value"}))
            if "key" not in item or "value" not in item:
                self.fail(where, f"a KeyValue needs both key and value, got {sorted(item)}")
            key = self.string(item["key"], f"{where}.key")
            if key in seen:
                self.fail(f"{where}.key", f"duplicate attribute key {key!r}")
            seen.add(key)
            self.any_value(item["value"], f"{where}.value")

    def attribute_holder(self, obj: dict[str, Any], path: str) -> None:
        if "attributes" in obj:
            self.key_values(obj["attributes"], f"{path}.attributes")
        if "droppedAttributesCount" in obj:
            self.count(obj["droppedAttributesCount"], f"{path}.droppedAttributesCount")

    def span(self, value: Any, path: str) -> dict[str, Any]:
        span = self.obj(value, path, _SPAN_FIELDS)
        for required in ("traceId", "spanId", "name", "startTimeUnixNano", "endTimeUnixNano"):
            if required not in span:
                self.fail(path, f"missing {required}")
        if self.canonical and "kind" not in span:
            self.fail(path, "missing kind")
        self.hex_id(span["traceId"], f"{path}.traceId", 32)
        self.hex_id(span["spanId"], f"{path}.spanId", 16)
        if "parentSpanId" in span:
            self.hex_id(span["parentSpanId"], f"{path}.parentSpanId", 16)
            if span["parentSpanId"] == span["spanId"]:
                self.fail(f"{path}.parentSpanId", "a span cannot be its own parent")
        if "traceState" in span:
            self.string(span["traceState"], f"{path}.traceState")
        if "flags" in span:
            self.integer(span["flags"], f"{path}.flags", 0, _UINT32_MAX)
        self.string(span["name"], f"{path}.name")
        if "kind" in span:
            self.integer(span["kind"], f"{path}.kind", 0, 5)
        start = self.uint64_string(span["startTimeUnixNano"], f"{path}.startTimeUnixNano")
        end = self.uint64_string(span["endTimeUnixNano"], f"{path}.endTimeUnixNano")
        if end < start:
            self.fail(path, f"endTimeUnixNano {end} is before startTimeUnixNano {start}")
        self.attribute_holder(span, path)
        events = self.lst(span["events"], f"{path}.events") if "events" in span else []
        for i, event in enumerate(events):
            where = f"{path}.events[{i}]"
            event = self.obj(event, where, _EVENT_FIELDS)
            if "timeUnixNano" not in event:
                self.fail(where, "missing timeUnixNano")
            self.uint64_string(event["timeUnixNano"], f"{where}.timeUnixNano")
            self.string(event.get("name", ""), f"{where}.name")
            self.attribute_holder(event, where)
        links = self.lst(span["links"], f"{path}.links") if "links" in span else []
        for i, link in enumerate(links):
            where = f"{path}.links[{i}]"
            link = self.obj(link, where, _LINK_FIELDS)
            for required in ("traceId", "spanId"):
                if required not in link:
                    self.fail(where, f"missing {required}")
            self.hex_id(link["traceId"], f"{where}.traceId", 32)
            self.hex_id(link["spanId"], f"{where}.spanId", 16)
            if "traceState" in link:
                self.string(link["traceState"], f"{where}.traceState")
            if "flags" in link:
                self.integer(link["flags"], f"{where}.flags", 0, _UINT32_MAX)
            self.attribute_holder(link, where)
        for name in ("droppedEventsCount", "droppedLinksCount"):
            if name in span:
                self.count(span[name], f"{path}.{name}")
        if "status" in span:
            status = self.obj(span["status"], f"{path}.status", _STATUS_FIELDS)
            if "code" in status:
                self.integer(status["code"], f"{path}.status.code", 0, 2)
            if "message" in status:
                self.string(status["message"], f"{path}.status.message")
            if self.canonical and not status.get("code") and not status.get("message"):
                self.fail(f"{path}.status", "an UNSET status without message is left out")
        return span

    def document(self, doc: Any) -> list[dict[str, Any]]:
        doc = self.obj(doc, "$", _TOP_FIELDS)
        if "resourceSpans" not in doc:
            self.fail("$", "missing resourceSpans")
        spans: list[dict[str, Any]] = []
        for i, rs in enumerate(self.lst(doc["resourceSpans"], "resourceSpans", may_be_empty=True)):
            rpath = f"resourceSpans[{i}]"
            rs = self.obj(rs, rpath, _RESOURCE_SPANS_FIELDS)
            if "resource" in rs:
                resource = self.obj(rs["resource"], f"{rpath}.resource", _RESOURCE_FIELDS)
                self.attribute_holder(resource, f"{rpath}.resource")
            if "schemaUrl" in rs:
                self.string(rs["schemaUrl"], f"{rpath}.schemaUrl")
            if "scopeSpans" not in rs:
                self.fail(rpath, "missing scopeSpans")
            for j, ss in enumerate(self.lst(rs["scopeSpans"], f"{rpath}.scopeSpans")):
                spath = f"{rpath}.scopeSpans[{j}]"
                ss = self.obj(ss, spath, _SCOPE_SPANS_FIELDS)
                if "scope" in ss:
                    scope = self.obj(ss["scope"], f"{spath}.scope", _SCOPE_FIELDS)
                    for name in ("name", "version"):
                        if name in scope:
                            self.string(scope[name], f"{spath}.scope.{name}")
                    self.attribute_holder(scope, f"{spath}.scope")
                if "schemaUrl" in ss:
                    self.string(ss["schemaUrl"], f"{spath}.schemaUrl")
                if "spans" not in ss:
                    self.fail(spath, "missing spans")
                for k, span in enumerate(self.lst(ss["spans"], f"{spath}.spans")):
                    spans.append(self.span(span, f"{spath}.spans[{k}]"))
        return spans


def _reject_constant(name: str) -> Any:
    raise AssertionError(f"bare {name} is not JSON; OTLP JSON writes it as the string {name!r}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise AssertionError(f"duplicate JSON key {key!r} in one object")
        result[key] = value
    return result


def validate_line(line: str, *, canonical: bool = True) -> list[dict[str, Any]]:
    """Check one line as an OTLP JSON ``TracesData`` document; return its spans, flattened.

    Raises AssertionError whose message names the JSON path at fault. ``canonical=False`` checks
    the specification only (empty lists, zero counts and a missing kind are then accepted).
    """
    if "\n" in line or "\r" in line:
        raise AssertionError("a record must be a single line")
    try:
        doc = json.loads(line, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as error:
        raise AssertionError(f"not JSON: {error}: {line[:200]!r}") from error
    return _Checker(canonical).document(doc)


def read_spans(
    directory: str | Path, *, canonical: bool = True, allow_torn_tail: bool = False
) -> list[dict[str, Any]]:
    """Validate every line of every ``*.jsonl`` file in ``directory`` and return all spans.

    Files are read in name order, lines in file order. ``allow_torn_tail`` accepts a last line
    without its newline that does not parse (what a killed writer may leave behind).
    """
    spans: list[dict[str, Any]] = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        data = path.read_bytes()
        text = data.decode("utf-8")  # strict: a record must be valid UTF-8
        lines = text.split("\n")
        tail = lines.pop()  # "" when the file ends with a newline
        for number, line in enumerate(lines, 1):
            try:
                spans.extend(validate_line(line, canonical=canonical))
            except AssertionError as error:
                raise AssertionError(f"{path}:{number}: {error}") from None
        if tail:
            try:
                spans.extend(validate_line(tail, canonical=canonical))
            except AssertionError as error:
                if not allow_torn_tail:
                    raise AssertionError(
                        f"{path}:{len(lines) + 1}: last line has no newline and {error}"
                    ) from None
    return spans


def decode_value(value: dict[str, Any]) -> Any:
    """A typed OTLP ``AnyValue`` as a Python value (intValue -> int, arrayValue -> list, ...)."""
    if not value:
        return None
    ((kind, inner),) = value.items()
    if kind == "intValue":
        return int(inner)
    if kind == "doubleValue":
        return _SPECIAL_DOUBLES[inner] if isinstance(inner, str) else float(inner)
    if kind == "bytesValue":
        return base64.b64decode(inner)
    if kind == "arrayValue":
        return [decode_value(item) for item in inner.get("values", [])]
    if kind == "kvlistValue":
        return _decode_key_values(inner.get("values", []))
    return inner  # stringValue, boolValue


def _decode_key_values(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {item["key"]: decode_value(item["value"]) for item in items}


def attributes(obj: dict[str, Any]) -> dict[str, Any]:
    """The decoded attributes of a span, event, link, resource or scope dict."""
    return _decode_key_values(obj.get("attributes", []))
