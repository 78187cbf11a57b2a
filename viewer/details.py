"""What a row says about a span beyond name and time: model and tokens, gate answers, errors,
and the text of stall snapshots."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Protocol

from exporters.reading.assemble import TreeSpan
from exporters.reading.records import EventRecord
from viewer import keys
from viewer.format import duration

__all__ = [
    "Named",
    "details",
    "error_text",
    "exception_text",
    "is_snapshot",
    "snapshot_text",
    "tokens_of",
]

_SNAPSHOT_NAMES: Final = frozenset((keys.STALL_SPAN_NAME, keys.LOOP_BLOCKED_SPAN_NAME))


class Named(Protocol):
    """A span as far as a snapshot's text needs it: a tree span, a live span, a record."""

    @property
    def name(self) -> str: ...

    @property
    def attributes(self) -> dict[str, Any]: ...


def tokens_of(attributes: dict[str, Any]) -> tuple[int, int]:
    """(input, output) tokens of an LLM span, 0 where not recorded."""
    return _int(attributes.get(keys.GEN_AI_INPUT_TOKENS)), _int(
        attributes.get(keys.GEN_AI_OUTPUT_TOKENS)
    )


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def error_text(span: TreeSpan) -> str:
    """``Type: message`` of the span's exception, else its status message."""
    return exception_text(span.events, span.record.status_message)


def exception_text(events: Iterable[EventRecord], status_message: str) -> str:
    """``Type: message`` of the first exception among ``events``, else ``status_message``."""
    for event in events:
        if event.name == keys.EXCEPTION_EVENT:
            kind = event.attributes.get(keys.EXCEPTION_TYPE) or "error"
            message = event.attributes.get(keys.EXCEPTION_MESSAGE)
            return f"{kind}: {message}" if message else str(kind)
    return status_message


def is_snapshot(span: Named) -> bool:
    """A stall snapshot or a blocked-loop record (shown with its call graph or stack)."""
    return span.name in _SNAPSHOT_NAMES


def snapshot_text(span: Named) -> tuple[str, list[str]]:
    """The headline of a snapshot and the lines of its call graph or stack."""
    attributes = span.attributes
    if span.name == keys.LOOP_BLOCKED_SPAN_NAME:
        blocked = attributes.get(keys.LOOP_BLOCKED_S)
        head = "event loop blocked" + (f" for {_seconds(blocked)}" if blocked is not None else "")
        text = attributes.get(keys.LOOP_STACK)
    else:
        elapsed = attributes.get(keys.STALL_ELAPSED_S)
        head = "stalled" + (f" {_seconds(elapsed)}" if elapsed is not None else "")
        text = attributes.get(keys.STALL_CALL_GRAPH)
    lines = str(text).splitlines() if text else []
    return head, [line.rstrip() for line in lines if line.strip()]


def _seconds(value: Any) -> str:
    try:
        return duration(int(float(value) * 1e9))
    except (TypeError, ValueError):
        return str(value)


def details(span: TreeSpan) -> str:
    """The detail column of a span's row."""
    attributes = span.attributes
    parts: list[str] = []
    if keys.GEN_AI_OPERATION in attributes or span.name.startswith("chat "):
        parts.append(_llm(attributes))
    elif keys.GATE_ID in attributes:
        parts.append(_gate(span))
    elif keys.NODE_STEP in attributes:
        parts.append(f"step {attributes[keys.NODE_STEP]}")
    elif attributes.get(keys.DEP_CACHED) is True:
        parts.append("cached")
    if span.status == "error":
        parts.append(error_text(span) or "error")
    elif span.status == "interrupted":
        parts.append("no end recorded: its process is gone")
    return " · ".join(p for p in parts if p)


def _llm(attributes: dict[str, Any]) -> str:
    model = attributes.get(keys.GEN_AI_RESPONSE_MODEL) or attributes.get(keys.GEN_AI_REQUEST_MODEL)
    tokens_in, tokens_out = tokens_of(attributes)
    parts = [str(model)] if model else []
    if tokens_in or tokens_out:
        parts.append(f"{tokens_in}→{tokens_out} tokens")
    purpose = attributes.get(keys.LM_PURPOSE)
    if purpose:
        parts.append(str(purpose))
    attempt = _int(attributes.get(keys.LM_ATTEMPT))
    if attempt > 1:
        parts.append(f"attempt {attempt}")
    reasons = attributes.get(keys.GEN_AI_FINISH_REASONS)
    if isinstance(reasons, list) and reasons and reasons != ["stop"]:
        parts.append("finish " + ",".join(str(r) for r in reasons))
    return " · ".join(parts)


def _gate(span: TreeSpan) -> str:
    attributes = span.attributes
    if span.status == "running":
        prompt = attributes.get(keys.GATE_PROMPT)
        return f"waiting {duration(span.duration_ns)}" + (f": {prompt}" if prompt else "")
    parts = []
    wait = attributes.get(keys.GATE_WAIT_MS)
    if isinstance(wait, int | float) and not isinstance(wait, bool):
        parts.append(f"waited {duration(int(wait * 1e6))}")
    if keys.GATE_ANSWER in attributes:
        by = attributes.get(keys.GATE_ANSWERED_BY)
        parts.append(f"answer {attributes[keys.GATE_ANSWER]}" + (f" ({by})" if by else ""))
    return " · ".join(parts)
