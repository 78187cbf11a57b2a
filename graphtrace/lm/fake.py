"""An offline, deterministic language model: answers with values generated from the JSON Schema.

:class:`FakeLM` is the default backend of the demo and the tests. It needs no network and no
model; its replies validate against the schema it is given (see
:mod:`graphtrace.lm.schema_values`), and it can simulate latency and failures so a graph under
``RunPool`` behaves like one talking to a real, slightly unreliable model.

Everything it does is decided by a BLAKE2b hash of ``(seed, schema, messages)``: the same FakeLM
answers the same prompt the same way, in any process and under any interleaving of concurrent
runs, because no RNG state is shared between calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import math
import random
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeAlias

from graphtrace.errors import LMError
from graphtrace.lm.protocol import Completion, Message, Usage
from graphtrace.lm.schema_values import value_for_schema

__all__ = ["FakeLM", "Responder"]

Reply: TypeAlias = str | Mapping[str, Any] | None
#: ``respond(messages, schema)``: a str is the reply verbatim, a Mapping is JSON-encoded, None
#: falls back to the schema-generated value; it may also be ``async``.
Responder: TypeAlias = Callable[[Sequence[Message], Mapping[str, Any]], Reply | Awaitable[Reply]]

_CHARS_PER_TOKEN: Final = 4
_FAILED_MEMORY: Final = 10_000  # the usual rule of thumb for English text and JSON


class FakeLM:
    """A deterministic, offline LM for demos and tests: answers with values generated from the
    requested JSON Schema.

    Args:
        seed: varies every answer; two FakeLMs with the same seed answer alike.
        latency: seconds each call waits (``asyncio.sleep``, so other runs proceed meanwhile).
        failure_rate: the fraction of prompts, in [0, 1], answered with :class:`LMError`.
        model: the model name reported in spans and completions.
        jitter: a deterministic ±fraction of ``latency``, in [0, 1].
        respond: an optional hook ``respond(messages, schema)`` for scripted demos and tests:
            a ``str`` is the reply verbatim, a ``Mapping`` is JSON-encoded, ``None`` falls back
            to the generated value. It may be a coroutine function. Injected failures and
            latency still apply to calls it answers.

    Determinism: the reply, the delay and the failure decision depend only on ``seed``, the
    schema and the messages' roles and contents (a BLAKE2b hash, never ``hash()``). A prompt
    that failed and is asked again (the runtime retries a transient error with the same
    messages) gets a fresh failure roll drawn from the prompt and the number of times it failed,
    so retries recover at the configured rate.

    ``calls`` counts every :meth:`complete` call, failed ones included.

    Example::

        >>> import asyncio
        >>> from graphtrace.lm.protocol import Message
        >>> lm = FakeLM(seed=1)
        >>> schema = {"type": "object", "properties": {"ok": {"const": True}}, "required": ["ok"]}
        >>> asyncio.run(lm.complete([Message("user", "ready?")], schema)).text
        '{"ok": true}'
    """

    provider: str = "graphtrace.fake"

    def __init__(
        self,
        *,
        seed: int = 0,
        latency: float = 0.0,
        failure_rate: float = 0.0,
        model: str = "fake",
        jitter: float = 0.0,
        respond: Responder | None = None,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        self.latency = _real("latency", latency, low=0.0, high=math.inf)
        self.failure_rate = _real("failure_rate", failure_rate, low=0.0, high=1.0)
        self.jitter = _real("jitter", jitter, low=0.0, high=1.0)
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        self.model = model
        if respond is not None and not callable(respond):
            raise TypeError(f"respond must be callable or None, got {type(respond).__name__}")
        self.respond = respond
        self.calls = 0
        self._failed: dict[bytes, int] = {}

    def __repr__(self) -> str:
        parts = [f"model={self.model!r}", f"seed={self.seed}"]
        if self.latency:
            parts.append(f"latency={self.latency:g}")
        if self.jitter:
            parts.append(f"jitter={self.jitter:g}")
        if self.failure_rate:
            parts.append(f"failure_rate={self.failure_rate:g}")
        if self.respond is not None:
            parts.append(f"respond={getattr(self.respond, '__qualname__', repr(self.respond))}")
        return f"FakeLM({', '.join(parts)})"

    async def complete(self, messages: Sequence[Message], schema: Mapping[str, Any]) -> Completion:
        """Answer ``messages`` with JSON text that validates against ``schema``.

        Raises :class:`LMError` for an injected failure (after the latency, as a real timeout or
        server error would arrive), ``TypeError`` when ``respond`` returns something that is not
        JSON-encodable.
        """
        self.calls += 1
        turns = [_turn(m) for m in messages]
        digest = self._digest(turns, schema)
        # independent slices of one digest: the failure roll, the delay, the value seed
        fail_roll = _unit(digest[0:8])
        if self.failure_rate and fail_roll < self.failure_rate:
            fail_roll = self._reroll(digest, fail_roll)
        jitter_roll = _unit(digest[8:16])
        value_seed = int.from_bytes(digest[16:32], "big")

        delay = self.latency * (1.0 + self.jitter * (2.0 * jitter_roll - 1.0))
        if delay > 0:
            await asyncio.sleep(delay)
        if fail_roll < self.failure_rate:
            raise LMError(f"FakeLM injected failure (failure_rate={self.failure_rate:g})")

        text = await self._reply(messages, schema, value_seed)
        input_chars = sum(len(content) for _, content in turns)
        return Completion(
            text=text,
            usage=Usage(input_tokens=_tokens(input_chars), output_tokens=_tokens(len(text))),
            finish_reason="stop",
            response_model=self.model,
            response_id=f"fake-{digest[32:44].hex()}",
        )

    async def _reply(
        self, messages: Sequence[Message], schema: Mapping[str, Any], value_seed: int
    ) -> str:
        if self.respond is not None:
            reply = self.respond(messages, schema)
            if inspect.isawaitable(reply):
                reply = await reply
            if isinstance(reply, str):
                return reply
            if reply is not None:
                try:
                    return json.dumps(reply, ensure_ascii=False)
                except (TypeError, ValueError) as exc:
                    raise TypeError(
                        "FakeLM respond hook must return a str, a JSON-encodable Mapping or "
                        f"None; got {type(reply).__name__}: {exc}"
                    ) from exc
        value = value_for_schema(schema, _draws(value_seed))
        return json.dumps(value, ensure_ascii=False)

    def _reroll(self, digest: bytes, roll: float) -> float:
        """A fresh failure roll for a prompt that failed before and is asked again.

        A transient error is retried with the same messages (as with a real server), so the
        n-th asking of a failed prompt draws from the digest and n. Only failed prompts are
        remembered, and at most ``_FAILED_MEMORY`` of them.
        """
        asked = self._failed.get(digest, 0)
        if asked:
            roll = _unit(hashlib.blake2b(digest + asked.to_bytes(4, "big"), digest_size=8).digest())
        if len(self._failed) >= _FAILED_MEMORY:
            self._failed.clear()
        self._failed[digest] = asked + 1
        return roll

    def _digest(self, turns: Sequence[tuple[str, str]], schema: Mapping[str, Any]) -> bytes:
        conversation = sum(1 for role, _ in turns if role in ("user", "assistant"))
        digest = hashlib.blake2b(digest_size=48, person=b"graphtrace.fake")
        digest.update(f"{self.seed}\x00{conversation}\x00".encode())
        digest.update(_schema_bytes(schema))
        for role, content in turns:
            # lengths first, so that no two different conversations feed the same bytes
            encoded = content.encode("utf-8", "surrogatepass")
            digest.update(f"\x00{role}\x00{len(encoded)}\x00".encode())
            digest.update(encoded)
        return digest.digest()


_SCHEMA_BYTES: dict[int, tuple[Mapping[str, Any], bytes]] = {}


def _schema_bytes(schema: Mapping[str, Any]) -> bytes:
    """The schema's canonical JSON; cached by identity, since callers reuse schema objects."""
    entry = _SCHEMA_BYTES.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    text = json.dumps(
        schema,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,  # a schema holding non-JSON values still hashes, if less stably
    ).encode("utf-8", "surrogatepass")
    if len(_SCHEMA_BYTES) >= 1024:
        _SCHEMA_BYTES.clear()
    _SCHEMA_BYTES[id(schema)] = (schema, text)
    return text


_thread_draws = threading.local()


def _draws(seed: int) -> random.Random:
    """This thread's generator, seeded with ``seed``.

    ``random.Random(seed)`` seeds its 624-word state twice (in ``__new__`` and ``__init__``),
    which costs more than the value drawn from it; one generator per thread, re-seeded, is
    safe because a reply is generated without an ``await`` in between.
    """
    rng: random.Random | None = getattr(_thread_draws, "rng", None)
    if rng is None:
        rng = _thread_draws.rng = random.Random()
    rng.seed(seed)
    return rng


def _real(name: str, value: Any, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if math.isnan(value) or not low <= value <= high:
        bounds = f">= {low:g}" if math.isinf(high) else f"between {low:g} and {high:g}"
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    if math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _turn(message: Any) -> tuple[str, str]:
    """A message's (role, content)."""
    if type(message) is Message:  # the usual case, without the Mapping check
        role, content = message.role, message.content
        if type(role) is str and type(content) is str:
            return role, content
    return _field(message, "role"), _field(message, "content")


def _field(message: Any, name: str) -> str:
    """A message's role or content; plain ``{"role", "content"}`` dicts work too."""
    value = message.get(name) if isinstance(message, Mapping) else getattr(message, name, None)
    if not isinstance(value, str):
        raise TypeError(f"each message needs a str {name!r}, got {message!r}")
    return value


def _unit(chunk: bytes) -> float:
    """Eight digest bytes as a float in [0, 1)."""
    return int.from_bytes(chunk, "big") / 2**64


def _tokens(chars: int) -> int:
    return max(1, round(chars / _CHARS_PER_TOKEN))
