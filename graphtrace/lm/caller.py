"""One traced LM call: waits for a slot, opens the ``chat {model}`` span, records usage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from graphtrace.lm.protocol import LM, Completion, Message
from tracing import names
from tracing.spans import open_span

LM_QUEUE_MS = "graphtrace.lm.queue_ms"


class LMCaller:
    """Calls ``lm`` with the GenAI span around it, under an optional cap on concurrent calls.

    The span covers the call alone; the time spent waiting for a slot is its attribute
    ``graphtrace.lm.queue_ms``.
    """

    __slots__ = ("_base_attributes", "_span_name", "limiter", "lm")

    def __init__(self, lm: LM, limiter: asyncio.Semaphore | None = None) -> None:
        if not isinstance(lm, LM):
            raise TypeError(
                f"lm must implement graphtrace.LM (model, provider, async complete()); "
                f"got {type(lm).__name__}"
            )
        self.lm = lm
        self.limiter = limiter
        self._span_name = names.chat_span(lm.model)
        self._base_attributes: dict[str, Any] = {
            names.GEN_AI_OPERATION: "chat",
            names.GEN_AI_PROVIDER: lm.provider,
            names.GEN_AI_REQUEST_MODEL: lm.model,
        }

    async def complete(
        self, messages: Sequence[Message], schema: Mapping[str, Any], *, purpose: str, attempt: int
    ) -> Completion:
        if self.limiter is None:
            return await self._traced(messages, schema, purpose, attempt, 0.0)
        queued = time.perf_counter()
        async with self.limiter:
            wait_ms = (time.perf_counter() - queued) * 1000.0
            return await self._traced(messages, schema, purpose, attempt, wait_ms)

    async def _traced(
        self,
        messages: Sequence[Message],
        schema: Mapping[str, Any],
        purpose: str,
        attempt: int,
        wait_ms: float,
    ) -> Completion:
        attributes = dict(self._base_attributes)
        attributes[names.LM_PURPOSE] = purpose
        attributes[names.LM_ATTEMPT] = attempt
        if self.limiter is not None:
            attributes[LM_QUEUE_MS] = round(wait_ms, 3)
        with open_span(self._span_name, attributes) as span:
            completion = await self.lm.complete(messages, schema)
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
            return completion
