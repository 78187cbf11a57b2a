"""Opt-in recording of prompts and replies on the ``chat {model}`` span.

Off by default: prompts carry whatever the graph's inputs carry, personal data included. Like the
OpenTelemetry GenAI instrumentations, graphtrace reads
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``:

| value | records |
| --- | --- |
| unset, ``false``, ``NO_CONTENT`` | nothing |
| ``true``, ``SPAN_ONLY`` | ``gen_ai.input.messages`` and ``gen_ai.output.messages`` on the span |
| ``EVENT_ONLY`` | the same two as a ``gen_ai.client.inference.operation.details`` span event |
| ``SPAN_AND_EVENT`` | both |

The values are case-insensitive. The messages follow the conventions' JSON schemas
(``[{"role": ..., "parts": [{"type": "text", "content": ...}]}]``, the output with its
``finish_reason``), as JSON text because span attributes cannot hold structured values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from graphtrace.lm.protocol import Message, role_and_content

__all__ = ["CAPTURE_ENV", "ContentCapture", "input_messages", "output_messages"]

CAPTURE_ENV: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


@dataclass(frozen=True, slots=True)
class ContentCapture:
    """Where prompt and reply content goes: span attributes, a span event, both or neither."""

    on_span: bool = False
    as_event: bool = False

    @property
    def enabled(self) -> bool:
        return self.on_span or self.as_event

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ContentCapture:
        """The capture the environment asks for; an unknown value is an error, not a guess.

        A typo must neither leak prompts nor silently hide them, so it stops the caller with
        the accepted values named.
        """
        raw = (os.environ if environ is None else environ).get(CAPTURE_ENV, "")
        value = raw.strip().lower()
        if value in _MODES:
            return _MODES[value]
        raise ValueError(
            f"{CAPTURE_ENV}={raw!r} is not understood; use true, false, NO_CONTENT, SPAN_ONLY, "
            "EVENT_ONLY or SPAN_AND_EVENT"
        )


_MODES: Final[dict[str, ContentCapture]] = {
    "": ContentCapture(),
    "false": ContentCapture(),
    "no_content": ContentCapture(),
    "true": ContentCapture(on_span=True),
    "span_only": ContentCapture(on_span=True),
    "event_only": ContentCapture(as_event=True),
    "span_and_event": ContentCapture(on_span=True, as_event=True),
}


def input_messages(messages: Sequence[Message | Mapping[str, Any]]) -> str:
    """``gen_ai.input.messages``: the chat history sent, in order."""
    return _json(
        [
            {"role": role, "parts": [{"type": "text", "content": content}]}
            for role, content in map(role_and_content, messages)
        ]
    )


def output_messages(text: str, finish_reason: str) -> str:
    """``gen_ai.output.messages``: the one choice the runtime asks for."""
    return _json(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": text}],
                "finish_reason": finish_reason,
            }
        ]
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
