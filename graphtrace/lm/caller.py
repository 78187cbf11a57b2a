"""One traced LM call: waits for a slot, opens the ``chat {model}`` span, records usage.

What a span records comes from the backend's :class:`Completion` (tokens, finish reason, response
model and id), or, when the call fails, ``error.type`` and whatever the failed answer did say (an
:class:`LMResponseError`'s partial completion). Prompts and replies are recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` asks for it (:mod:`graphtrace.lm.content`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.trace import Span

from graphtrace.errors import LMResponseError
from graphtrace.lm.content import ContentCapture, input_messages, output_messages
from graphtrace.lm.protocol import LM, Completion, Message
from graphtrace.lm.slots import CallSlots
from tracing import names
from tracing.spans import open_span, tracing_on

LM_QUEUE_MS = "graphtrace.lm.queue_ms"


_LM_TYPES: set[type] = set()


def _implements_lm(lm: object) -> bool:
    """``isinstance(lm, LM)``, remembered per class: a runtime-checkable Protocol's check walks
    the protocol's attributes every time, and every run makes a caller."""
    cls = type(lm)
    if cls in _LM_TYPES:
        return True
    if not isinstance(lm, LM):
        return False
    if len(_LM_TYPES) < 256:
        _LM_TYPES.add(cls)
    return True


class LMCaller:
    """Calls ``lm`` with the GenAI span around it, under an optional cap on concurrent calls.

    The span covers the call alone; the time spent waiting for a slot is its attribute
    ``graphtrace.lm.queue_ms``. ``capture`` defaults to what the environment asks for
    (:meth:`ContentCapture.from_env`).
    """

    __slots__ = ("_base_attributes", "_span_name", "capture", "limiter", "lm")

    def __init__(
        self,
        lm: LM,
        limiter: CallSlots | None = None,
        capture: ContentCapture | None = None,
    ) -> None:
        if not _implements_lm(lm):
            raise TypeError(
                f"lm must implement graphtrace.LM (model, provider, async complete()); "
                f"got {type(lm).__name__}"
            )
        if limiter is not None and not isinstance(limiter, CallSlots):
            raise TypeError(
                f"limiter must be a graphtrace.lm.slots.CallSlots, got {type(limiter).__name__}"
            )
        self.lm = lm
        self.limiter = limiter
        self.capture = ContentCapture.from_env() if capture is None else capture
        self._span_name = names.chat_span(lm.model)
        self._base_attributes: dict[str, Any] = {
            names.GEN_AI_OPERATION: "chat",
            names.GEN_AI_PROVIDER: lm.provider,
            names.GEN_AI_REQUEST_MODEL: lm.model,
            # the runtime always asks for JSON that follows a schema
            names.GEN_AI_OUTPUT_TYPE: "json",
        }

    async def complete(
        self, messages: Sequence[Message], schema: Mapping[str, Any], *, purpose: str, attempt: int
    ) -> Completion:
        limiter = self.limiter
        if limiter is None:
            return await self._traced(messages, schema, purpose, attempt, None)
        if limiter.try_acquire():
            wait_ms = 0.0
        else:
            queued = time.perf_counter()
            await limiter.acquire()
            wait_ms = (time.perf_counter() - queued) * 1000.0
        try:
            return await self._traced(messages, schema, purpose, attempt, wait_ms)
        finally:
            limiter.release()

    async def _traced(
        self,
        messages: Sequence[Message],
        schema: Mapping[str, Any],
        purpose: str,
        attempt: int,
        wait_ms: float | None,
    ) -> Completion:
        if not tracing_on():
            return await self.lm.complete(messages, schema)
        attributes = dict(self._base_attributes)
        attributes[names.LM_PURPOSE] = purpose
        attributes[names.LM_ATTEMPT] = attempt
        if wait_ms is not None:
            attributes[LM_QUEUE_MS] = round(wait_ms, 3)
        with open_span(self._span_name, attributes) as span:
            try:
                completion = await self.lm.complete(messages, schema)
            except BaseException as exc:  # recorded, then re-raised as it is
                span.set_attribute(names.ERROR_TYPE, type(exc).__qualname__)
                partial = exc.completion if isinstance(exc, LMResponseError) else None
                if partial is not None:
                    self._record(span, partial)
                if self.capture.enabled:
                    self._record_content(span, messages, partial)
                raise
            self._record(span, completion)
            if self.capture.enabled:
                self._record_content(span, messages, completion)
            return completion

    def _record(self, span: Span, completion: Completion) -> None:
        span.set_attributes(
            {
                names.GEN_AI_INPUT_TOKENS: completion.usage.input_tokens,
                names.GEN_AI_OUTPUT_TOKENS: completion.usage.output_tokens,
                names.GEN_AI_FINISH_REASONS: (completion.finish_reason,),
                names.GEN_AI_RESPONSE_MODEL: completion.response_model or self.lm.model,
            }
        )
        if completion.response_id:
            span.set_attribute(names.GEN_AI_RESPONSE_ID, completion.response_id)

    def _record_content(
        self, span: Span, messages: Sequence[Message], completion: Completion | None
    ) -> None:
        # set when the call ends, so the pending record written at the start stays small
        content = {names.GEN_AI_INPUT_MESSAGES: input_messages(messages)}
        if completion is not None:
            content[names.GEN_AI_OUTPUT_MESSAGES] = output_messages(
                completion.text, completion.finish_reason
            )
        if self.capture.on_span:
            span.set_attributes(content)
        if self.capture.as_event:
            span.add_event(names.GEN_AI_CONTENT_EVENT, content)
