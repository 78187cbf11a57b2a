"""One run back out as a single OTLP JSON ``TracesData`` document (``export --format otlp``).

Only the run's spans, grouped by resource and scope again, in the OTLP JSON encoding (hex ids,
integer enums, 64-bit integers as strings). Pending records are folded away: a span that ended
is written once; a span whose end was never recorded is written with the time it had run as
its end and ``graphtrace.open`` set to ``running`` or ``interrupted``, so that other tools show
it at its full length.
"""

from __future__ import annotations

import json
from typing import Any, Final

from exporters.reading.assemble import RunTrace, TreeSpan

__all__ = ["OPEN_ATTRIBUTE", "otlp_document"]

OPEN_ATTRIBUTE: Final = "graphtrace.open"


def otlp_document(trace: RunTrace) -> dict[str, Any]:
    """The run's spans as a ``TracesData`` object, ready for ``json.dumps``."""
    groups: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {}
    for span in sorted(trace.spans, key=lambda s: s.start_ns):
        record = span.record
        resource_key = json.dumps(record.resource, sort_keys=True, default=str)
        scope_key = json.dumps(record.scope, sort_keys=True, default=str)
        resource_group = groups.get(resource_key)
        if resource_group is None:
            resource_group = groups[resource_key] = (record.resource, {})
        scopes = resource_group[1]
        scope_group = scopes.get(scope_key)
        if scope_group is None:
            scope_group = scopes[scope_key] = {"scope": _scope(record.scope), "spans": []}
        scope_group["spans"].append(_span(span))
    return {
        "resourceSpans": [
            {"resource": {"attributes": _attributes(resource)}, "scopeSpans": list(scopes.values())}
            for resource, scopes in groups.values()
        ]
    }


def _scope(scope: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if scope.get("name"):
        out["name"] = scope["name"]
    if scope.get("version"):
        out["version"] = scope["version"]
    if scope.get("attributes"):
        out["attributes"] = _attributes(scope["attributes"])
    return out


def _span(span: TreeSpan) -> dict[str, Any]:
    record = span.record
    attributes = dict(record.attributes)
    if not span.ended:
        attributes[OPEN_ATTRIBUTE] = span.status
    out: dict[str, Any] = {"traceId": record.trace_id, "spanId": record.span_id}
    if record.trace_state:
        out["traceState"] = record.trace_state
    if span.parent_id:
        out["parentSpanId"] = span.parent_id
    if record.flags:
        out["flags"] = record.flags
    out["name"] = record.name
    out["kind"] = record.kind or 1
    out["startTimeUnixNano"] = str(record.start_ns)
    out["endTimeUnixNano"] = str(span.end_ns)
    if attributes:
        out["attributes"] = _attributes(attributes)
    if record.events:
        out["events"] = [
            {
                "timeUnixNano": str(event.time_ns),
                "name": event.name,
                **({"attributes": _attributes(event.attributes)} if event.attributes else {}),
            }
            for event in record.events
        ]
    if record.links:
        out["links"] = [
            {
                "traceId": link["trace_id"],
                "spanId": link["span_id"],
                **({"attributes": _attributes(link["attributes"])} if link["attributes"] else {}),
            }
            for link in record.links
            if link["trace_id"] and link["span_id"]
        ]
    if record.status:
        status: dict[str, Any] = {"code": record.status}
        if record.status_message:
            status["message"] = record.status_message
        out["status"] = status
    return out


def _attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": _value(value)} for key, value in values.items()]


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_value(item) for item in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _attributes(value)}}
    return {}
