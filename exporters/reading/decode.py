"""One JSON document (a line, or a pretty-printed document) to its spans, never raising.

The typed decoder handles well-formed documents in one C call. When it refuses one, the
document is decoded generically and each span converted on its own, so one bad span costs only
itself; what cannot be read at all comes back as a one-line reason.
"""

from __future__ import annotations

from typing import Any, Final, Generic, NamedTuple, TypeVar

import msgspec

from exporters.reading.schema import (
    LeanSpan,
    LeanTracesData,
    Resource,
    Scope,
    Span,
    TracesData,
    full_decoder,
    lean_decoder,
)

__all__ = ["Decoded", "SpanGroup", "decode_full", "decode_lean"]

S = TypeVar("S", Span, LeanSpan)

_OTHER_SIGNALS: Final = {
    "resourceMetrics": "a metrics document (resourceMetrics), not traces",
    "resourceLogs": "a logs document (resourceLogs), not traces",
    "resourceProfiles": "a profiles document (resourceProfiles), not traces",
}


class SpanGroup(NamedTuple, Generic[S]):
    """Spans that share a resource and scope (both None in the lean variant)."""

    resource: Resource | None
    scope: Scope | None
    spans: list[S]


class Decoded(NamedTuple, Generic[S]):
    """What one document held: span groups, or the reason it could not be read at all."""

    groups: list[SpanGroup[S]]
    error: str | None = None  # the whole document was unreadable
    bad_spans: int = 0  # spans left out of an otherwise readable document
    bad_reason: str = ""


def decode_full(data: bytes) -> Decoded[Span]:
    """Every span of ``data`` with its resource and scope."""
    try:
        doc: TracesData = full_decoder().decode(data)
    except msgspec.ValidationError:  # a subclass of DecodeError: must come first
        return _slow(data, Span, lean=False)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return Decoded([], error=_json_reason(exc))
    return Decoded(
        [
            SpanGroup(rs.resource, ss.scope, ss.spans)
            for rs in doc.resourceSpans
            for ss in rs.scopeSpans
        ]
    )


def decode_lean(data: bytes) -> Decoded[LeanSpan]:
    """Every span of ``data`` with the fields the index needs."""
    try:
        doc: LeanTracesData = lean_decoder().decode(data)
    except msgspec.ValidationError:
        return _slow(data, LeanSpan, lean=True)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return Decoded([], error=_json_reason(exc))
    return Decoded(
        [SpanGroup(None, None, ss.spans) for rs in doc.resourceSpans for ss in rs.scopeSpans]
    )


def _json_reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "invalid UTF-8"
    text = str(exc).removeprefix("JSON is malformed: ")
    if "truncated" in text:
        return "incomplete JSON (the line was cut short)"
    return f"not valid JSON ({text})"


def _slow(data: bytes, span_type: type[S], *, lean: bool) -> Decoded[S]:
    """Span-by-span decoding of a document the typed decoder refused."""
    try:
        raw = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return Decoded([], error=_json_reason(exc))
    docs = raw if isinstance(raw, list) else [raw]
    groups: list[SpanGroup[S]] = []
    bad = 0
    bad_reason = ""
    error: str | None = None
    for doc in docs:
        reason = _document_problem(doc)
        if reason is not None:
            error = error or reason
            continue
        for rs in doc["resourceSpans"] or ():
            resource = None if lean else _convert(_field(rs, "resource"), Resource)
            for ss in _list(_field(rs, "scopeSpans")):
                scope = None if lean else _convert(_field(ss, "scope"), Scope)
                spans: list[S] = []
                for item in _list(_field(ss, "spans")):
                    try:
                        spans.append(msgspec.convert(item, span_type, strict=False))
                    except msgspec.ValidationError as exc:
                        bad += 1
                        bad_reason = bad_reason or f"unreadable span: {exc}"
                if spans:
                    groups.append(SpanGroup(resource, scope, spans))
    if error is not None and groups:
        error = None  # part of a list of documents was readable: keep that part
    return Decoded(groups, error=error, bad_spans=bad, bad_reason=bad_reason)


def _document_problem(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return f"not an OTLP TracesData object (a JSON {type(doc).__name__})"
    if "resourceSpans" not in doc:
        for key, reason in _OTHER_SIGNALS.items():
            if key in doc:
                return reason
        return "not an OTLP TracesData object (no resourceSpans)"
    if not isinstance(doc["resourceSpans"], list | None):
        return "resourceSpans is not a list"
    return None


def _field(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


T = TypeVar("T")


def _convert(value: Any, kind: type[T]) -> T | None:
    if value is None:
        return None
    try:
        return msgspec.convert(value, kind, strict=False)
    except msgspec.ValidationError:
        return None  # a resource or scope we cannot read costs its attributes, not its spans
